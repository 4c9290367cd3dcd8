"""Objects found as heatmap peaks (CenterNet, CornerNet): the result, its filters and table, and the pictures every
such detector shows (a heatmap over the photo with its peaks, the boxes).

The family pipelines return `Detections`; the family views add the picture of each family's idea (centres and sizes,
corner pairs) on top of the shared ones here.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import cv2
import numpy as np

from . import coco, draw
from .instances import expand_classes  # the same COCO names and groups in every tab
from .mmdet import Geometry

# The 80 COCO classes in mmdetection's CocoDataset order: the checkpoints' label ids 0..79.
COCO_CLASSES = coco.THINGS
PEAK_COLOR = "#00e5ff"
BOX_COLOR = "#00ff88"


@dataclass
class Peaks:
    """Heatmap maxima (after the 3x3 max-pool), best first, in photo coordinates."""

    points: np.ndarray  # (K, 2) x, y
    scores: np.ndarray  # (K,)
    label_ids: np.ndarray  # (K,) int64
    embeddings: np.ndarray | None = None  # (K,) CornerNet's associative embedding at each corner

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class Detections:
    """Boxes in photo pixels, best score first, and the heatmaps they came from."""

    boxes: np.ndarray  # (N, 4) float32 x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32
    label_ids: np.ndarray  # (N,) int64, indices into COCO_CLASSES
    geometry: Geometry
    heatmaps: dict[str, np.ndarray]  # "center" | "top_left", "bottom_right": (80, h, w) float32 in [0, 1]
    peaks: dict[str, Peaks]  # same names: the top-k maxima of each heatmap
    centers: np.ndarray | None = None  # CenterNet: (N, 2) the centre each box grew from
    corner_embeddings: np.ndarray | None = None  # CornerNet: (N, 2) top-left and bottom-right embedding values
    corner_scores: np.ndarray | None = None  # CornerNet: (N, 2) top-left and bottom-right heatmap values

    @property
    def labels(self) -> list[str]:
        return [COCO_CLASSES[i] for i in self.label_ids]

    def __len__(self) -> int:
        return len(self.scores)


def select(found: Detections, score_threshold: float = 0.0, classes: Iterable[str] | str | None = None) -> Detections:
    """The detections scoring at least `score_threshold` whose class is in `classes` (names or groups; None: all)."""
    allowed = expand_classes(classes)
    keep = found.scores >= score_threshold
    if allowed is not None:
        keep &= np.array([label in allowed for label in found.labels], bool).reshape(-1)
    pick = lambda values: None if values is None else values[keep]
    return replace(found, boxes=found.boxes[keep], scores=found.scores[keep], label_ids=found.label_ids[keep],
                   centers=pick(found.centers), corner_embeddings=pick(found.corner_embeddings),
                   corner_scores=pick(found.corner_scores))


def class_index(name: str | None) -> int | None:
    """A COCO class name -> its label id; None, "" or "all" -> None (every class)."""
    if name in (None, "", "all"):
        return None
    try:
        return COCO_CLASSES.index(name.strip().lower())
    except ValueError:
        raise ValueError(f"unknown COCO class {name!r}") from None


def table(found: Detections) -> list[dict]:
    """One JSON-ready row per box: label, score, box, and the centre or the corners' embeddings and scores."""
    rows = []
    for i, (box, score, label) in enumerate(zip(found.boxes, found.scores, found.labels)):
        row = {"label": label, "score": round(float(score), 4), "box": [round(float(v), 1) for v in box]}
        if found.centers is not None:
            row["center"] = [round(float(v), 1) for v in found.centers[i]]
        if found.corner_embeddings is not None:
            row["embeddings"] = {"top_left": round(float(found.corner_embeddings[i, 0]), 3),
                                 "bottom_right": round(float(found.corner_embeddings[i, 1]), 3)}
            row["corner_scores"] = {"top_left": round(float(found.corner_scores[i, 0]), 4),
                                    "bottom_right": round(float(found.corner_scores[i, 1]), 4)}
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------------------
# The pictures both families show


def class_map(found: Detections, name: str, class_id: int | None = None) -> np.ndarray:
    """One heatmap as (h, w): the maximum over the 80 classes, or one class's map."""
    maps = found.heatmaps[name]
    return maps.max(axis=0) if class_id is None else maps[class_id]


def map_on_image(found: Detections, name: str, class_id: int | None = None) -> np.ndarray:
    """A heatmap warped onto the photo (H, W) float32: each photo pixel reads the heatmap where the decoder would
    put it, so the peaks land where the boxes' centres or corners are."""
    values = class_map(found, name, class_id).astype(np.float32)
    width, height = found.geometry.image_size
    return cv2.warpAffine(values, found.geometry.image_to_feature_matrix(), (width, height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)


def peaks_shown(peaks: Peaks, min_score: float, class_id: int | None = None) -> np.ndarray:
    keep = peaks.scores >= min_score
    if class_id is not None:
        keep &= peaks.label_ids == class_id
    return keep


def heatmap_view(rgb: np.ndarray, found: Detections, name: str, class_id: int | None = None,
                 min_score: float = 0.3, color: str = PEAK_COLOR) -> np.ndarray:
    """The heatmap over the photo (inferno, opaque where high) with its peaks at or above `min_score` marked."""
    image = draw.overlay(dim(rgb, 0.7), map_on_image(found, name, class_id))  # dimmed: the small blobs glow
    peaks = found.peaks[name]
    keep = peaks_shown(peaks, min_score, class_id)
    if not keep.any():
        return image
    return draw.points(image, peaks.points[keep].reshape(1, -1, 2), color, radius=marker_radius(rgb))


def detections_view(rgb: np.ndarray, found: Detections) -> np.ndarray:
    captions = [f"{label} {score:.2f}" for label, score in zip(found.labels, found.scores)]
    return draw.boxes(rgb, drawable(found.boxes), captions, color=BOX_COLOR)


def drawable(boxes: np.ndarray) -> np.ndarray:
    """Boxes with x1 <= x2 and y1 <= y2. CenterNet's decoder (like mmdetection's) does not order the corners: an
    untrained network can regress a negative width; trained weights do not, and the boxes are reported as decoded."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], axis=1)


def marker_radius(rgb: np.ndarray) -> int:
    return max(2, round(max(rgb.shape[:2]) / 120))


def dim(rgb: np.ndarray, keep: float = 0.55) -> np.ndarray:
    """The photo darkened, so lines and points read on it."""
    return (rgb.astype(np.float32) * keep).round().astype(np.uint8)


def lines(rgb: np.ndarray, segments: list, colors: list[str]) -> np.ndarray:
    """Anti-aliased line segments ((xa, ya), (xb, yb)), one "#rrggbb" colour each, width scaled to the image."""
    image = np.ascontiguousarray(rgb).copy()
    width = max(1, round(max(rgb.shape[:2]) / 400))
    for ((xa, ya), (xb, yb)), color in zip(segments, colors):
        value = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
        cv2.line(image, (int(round(xa)), int(round(ya))), (int(round(xb)), int(round(yb))), value, width,
                 cv2.LINE_AA)
    return image
