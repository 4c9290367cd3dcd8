"""Pictures of the pixel-loss-versus-GAN lesson: both generators' patches next to the real ones, and histograms of
their output values (the pixel loss piles up at the gray average, the GAN at black and white)."""
from __future__ import annotations

import cv2
import numpy as np

from models import draw
from models.gan_lesson import NEAR, LessonReport

TILE = 64  # px a side of each patch, pixels kept visible (nearest)
_LABEL_WIDTH = 150
_BACKGROUND = (255, 255, 255)
_FRAME = (120, 120, 120)  # every patch framed, so a white one stands out from the page
_INK = (30, 30, 30)
_BARS = {"pixel": (66, 133, 244), "gan": (219, 68, 55)}
_MODE_ZONE = (205, 236, 205)  # light green: within NEAR of 0 or 1
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def side_by_side(report: LessonReport) -> np.ndarray:
    """RGB uint8: one column per fixed input; rows: the input (texture only: its low-res picture), the pixel-loss
    generator's output, the GAN's output, and the two real versions."""
    rows = []
    if report.variant == "texture":
        rows.append(("input (low-res)", _input_pictures(report)))
    rows += [(f"{report.pixel_loss_name} loss", report.pixel_outputs), ("GAN", report.gan_outputs),
             ("real version A", report.real_versions[0]), ("real version B", report.real_versions[1])]
    lines = [_labelled(label, draw.tile_row([_tile(patch) for patch in patches], gap=8)) for label, patches in rows]
    return _stack(lines, title=f"step {report.step} of {report.steps}")


def histograms(report: LessonReport, width: int = 420, height: int = 150) -> np.ndarray:
    """RGB uint8: the two generators' histograms of output values on the ambiguous pixels, one above the other,
    with the zones within 0.1 of black and of white shaded."""
    charts = [_histogram(report.pixel_histogram, f"{report.pixel_loss_name} loss", _BARS["pixel"], width, height),
              _histogram(report.gan_histogram, "GAN", _BARS["gan"], width, height)]
    return _stack(charts, title="output values where the real versions differ")


def _input_pictures(report: LessonReport) -> np.ndarray:
    """The texture's low-res inputs (each cell's value) as patches of the output's size."""
    cells = report.conditions[..., 0]  # every pixel of a cell carries the cell's low-res value
    grid = int(round(cells.shape[1] ** 0.5))
    low_res = cells.reshape(-1, grid, grid)
    scale = report.side // grid
    return (np.repeat(np.repeat(low_res, scale, 1), scale, 2) * 255).round().astype(np.uint8)


def _tile(patch: np.ndarray) -> np.ndarray:
    """A gray patch (uint8) as a framed RGB tile of TILE pixels a side."""
    tile = cv2.resize(patch, (TILE, TILE), interpolation=cv2.INTER_NEAREST)
    tile = np.repeat(tile[..., None], 3, axis=2)
    return cv2.copyMakeBorder(tile, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=_FRAME)


def _labelled(label: str, row: np.ndarray) -> np.ndarray:
    canvas = np.full((row.shape[0], _LABEL_WIDTH + row.shape[1], 3), _BACKGROUND, np.uint8)
    canvas[:, _LABEL_WIDTH:] = row
    cv2.putText(canvas, label, (6, row.shape[0] // 2 + 5), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
    return canvas


def _stack(parts: list[np.ndarray], title: str, gap: int = 10) -> np.ndarray:
    """Parts one above the other under a title line, on the background colour."""
    width = max(part.shape[1] for part in parts) + 2 * gap
    height = 28 + sum(part.shape[0] + gap for part in parts)
    canvas = np.full((height, width, 3), _BACKGROUND, np.uint8)
    cv2.putText(canvas, title, (gap, 19), _FONT, 0.5, _INK, 1, cv2.LINE_AA)
    y = 28
    for part in parts:
        canvas[y:y + part.shape[0], gap:gap + part.shape[1]] = part
        y += part.shape[0] + gap
    return canvas


def _histogram(counts: np.ndarray, label: str, color: tuple[int, int, int], width: int, height: int) -> np.ndarray:
    """One bar chart of `counts` over [0, 1] (share of values per bin), axis ticks at 0, 0.5 and 1."""
    margin_left, margin_bottom, top = 10, 22, 18
    plot_w, plot_h = width - 2 * margin_left, height - margin_bottom - top
    canvas = np.full((height, width, 3), 255, np.uint8)
    x_of = lambda value: margin_left + int(round(value * plot_w))  # noqa: E731 - a tiny local scale
    for start, end in ((0.0, NEAR), (1.0 - NEAR, 1.0)):
        cv2.rectangle(canvas, (x_of(start), top), (x_of(end), top + plot_h), _MODE_ZONE, -1)
    shares = counts / max(int(counts.sum()), 1)
    bins = len(counts)
    for index, share in enumerate(shares):
        bar = int(round(share * plot_h))
        if bar:
            cv2.rectangle(canvas, (x_of(index / bins) + 1, top + plot_h - bar), (x_of((index + 1) / bins) - 1,
                          top + plot_h), color, -1)
    cv2.line(canvas, (margin_left, top + plot_h), (margin_left + plot_w, top + plot_h), _INK, 1)
    for value, text in ((0.0, "0 black"), (0.5, "0.5"), (1.0, "1 white")):
        x = x_of(value)
        cv2.line(canvas, (x, top + plot_h), (x, top + plot_h + 4), _INK, 1)
        size = cv2.getTextSize(text, _FONT, 0.4, 1)[0][0]
        x_text = min(max(x - size // 2, 0), width - size)
        cv2.putText(canvas, text, (x_text, height - 6), _FONT, 0.4, _INK, 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{label}: {shares.max():.0%} of values in the tallest bin", (margin_left, 13), _FONT, 0.42,
                _INK, 1, cv2.LINE_AA)
    return canvas
