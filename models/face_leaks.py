"""Measuring leaks in anonymised video: a pan-and-zoom clip made from a real photo, and the faces left visible.

The clip's geometry is known exactly (each frame is a crop of the photo, scaled), so a face detected in one frame can
be placed in any other. A leak is a face detected in a neighbouring frame (t-1 or t+1) whose place in frame t is not
hidden: frames x faces that a viewer stepping through the video would see. The test and the benchmark both count
them with and without the temporal hold (`face_hold`).
"""
from __future__ import annotations

import cv2
import numpy as np

from . import anonymize
from .face_verify import iou_matrix

COVERED = 0.5  # a face counts as hidden when hidden regions cover at least this fraction of its box
IN_FRAME = 0.5  # faces mostly outside frame t are not counted there


def pan_zoom_views(photo_size: tuple[int, int], frames: int, out_size: tuple[int, int],
                   start: tuple[float, float, float] = (0.25, 0.45, 0.55),
                   end: tuple[float, float, float] = (0.7, 0.55, 0.3)) -> np.ndarray:
    """(frames, 4) views x, y, w, h in photo pixels: a pan from centre `start` to `end` (fractions of the photo's
    width and height) while the view's width goes from start[2] to end[2] of the photo's, at the clip's aspect."""
    width, height = photo_size
    aspect = out_size[1] / out_size[0]
    t = np.linspace(0, 1, frames)[:, None]
    cx, cy, w = [(1 - t) * a + t * b for a, b in zip(start, end)]
    view_w = w * width
    view_h = view_w * aspect
    x = np.clip(cx * width - view_w / 2, 0, width - view_w)
    y = np.clip(cy * height - view_h / 2, 0, height - view_h)
    return np.concatenate([x, y, view_w, view_h], axis=1).astype(np.float64)


def render(photo: np.ndarray, views: np.ndarray, out_size: tuple[int, int]) -> list[np.ndarray]:
    """The clip's RGB frames: each view of the photo, resampled to `out_size` (w, h) with anti-aliasing."""
    frames = []
    for x, y, w, h in views:
        scale_x, scale_y = out_size[0] / w, out_size[1] / h
        affine = np.array([[scale_x, 0, -x * scale_x], [0, scale_y, -y * scale_y]], np.float64)
        blurred = photo if scale_x >= 1 else cv2.GaussianBlur(photo, (0, 0), 0.5 / scale_x)  # no aliasing
        frames.append(cv2.warpAffine(blurred, affine, out_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return frames


def to_frame(boxes: np.ndarray, source_view: np.ndarray, target_view: np.ndarray,
             out_size: tuple[int, int]) -> np.ndarray:
    """Boxes in one frame's pixels -> the same places in another frame's pixels."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scale = np.array(out_size, np.float64)
    in_photo = boxes.reshape(-1, 2, 2) / scale * source_view[2:] + source_view[:2]
    return ((in_photo - target_view[:2]) / target_view[2:] * scale).reshape(-1, 4)


def count_leaks(detected: list[np.ndarray], hidden: list[np.ndarray], views: np.ndarray, out_size: tuple[int, int],
                enlarge: float, covered: float = COVERED) -> int:
    """Frames x faces detected in a neighbouring frame but not hidden in this one (less than `covered` of the box).

    `detected[t]` are the boxes the detector found in frame t, `hidden[t]` the boxes hidden there (each region being
    the box enlarged by `enlarge`, as `anonymize` does).
    """
    width, height = out_size
    leaks = 0
    for t in range(len(detected)):
        neighbours = [to_frame(detected[s], views[s], views[t], out_size) for s in (t - 1, t + 1)
                      if 0 <= s < len(detected) and len(detected[s])]
        if not neighbours:
            continue
        faces = _distinct(np.concatenate(neighbours))
        hidden_here = np.zeros((height, width), bool)
        for box in np.asarray(hidden[t]).reshape(-1, 4):
            x0, y0, x1, y1 = anonymize.region_box(box, enlarge, width, height)
            hidden_here[y0:y1, x0:x1] = True
        for box in faces:
            full = max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)
            x0, y0 = int(np.floor(max(box[0], 0))), int(np.floor(max(box[1], 0)))
            x1, y1 = int(np.ceil(min(box[2], width))), int(np.ceil(min(box[3], height)))
            if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) < IN_FRAME * full:
                continue
            leaks += hidden_here[y0:y1, x0:x1].mean() < covered
    return leaks


def _distinct(boxes: np.ndarray) -> np.ndarray:
    """One box per face when both neighbours saw it (overlapping boxes: keep the first)."""
    kept: list[np.ndarray] = []
    for box in boxes:
        if not kept or iou_matrix(box[None], np.stack(kept)).max() < 0.5:
            kept.append(box)
    return np.array(kept).reshape(-1, 4)
