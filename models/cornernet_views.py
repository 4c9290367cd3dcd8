"""CornerNet's teaching views: the boxes, both corner heatmaps with their peaks, and the corner pairs."""
from __future__ import annotations

import numpy as np

from . import draw
from .detections import Detections, detections_view, dim, heatmap_view, lines, marker_radius

TOP_LEFT_COLOR = "#00e5ff"
BOTTOM_RIGHT_COLOR = "#ff3df5"
# The images `render` returns, in display order, with a caption for the UI.
VIEWS = (
    ("detections", "Detections"),
    ("top_left_heatmap", "Top-left corner heatmap (peaks marked)"),
    ("bottom_right_heatmap", "Bottom-right corner heatmap (peaks marked)"),
    ("corner_pairs", "Corner pairs and their embedding values"),
)


def pairs_view(rgb: np.ndarray, found: Detections) -> np.ndarray:
    """CornerNet's idea in one picture: every box joins a top-left corner to a bottom-right corner whose embeddings
    are close (|e_tl - e_br| <= 0.5); each pair is a line, with the two embedding values written at its ends."""
    image = dim(rgb)
    if not len(found):
        return image
    colors = [draw.INSTANCE_COLORS[i % len(draw.INSTANCE_COLORS)] for i in range(len(found))]
    image = lines(image, [((x1, y1), (x2, y2)) for x1, y1, x2, y2 in found.boxes], colors)
    image = draw.points(image, found.boxes[:, None, 0:2], TOP_LEFT_COLOR, marker_radius(rgb))
    image = draw.points(image, found.boxes[:, None, 2:4], BOTTOM_RIGHT_COLOR, marker_radius(rgb))
    if found.corner_embeddings is None:
        return image
    texts = []
    for (x1, y1, x2, y2), (tl, br) in zip(found.boxes, found.corner_embeddings):
        texts += [(int(x1), int(y1), f"{tl:+.2f}"), (int(x2), int(y2), f"{br:+.2f}")]
    return draw.texts(image, texts)


def render(rgb: np.ndarray, found: Detections, class_id: int | None, min_score: float) -> dict[str, np.ndarray]:
    """Every view of VIEWS for one result; the heatmaps show class `class_id` (None: all) and peaks >= min_score."""
    return {"detections": detections_view(rgb, found),
            "top_left_heatmap": heatmap_view(rgb, found, "top_left", class_id, min_score, TOP_LEFT_COLOR),
            "bottom_right_heatmap": heatmap_view(rgb, found, "bottom_right", class_id, min_score,
                                                 BOTTOM_RIGHT_COLOR),
            "corner_pairs": pairs_view(rgb, found)}
