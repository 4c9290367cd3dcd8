"""Pictures of a panoptic segment map: the stuff layer, the things layer and the merged map, with their legend.

UPSNet (Xiong et al. 2019) built panoptic segmentation from a semantic head for stuff and an instance head for things,
merged at the end; these views show the same three layers for Mask2Former's single set of masks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import draw
from .mask2former import unique_segments


@dataclass
class PanopticViews:
    merged: np.ndarray  # H x W x 3 uint8: every segment in its colour, void black
    stuff: np.ndarray  # only stuff segments coloured (the semantic layer)
    things: np.ndarray  # only thing segments coloured (the instance layer)
    stuff_mask: np.ndarray  # H x W bool
    things_mask: np.ndarray  # H x W bool
    legend: list[dict]  # {"id", "label", "name", "kind", "area_px", "area_pct", "score", "color"}, largest first
    colors: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # segment id -> RGB
    void_pct: float = 0.0


def display_name(label: str) -> str:
    """COCO panoptic's label for people: "sky-other-merged" -> "sky", "door-stuff" -> "door", "wall-brick" stays."""
    for suffix in ("-merged", "-other", "-stuff"):
        label = label.removesuffix(suffix)
    return label


def segment_colors(segments_info: list[dict], thing_ids) -> dict[int, tuple[int, int, int]]:
    """Stuff: one colour per class, the same in every photo. Things: their class's hue, a shade per instance."""
    colors: dict[int, tuple[int, int, int]] = {}
    seen: dict[int, int] = {}
    for info in unique_segments(segments_info):
        label = int(info["label_id"])
        if label in thing_ids:
            colors[int(info["id"])] = draw.color(label, jitter=seen.get(label, 0))
            seen[label] = seen.get(label, 0) + 1
        else:
            colors[int(info["id"])] = draw.color(label)
    return colors


def panoptic_views(segmentation: np.ndarray, segments_info: list[dict], id2label: dict[int, str],
                   thing_ids) -> PanopticViews:
    """The stuff layer, the things layer and the merged panoptic map of a segment map, with its legend.

    `segmentation` holds segment ids (0 or less: void); `segments_info` maps ids to {"label_id", "score"?}.
    """
    segmentation = np.asarray(segmentation)
    infos = [info for info in unique_segments(segments_info) if int(info["id"]) > 0]
    colors = segment_colors(infos, thing_ids)
    thing_segments = {int(info["id"]) for info in infos if int(info["label_id"]) in thing_ids}
    stuff_segments = {int(info["id"]) for info in infos} - thing_segments
    total = segmentation.size
    counts = np.bincount(np.clip(segmentation, 0, None).ravel(), minlength=max(colors, default=0) + 1)
    legend = []
    for info in infos:
        sid = int(info["id"])
        area = int(counts[sid]) if sid < len(counts) else 0
        if area == 0:
            continue  # a segment that lost all its pixels is not in the picture
        label = id2label.get(int(info["label_id"]), str(info["label_id"]))
        legend.append({"id": sid, "label": label, "name": display_name(label),
                       "kind": "thing" if sid in thing_segments else "stuff", "area_px": area,
                       "area_pct": round(100.0 * area / total, 2), "score": round(float(info.get("score", 1.0)), 4),
                       "color": draw.hex_color(colors[sid])})
    legend.sort(key=lambda row: (-row["area_px"], row["id"]))
    stuff_mask = np.isin(segmentation, list(stuff_segments))
    things_mask = np.isin(segmentation, list(thing_segments))
    merged = draw.colorize(segmentation, colors)
    stuff = np.where(stuff_mask[..., None], merged, 0).astype(np.uint8)
    things = np.where(things_mask[..., None], merged, 0).astype(np.uint8)
    void_pct = round(100.0 * (total - int(stuff_mask.sum()) - int(things_mask.sum())) / total, 2) if total else 0.0
    return PanopticViews(merged, stuff, things, stuff_mask, things_mask, legend, colors, void_pct)


def over_photo(rgb: np.ndarray, colored: np.ndarray, where: np.ndarray, opacity: float,
               segmentation: np.ndarray | None = None, legend: list[dict] | None = None) -> np.ndarray:
    """A view blended over the photo; with `legend`, each of its segments gets its label written on it."""
    out = draw.blend(rgb, colored, where, opacity)
    if legend and segmentation is not None:
        out = draw.texts(out, [(*_label_anchor(segmentation, row["id"]), row["name"]) for row in legend])
    return out


def _label_anchor(segmentation: np.ndarray, segment_id: int) -> tuple[int, int]:
    mask = segmentation == segment_id
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x, y = draw.anchor(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])  # the crop keeps it cheap
    return x + int(cols[0]), y + int(rows[0])
