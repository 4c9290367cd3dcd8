"""Drawing results on images, built on torchvision's drawing utilities (boxes, keypoints), numpy in and out."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_keypoints

# torchvision sizes label text only with a TrueType font; use one if the system has it, else its small bitmap font.
_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf",
          "/Library/Fonts/Arial.ttf", "C:/Windows/Fonts/arial.ttf")
_FONT = next((path for path in _FONTS if Path(path).is_file()), None)

INSTANCE_COLORS = ("#00e5ff", "#ff3df5", "#ffe600", "#3dff6e", "#ff8a00", "#8c7bff", "#ff4d4d", "#00ff9d")
TILE = 224  # px a side of each heatmap tile in the teaching panels
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


def colorize(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (H, W) -> RGB uint8 (H, W, 3) with the perceptually ordered inferno colour map."""
    levels = np.clip(np.nan_to_num(values) * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def overlay(rgb: np.ndarray, values: np.ndarray, strength: float = 0.75) -> np.ndarray:
    """Blend a [0, 1] map (H, W) over the image: opaque where the map is high, the photo where it is low."""
    alpha = (strength * np.clip(np.nan_to_num(values), 0, 1))[..., None]
    return (rgb * (1 - alpha) + colorize(values) * alpha).round().astype(np.uint8)


def heatmap_tile(values: np.ndarray, marks: np.ndarray | None = None, side: int = TILE) -> np.ndarray:
    """A [0, 1] heatmap as a square RGB tile, pixels kept visible (nearest), with optional points (K, 2) in the
    heatmap's coordinates marked."""
    tile = cv2.resize(colorize(values), (side, side), interpolation=cv2.INTER_NEAREST)
    if marks is not None and len(marks):
        scale = np.array([side / values.shape[1], side / values.shape[0]])
        tile = points(tile, (np.asarray(marks, np.float32).reshape(1, -1, 2) * scale), "#00e5ff", radius=3)
    return tile


def tile_row(tiles: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """Tiles side by side on white, `gap` pixels apart."""
    height = max(tile.shape[0] for tile in tiles)
    width = sum(tile.shape[1] for tile in tiles) + gap * (len(tiles) - 1)
    row = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for tile in tiles:
        row[:tile.shape[0], x:x + tile.shape[1]] = tile
        x += tile.shape[1] + gap
    return row


def skeletons(rgb: np.ndarray, keypoints: np.ndarray, visible: np.ndarray | None, connectivity,
              colors=INSTANCE_COLORS, radius: int | None = None) -> np.ndarray:
    """Instances (N, K, 2) drawn with torchvision's draw_keypoints and `connectivity`, one colour per instance;
    invisible points (and their lines) are left out."""
    if len(keypoints) == 0:
        return rgb.copy()
    image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)
    radius = radius or max(2, round(max(rgb.shape[:2]) / 250))
    for index, points in enumerate(np.asarray(keypoints, np.float32)):
        seen = None if visible is None else torch.from_numpy(np.asarray(visible[index:index + 1], bool))
        color, points = colors[index % len(colors)], torch.from_numpy(points[None])
        image = draw_keypoints(image, points, connectivity=list(connectivity), colors=color, radius=radius,
                               width=max(1, radius - 1), visibility=seen)
        image = draw_keypoints(image, points, colors=color, radius=radius, visibility=seen)  # points over lines
    return image.permute(1, 2, 0).numpy()
