"""Every picture primitive, numpy in and out: boxes, keypoints and skeletons (torchvision's drawing utilities),
heat maps and tiles, and masks and segment maps (colours, overlays, label images, text on segments).

Instance masks are drawn with torchvision's `draw_segmentation_masks`; segment maps (one id per pixel) are coloured
with a lookup table, which is exact and fast for any number of segments.
"""
from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import draw_bounding_boxes, draw_keypoints, draw_segmentation_masks

# torchvision sizes label text only with a TrueType font; use one if the system has it, else its small bitmap font.
_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf",
          "/Library/Fonts/Arial.ttf", "C:/Windows/Fonts/arial.ttf")
FONT = next((path for path in _FONTS if Path(path).is_file()), None)
_GOLDEN = 0.618033988749895  # successive hues a golden-ratio turn apart never sit next to each other

INSTANCE_COLORS = ("#00e5ff", "#ff3df5", "#ffe600", "#3dff6e", "#ff8a00", "#8c7bff", "#ff4d4d", "#00ff9d")
TILE = 224  # px a side of each heatmap tile in the teaching panels
# Five face landmarks: eyes, nose, mouth corners (RetinaFace's order), each in its own colour.
FACE_LANDMARK_COLORS = ["#00e5ff", "#ff3df5", "#ffe600", "#3dff6e", "#ff8a00"]


def _font_size(rgb: np.ndarray) -> int:
    """Label text scaled to the image, readable on a thumbnail and on a big photo."""
    return max(10, round(max(rgb.shape[:2]) / 60))


def boxes(rgb: np.ndarray, boxes_xyxy: np.ndarray, labels: list[str] | None = None, color: str | list = "#00ff88",
          width: int | None = None) -> np.ndarray:
    """Boxes (N x 4, x1 y1 x2 y2 in pixels) with optional labels, line width scaled to the image; `color` is one
    colour or a list with one per box (names, "#rrggbb" or RGB tuples), labels in their box's colour."""
    if len(boxes_xyxy) == 0:
        return rgb.copy()
    image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)  # a writable copy: torchvision draws on it
    width = width or max(1, round(max(rgb.shape[:2]) / 300))
    font = {"font": FONT, "font_size": _font_size(rgb)} if FONT else {}
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


def colorize(values: np.ndarray, colors: dict[int, tuple[int, int, int]] | None = None) -> np.ndarray:
    """Values in [0, 1] (H, W) -> RGB uint8 (H, W, 3) with the perceptually ordered inferno colour map; with
    `colors` (id -> RGB), `values` is a segment map instead and each id gets its colour (see `_colorize_segments`)."""
    if colors is not None:
        return _colorize_segments(values, colors)
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


def color(index: int, jitter: int = 0) -> tuple[int, int, int]:
    """A bright, distinct colour for `index` (never black, so "no colour" stays unambiguous); `jitter` > 0 gives
    other shades near the same hue (instances of one class)."""
    hue = (index * _GOLDEN) % 1.0
    saturation, value = 0.85, 0.95
    if jitter:
        spread = (jitter * _GOLDEN) % 1.0 - 0.5  # in [-0.5, 0.5), different for every jitter
        hue = (hue + 0.12 * spread) % 1.0
        saturation = 0.85 - 0.35 * ((jitter * 0.37) % 1.0)
        value = 0.95 - 0.35 * ((jitter * 0.61) % 1.0)
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def overlay_masks(rgb: np.ndarray, masks: np.ndarray, colors: list[tuple[int, int, int]],
                  opacity: float = 0.5) -> np.ndarray:
    """Masks (N x H x W bool) painted over the image; the last mask wins where masks overlap."""
    masks = np.asarray(masks, bool)
    if len(masks) == 0:
        return rgb.copy()
    out = np.array(rgb)
    # torchvision blacks out pixels where masks overlap; painting one mask at a time keeps the top one instead,
    # and each is drawn on the crop around it, so many small masks on a big photo stay cheap.
    for mask, rgb_color in zip(masks, colors):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows) == 0:
            continue
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        crop = torch.from_numpy(np.ascontiguousarray(out[y0:y1, x0:x1])).permute(2, 0, 1)
        drawn = draw_segmentation_masks(crop, torch.from_numpy(np.ascontiguousarray(mask[y0:y1, x0:x1])),
                                        alpha=opacity, colors=[tuple(rgb_color)])
        out[y0:y1, x0:x1] = drawn.permute(1, 2, 0).numpy()
    return out


def label_image(masks: np.ndarray, ids: list[int] | None = None) -> np.ndarray:
    """One id per pixel (0 = none) from N x H x W masks, uint8 when ids fit, else uint16.

    Masks are painted in order, so where they overlap the later one keeps the pixel.
    """
    masks = np.asarray(masks, bool)
    ids = list(range(1, len(masks) + 1)) if ids is None else list(ids)
    dtype = np.uint8 if max(ids, default=0) <= 255 else np.uint16
    if max(ids, default=0) > 65535:
        raise ValueError("a label image holds at most 65535 ids")
    out = np.zeros(masks.shape[1:], dtype)
    for mask, value in zip(masks, ids):
        out[mask] = value
    return out


def _colorize_segments(segment_map: np.ndarray, colors: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """RGB image of a segment map: each id in `colors` gets its colour, every other pixel stays black."""
    segment_map = np.asarray(segment_map)
    out = np.zeros(segment_map.shape + (3,), np.uint8)
    if not colors:
        return out
    ids = np.array(sorted(colors), dtype=np.int64)
    table = np.array([colors[i] for i in ids], np.uint8)
    index = np.searchsorted(ids, segment_map)  # a lookup table beats one comparison per segment
    index = np.clip(index, 0, len(ids) - 1)
    known = ids[index] == segment_map
    out[known] = table[index[known]]
    return out


def blend(rgb: np.ndarray, colored: np.ndarray, where: np.ndarray, opacity: float) -> np.ndarray:
    """The image with `colored` mixed in at `opacity` on the pixels of `where`; the rest stays as it was."""
    out = rgb.copy()
    mixed = rgb[where].astype(np.float32) * (1.0 - opacity) + colored[where].astype(np.float32) * opacity
    out[where] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    return out


def anchor(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel deepest inside the mask: a label written there stays on its segment, even on a ring."""
    from scipy.ndimage import distance_transform_edt

    padded = np.pad(np.asarray(mask, bool), 1)  # so the image border counts as the segment's edge
    depth = distance_transform_edt(padded)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y)


def texts(rgb: np.ndarray, items: list[tuple[int, int, str]], size: int | None = None) -> np.ndarray:
    """Short labels centred at (x, y), white on a dark box so they read on any colour."""
    if not items:
        return rgb.copy()
    image = Image.fromarray(rgb)
    canvas = ImageDraw.Draw(image)
    size = size or _font_size(rgb)
    font = ImageFont.truetype(FONT, size) if FONT else ImageFont.load_default()
    for x, y, text in items:
        left, top, right, bottom = canvas.textbbox((0, 0), text, font=font)
        w, h = right - left, bottom - top
        x0 = min(max(0, x - w // 2), max(0, rgb.shape[1] - w - 2))
        y0 = min(max(0, y - h // 2), max(0, rgb.shape[0] - h - 2))
        canvas.rectangle((x0 - 1, y0 - 1, x0 + w + 1, y0 + h + 1), fill=(0, 0, 0))
        canvas.text((x0 - left, y0 - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)
