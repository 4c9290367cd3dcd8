"""YOLACT's teaching pictures: the prototype grid, one detection's coefficients as a bar chart, and its mask assembled
step by step (weighted prototypes, their sum, the sigmoid, the crop to the box, the thresholded mask).

Signed maps (coefficient x prototype, their sum) are red for positive and blue for negative on one shared scale;
non-negative maps (prototypes, probabilities) use draw's inferno colour map.
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import draw, yolact

_TILE = 112  # px a side of each prototype tile
_POSITIVE, _NEGATIVE = np.array([214, 39, 40]), np.array([31, 119, 180])  # red for +, blue for -, white at 0


def signed_colors(values: np.ndarray, scale: float | None = None) -> np.ndarray:
    """A signed map as RGB: white at 0, red for positive, blue for negative, full colour at +-scale."""
    scale = float(np.abs(values).max()) if scale is None else scale
    t = np.clip(values / scale, -1, 1)[..., None] if scale > 0 else np.zeros(values.shape + (1,))
    color = np.where(t >= 0, _POSITIVE, _NEGATIVE)
    return np.round(255 - np.abs(t) * (255 - color)).astype(np.uint8)


def _tile(rgb: np.ndarray, side: int = _TILE, nearest: bool = False) -> np.ndarray:
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(rgb, (side, side), interpolation=interpolation)


def _captioned(tile: np.ndarray, text: str) -> np.ndarray:
    band = np.full((18, tile.shape[1], 3), 255, np.uint8)
    band = draw.texts(band, [(tile.shape[1] // 2, 9, text)], size=12)
    return np.concatenate([band, tile])


def _stack(rows: list[np.ndarray], gap: int = 6) -> np.ndarray:
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, gap), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    return np.concatenate(padded)[:-gap]


def prototype_grid(prototypes: np.ndarray, coefficients: np.ndarray | None = None, columns: int = 8,
                   side: int = _TILE) -> np.ndarray:
    """All K prototypes as tiles (each scaled to its own maximum, inferno), captioned with its index and, given a
    detection's coefficients, the weight that detection gives it."""
    tiles = []
    for k, proto in enumerate(prototypes):
        peak = float(proto.max())
        tile = _tile(draw.colorize(proto / peak if peak > 0 else proto), side)
        caption = f"#{k + 1}" if coefficients is None else f"#{k + 1}  {coefficients[k]:+.2f}"
        tiles.append(_captioned(tile, caption))
    rows = [draw.tile_row(tiles[i:i + columns], gap=4) for i in range(0, len(tiles), columns)]
    return _stack(rows, gap=4)


def assembly_view(rgb: np.ndarray, result: yolact.YolactResult, index: int, shown: int = 8,
                  side: int = _TILE) -> np.ndarray:
    """Detection `index`'s mask assembled step by step: the `shown` most heavily weighted prototypes times their
    coefficients (one shared red/blue scale), then the sum of all K, its sigmoid, the crop to the box, and the
    thresholded mask at image size."""
    steps = yolact.assembly_steps(result, index)
    scale = float(np.abs(steps.weighted).max()) or 1.0
    first = [_captioned(_tile(signed_colors(steps.weighted[k], scale), side),
                        f"{steps.coefficients[k]:+.2f} x #{k + 1}") for k in steps.order[:shown]]
    h, w = steps.linear.shape
    x1, y1, x2, y2 = steps.window
    window = np.array([[x1, y1, x2, y2]], np.float32) * side / np.array([w, h, w, h], np.float32)
    cropped = draw.boxes(_tile(draw.colorize(steps.cropped), side, nearest=True), window, color="#00e5ff", width=1)
    box = result.instances.boxes[index]
    mask_view = draw.overlay_masks(rgb, steps.mask[None], [draw.color(index)], 0.6)
    mask_view = draw.boxes(mask_view, box[None], color=draw.hex_color(draw.color(index)))
    scale_to = side * 2 / max(mask_view.shape[:2])
    mask_view = cv2.resize(mask_view, (max(1, round(mask_view.shape[1] * scale_to)),
                                       max(1, round(mask_view.shape[0] * scale_to))), interpolation=cv2.INTER_AREA)
    second = [_captioned(_tile(signed_colors(steps.linear), side), f"sum of all {len(steps.coefficients)}"),
              _captioned(_tile(draw.colorize(steps.sigmoid), side, nearest=True), "sigmoid"),
              _captioned(cropped, "crop to the box"),
              _captioned(mask_view, f"> {result.mask_threshold:g} at image size")]
    return _stack([draw.tile_row(first, gap=4), draw.tile_row(second, gap=4)])


def coefficient_chart(coefficients: np.ndarray, bar: int = 18, height: int = 150) -> np.ndarray:
    """The K coefficients of one detection as a bar chart (red up for positive, blue down for negative)."""
    count = len(coefficients)
    margin, label = 8, 16
    image = Image.new("RGB", (2 * margin + count * bar, height + label), (255, 255, 255))
    canvas = ImageDraw.Draw(image)
    font = ImageFont.truetype(draw.FONT, 10) if draw.FONT else ImageFont.load_default()
    middle, reach = height // 2, height // 2 - margin  # coefficients are tanh outputs, in [-1, 1]
    canvas.line((margin, middle, margin + count * bar, middle), fill=(120, 120, 120))
    for k, value in enumerate(np.clip(coefficients, -1, 1)):
        x0 = margin + k * bar + 2
        top = middle - round(float(value) * reach)
        color = tuple(int(c) for c in (_POSITIVE if value >= 0 else _NEGATIVE))
        canvas.rectangle((x0, min(top, middle), x0 + bar - 4, max(top, middle)), fill=color)
        if (k + 1) % 4 == 0 or k == 0:
            canvas.text((x0, height + 2), str(k + 1), fill=(60, 60, 60), font=font)
    return np.asarray(image)


def message_image(text: str, width: int = 480, height: int = 120) -> np.ndarray:
    """A white picture with one centred line: what a view shows when there is nothing to draw."""
    return draw.texts(np.full((height, width, 3), 255, np.uint8), [(width // 2, height // 2, text)], size=16)
