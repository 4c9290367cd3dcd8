"""Instance segmentation results, shared by Mask R-CNN and YOLACT: the `Instances` record, class filters, and what the
instance tab draws and lists from it (overlay, boxes, label image, table), one colour per instance throughout.

Label ids are indices into torchvision's 91-entry COCO category list (COCO's own category ids, "N/A" where COCO
never used one), so both families report classes alike.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights

from . import coco, draw
from .tasks import OptionError

# torchvision's 91-index COCO category list, as its Mask R-CNN weights state it (index = the model's label id).
COCO_CATEGORIES = tuple(MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"])
CLASS_NAMES = tuple(sorted(coco.THINGS))
# Shortcuts for the class filter: COCO's "person", "vehicle" and "animal" super-categories.
CLASS_GROUPS = {
    "people": ("person",),
    "vehicles": ("bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"),
    "animals": ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"),
}
_PROPOSAL_COLOR = "#ffd400"


@dataclass
class Instances:
    """Detections in input-image pixels, best score first."""

    boxes: np.ndarray  # N x 4 float32, x1 y1 x2 y2
    label_ids: np.ndarray  # N int64, indices into COCO_CATEGORIES
    labels: list[str]
    scores: np.ndarray  # N float32
    masks: np.ndarray  # N x H x W bool
    # P x 4 float32: the boxes before the box head (Mask R-CNN: the RPN's top proposals, best objectness first;
    # YOLACT: each detection's prior box)
    proposals: np.ndarray
    working_size: tuple[int, int] = (0, 0)  # (w, h) of the image the network saw after its own resize

    def __len__(self) -> int:
        return len(self.scores)


# --- class filters -------------------------------------------------------------------------------------------------


def select(instances: Instances, score_threshold: float = 0.0, classes: Iterable[str] | None = None) -> Instances:
    """The instances scoring above the threshold whose class is in `classes` (None: any), best score first."""
    allowed = expand_classes(classes)
    keep = instances.scores > score_threshold
    if allowed is not None:
        keep &= np.array([label in allowed for label in instances.labels], bool)
    order = [i for i in np.argsort(-instances.scores, kind="stable") if keep[i]]
    return replace(instances, boxes=instances.boxes[order].reshape(-1, 4), label_ids=instances.label_ids[order],
                   labels=[instances.labels[i] for i in order], scores=instances.scores[order],
                   masks=instances.masks[order].reshape((-1,) + instances.masks.shape[1:]))


def expand_classes(classes: Iterable[str] | str | None) -> frozenset[str] | None:
    """Class names and group names ("people", "vehicles", "animals") to a set of COCO names; None or empty: all.

    A string is read as a comma-separated list (the command line's `--set classes=people,dog`).
    """
    if classes is None:
        return None
    if isinstance(classes, str):
        classes = [part for part in classes.split(",")]
    names: set[str] = set()
    unknown = []
    for item in classes:
        key = item.strip().lower()
        if not key:
            continue
        if key in CLASS_GROUPS:
            names.update(CLASS_GROUPS[key])
        elif key in CLASS_NAMES:
            names.add(key)
        else:
            unknown.append(item.strip())
    if unknown:
        raise OptionError(f"unknown class {', '.join(map(repr, unknown))}; use COCO names ({', '.join(CLASS_NAMES)}) "
                          f"or the groups {', '.join(CLASS_GROUPS)}")
    return frozenset(names) or None


# --- drawing and listing -------------------------------------------------------------------------------------------


def instance_colors(count: int) -> list[tuple[int, int, int]]:
    """One distinct colour per instance (instance i keeps its colour in the overlay, the table and the boxes)."""
    return [draw.color(i) for i in range(count)]


def overlay(rgb: np.ndarray, instances: Instances, opacity: float = 0.5, show_boxes: bool = True,
            show_labels: bool = True) -> np.ndarray:
    """Masks (best score on top), then boxes and "label score" captions, one colour per instance."""
    colors = instance_colors(len(instances))
    drawn = draw.overlay_masks(rgb, instances.masks[::-1], colors[::-1], opacity)
    if not (show_boxes and len(instances)):
        return drawn
    captions = [f"{label} {score:.2f}" for label, score in zip(instances.labels, instances.scores)]
    return draw.boxes(drawn, instances.boxes, captions if show_labels else None, color=colors)


def proposals_view(rgb: np.ndarray, instances: Instances) -> np.ndarray:
    """The boxes before the box head: where the network looked before it chose, refined and classified."""
    return draw.boxes(rgb, instances.proposals, color=_PROPOSAL_COLOR, width=1)


def label_image(instances: Instances) -> np.ndarray:
    """Instance ids per pixel (1 = best score, 0 = none), uint8 or uint16; the best instance wins overlaps."""
    ids = list(range(1, len(instances) + 1))
    return draw.label_image(instances.masks[::-1], ids[::-1])


def instance_table(instances: Instances) -> list[dict]:
    """A row per instance: id (as in the label image), label, score, box, mask area in pixels, colour."""
    colors = instance_colors(len(instances))
    return [{"id": i + 1, "label": label, "score": round(float(score), 4),
             "box": [round(float(v), 1) for v in box], "mask_area_px": int(mask.sum()),
             "color": draw.hex_color(colors[i])}
            for i, (label, score, box, mask) in enumerate(zip(instances.labels, instances.scores, instances.boxes,
                                                               instances.masks))]
