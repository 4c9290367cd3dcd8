"""Five face points two ways: regressed as coordinates by a face detector, or read off FAN's 68 heatmap peaks.

RetinaFace and CenterFace regress five points per face (eye centres, nose tip, mouth corners) as numbers from their
heads; FAN classifies 68 heatmaps and takes their peaks. The same five points follow from FAN's 68 (the iBUG 300-W
markup): each eye's centre is the mean of its six contour points, the nose tip is point 30 and the mouth corners are
48 and 54 (0-based). This module maps 68 points to those five, measures how far the two answers lie apart, and
draws them on the face in two colours. Plain numpy in and out; it knows no network.
"""
from __future__ import annotations

import cv2
import numpy as np

from . import draw

# The detectors' order (RetinaFace's, CenterFace's): "left" is the image's left, i.e. the subject's right.
FIVE_POINT_NAMES = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")
# For each of the five, the 68-point indices whose mean it is. In the 68-point markup, 36-41 is the subject's right
# eye (the image's left), 42-47 the subject's left eye, 30 the tip of the nose bridge, 48 and 54 the outer mouth
# corners on the image's left and right.
FACE68_FOR_FIVE = (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,))
REGRESSED_COLOR = "#00e5ff"  # cyan: the detector's regressed coordinates
HEATMAP_COLOR = "#ff3df5"  # magenta: FAN's heatmap points
VIEW_SIDE = 384  # px: the longer side of the zoomed comparison view
_CONTEXT = 1.5  # the view shows this many face-box sizes around the face's centre


def five_from_68(points68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) points in the 68-point markup -> (..., 5, 2) eye centres, nose tip and mouth corners."""
    points68 = np.asarray(points68, np.float32)
    if points68.shape[-2:] != (68, 2):
        raise ValueError(f"expected (..., 68, 2) points, got shape {points68.shape}")
    return np.stack([points68[..., list(group), :].mean(axis=-2) for group in FACE68_FOR_FIVE], axis=-2)


def distances(regressed: np.ndarray, from_heatmaps: np.ndarray) -> np.ndarray:
    """Euclidean distance in pixels between matching points: (..., 5, 2) twice -> (..., 5)."""
    return np.linalg.norm(np.asarray(regressed, np.float64) - np.asarray(from_heatmaps, np.float64), axis=-1)


def _pair(point) -> list[float]:
    return [round(float(point[0]), 2), round(float(point[1]), 2)]


def comparison_table(regressed: np.ndarray, from_heatmaps: np.ndarray) -> list[dict]:
    """One JSON-ready row per face: each point from both methods with their distance, the mean distance, and the
    detector's eye distance (the usual scale for landmark errors: mean / inter-ocular is the NME)."""
    rows = []
    for face, (ours, theirs) in enumerate(zip(np.asarray(regressed), np.asarray(from_heatmaps))):
        apart = distances(ours, theirs)
        rows.append({
            "face": face,
            "points": [{"name": name, "regressed": _pair(a), "fan": _pair(b), "distance_px": round(float(d), 2)}
                       for name, a, b, d in zip(FIVE_POINT_NAMES, ours, theirs, apart)],
            "mean_px": round(float(apart.mean()), 2),
            "interocular_px": round(float(np.linalg.norm(ours[1] - ours[0])), 2),
        })
    return rows


def _view_window(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """A square of _CONTEXT face sizes around the box's centre, cut to the image: x1, y1, x2, y2 in whole pixels."""
    x1, y1, x2, y2 = (float(v) for v in box)
    half = max(x2 - x1, y2 - y1, 1.0) * _CONTEXT / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = max(0, int(np.floor(cx - half))), max(0, int(np.floor(cy - half)))
    right, bottom = min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def _on_canvas(points: np.ndarray) -> np.ndarray:
    """Points that are not numbers (a network gone wrong) are moved off the picture rather than failing the draw."""
    return np.where(np.isfinite(points), points, -1e4).astype(np.float32)


def comparison_view(rgb: np.ndarray, box: np.ndarray, regressed: np.ndarray, from_heatmaps: np.ndarray,
                    side: int = VIEW_SIDE) -> np.ndarray:
    """One face zoomed to `side` px: its box, the detector's five points (cyan) and FAN's five (magenta), each pair
    joined by a thin white line, so the gap between the two answers is visible."""
    height, width = rgb.shape[:2]
    left, top, right, bottom = _view_window(box, width, height)
    scale = side / max(right - left, bottom - top)
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    crop = np.ascontiguousarray(rgb[top:bottom, left:right])
    zoomed = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

    def placed(points) -> np.ndarray:
        return _on_canvas((np.asarray(points, np.float32) - [left, top]) * scale)

    ours, theirs = placed(regressed).reshape(5, 2), placed(from_heatmaps).reshape(5, 2)
    view = draw.boxes(zoomed, placed(np.asarray(box, np.float32).reshape(2, 2)).reshape(1, 4), color="#00ff88")
    view = draw.skeletons(view, np.stack([ours, theirs], axis=1), None, ((0, 1),), colors=("#ffffff",), radius=1)
    radius = max(3, side // 96)
    view = draw.points(view, theirs[None], HEATMAP_COLOR, radius=radius)
    return draw.points(view, ours[None], REGRESSED_COLOR, radius=radius)


def blank_view(side: int = VIEW_SIDE) -> np.ndarray:
    """What the comparison view shows when there is no face."""
    return np.full((side, side, 3), 255, np.uint8)
