"""Drawing results on images, built on torchvision's drawing utilities (boxes, keypoints), numpy in and out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_keypoints

# torchvision sizes label text only with a TrueType font; use one if the system has it, else its small bitmap font.
_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf",
          "/Library/Fonts/Arial.ttf", "C:/Windows/Fonts/arial.ttf")
_FONT = next((path for path in _FONTS if Path(path).is_file()), None)

# Five face landmarks: eyes, nose, mouth corners (RetinaFace's order), each in its own colour.
FACE_LANDMARK_COLORS = ["#00e5ff", "#ff3df5", "#ffe600", "#3dff6e", "#ff8a00"]


def boxes(rgb: np.ndarray, boxes_xyxy: np.ndarray, labels: list[str] | None = None, color: str = "#00ff88",
          width: int | None = None) -> np.ndarray:
    """Boxes (N x 4, x1 y1 x2 y2 in pixels) with optional labels, line width scaled to the image."""
    if len(boxes_xyxy) == 0:
        return rgb.copy()
    image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)  # a writable copy: torchvision draws on it
    width = width or max(1, round(max(rgb.shape[:2]) / 300))
    font = {"font": _FONT, "font_size": max(10, round(max(rgb.shape[:2]) / 60))} if _FONT else {}
    drawn = draw_bounding_boxes(image, torch.as_tensor(np.asarray(boxes_xyxy), dtype=torch.float32), labels=labels,
                                colors=color, width=width, label_colors=color, **font)
    return drawn.permute(1, 2, 0).numpy()


def points(rgb: np.ndarray, keypoints: np.ndarray, colors: list[str] | str = "#ff3df5",
           radius: int | None = None) -> np.ndarray:
    """Keypoints (N x K x 2); with a list of K colours, each keypoint index gets its own colour."""
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.size == 0:
        return rgb.copy()
    image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)
    radius = radius or max(1, round(max(rgb.shape[:2]) / 250))
    if isinstance(colors, str):
        image = draw_keypoints(image, torch.from_numpy(keypoints), colors=colors, radius=radius)
    else:
        for index, color in enumerate(colors):
            image = draw_keypoints(image, torch.from_numpy(keypoints[:, index:index + 1]), colors=color, radius=radius)
    return image.permute(1, 2, 0).numpy()
