"""CenterNet's teaching views: the boxes, the centre heatmap with its peaks, and each box as centre plus size."""
from __future__ import annotations

import numpy as np

from . import draw
from .detections import (BOX_COLOR, PEAK_COLOR, Detections, detections_view, dim, drawable, heatmap_view, lines,
                         marker_radius)

# The images `render` returns, in display order, with a caption for the UI.
VIEWS = (
    ("detections", "Detections"),
    ("center_heatmap", "Centre heatmap (peaks marked)"),
    ("centers", "Each box = centre peak + regressed width and height"),
)


def centers_view(rgb: np.ndarray, found: Detections) -> np.ndarray:
    """CenterNet's idea in one picture: each box is a centre point (a heatmap peak) plus a regressed width and
    height, drawn as the two lines through the centre that span the box."""
    boxes = drawable(found.boxes)
    image = draw.boxes(dim(rgb), boxes, None, color=BOX_COLOR, width=1)
    segments = [((x1, (y1 + y2) / 2), (x2, (y1 + y2) / 2)) for x1, y1, x2, y2 in boxes] + \
               [(((x1 + x2) / 2, y1), ((x1 + x2) / 2, y2)) for x1, y1, x2, y2 in boxes]
    image = lines(image, segments, [BOX_COLOR] * len(segments))
    centers = found.centers if found.centers is not None else np.zeros((0, 2), np.float32)
    return draw.points(image, centers.reshape(1, -1, 2), PEAK_COLOR, marker_radius(rgb)) if len(centers) else image


def render(rgb: np.ndarray, found: Detections, class_id: int | None, min_score: float) -> dict[str, np.ndarray]:
    """Every view of VIEWS for one result; the heatmap shows class `class_id` (None: all) and peaks >= min_score."""
    return {"detections": detections_view(rgb, found),
            "center_heatmap": heatmap_view(rgb, found, "center", class_id, min_score),
            "centers": centers_view(rgb, found)}
