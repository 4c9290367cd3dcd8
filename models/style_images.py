"""Style images the tab ships without shipping artwork: patterns painted here, the same on every machine.

`resolve_style` turns the `style` option (empty, a built-in name, a file path, an array) into an RGB image; style
images for AdaIN and Gatys are files the user gives or these patterns, never downloaded.
"""
from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from . import images
from .images import LoadedImage

BUILTIN_STYLES = ("stained-glass", "waves", "swirls")
DEFAULT_STYLE = "stained-glass"
_STYLE_FOLDER = Path(tempfile.gettempdir()) / "cvpg-examples"  # beside assets' examples, where Gradio may serve


@lru_cache(maxsize=None)
def builtin_style(name: str, size: int = 512) -> np.ndarray:
    """A procedural style image (RGB uint8, size x size), the same on every machine."""
    painters = {"stained-glass": _paint_stained_glass, "waves": _paint_waves, "swirls": _paint_swirls}
    if name not in painters:
        raise ValueError(f"unknown built-in style {name!r}; valid: {', '.join(BUILTIN_STYLES)}")
    image = painters[name](size)
    image.setflags(write=False)  # shared by every caller through the cache
    return image


def builtin_style_path(name: str, size: int = 512) -> str:
    """The built-in style written once as a PNG (for a UI's examples or the command line)."""
    target = _STYLE_FOLDER / f"style-{name}-{size}.png"
    if not target.is_file():
        _STYLE_FOLDER.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=_STYLE_FOLDER, suffix=".png")
        os.close(handle)
        Image.fromarray(builtin_style(name, size)).save(temp)
        os.replace(temp, target)
    return str(target)


def _paint_stained_glass(size: int) -> np.ndarray:
    """Voronoi cells of jewel colours, brighter at their centres, with dark lead lines where two cells meet."""
    rng = np.random.default_rng(7)
    seeds = rng.uniform(0, size, (90, 2)).astype(np.float32)
    palette = np.array([[178, 34, 52], [25, 70, 160], [20, 130, 80], [230, 170, 30], [110, 40, 140],
                        [20, 150, 170], [220, 90, 30], [240, 220, 160]], np.float32)
    colors = palette[rng.integers(0, len(palette), len(seeds))] * rng.uniform(0.75, 1.1, (len(seeds), 1))
    image = np.empty((size, size, 3), np.float32)
    xs = np.arange(size, dtype=np.float32)
    cell_radius = size / np.sqrt(len(seeds))
    for top in range(0, size, 64):  # 64 rows at a time keeps the distance table small
        ys = np.arange(top, min(top + 64, size), dtype=np.float32)
        d2 = (ys[:, None, None] - seeds[:, 1]) ** 2 + (xs[None, :, None] - seeds[:, 0]) ** 2
        nearest = np.argmin(d2, axis=2)
        two = np.sqrt(np.partition(d2, 1, axis=2)[..., :2])
        shade = 1.0 - 0.35 * np.clip(two[..., 0] / cell_radius, 0, 1)
        band = colors[nearest] * shade[..., None]
        band[two[..., 1] - two[..., 0] < size / 128] = (25, 22, 20)  # the lead between panes
        image[top:top + len(ys)] = band
    image += rng.normal(0, 6, image.shape)  # glass grain
    return np.clip(image, 0, 255).astype(np.uint8)


def _paint_waves(size: int) -> np.ndarray:
    """Bands of a rolling sea, navy to foam, bent by a few crossing sine waves (a nod to woodblock prints)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    phase = (9 * y + 1.2 * np.sin(2 * np.pi * (1.3 * x + 0.4 * y)) + 0.35 * np.sin(2 * np.pi * (5 * x - 2 * y))
             + 0.15 * np.sin(2 * np.pi * (13 * x + 7 * y)))
    band = phase - np.floor(phase)
    stops = [0.0, 0.5, 0.8, 0.92, 1.0]
    colors = np.array([[12, 30, 70], [25, 75, 130], [110, 160, 200], [240, 235, 215], [240, 235, 215]], np.float32)
    image = np.stack([np.interp(band, stops, colors[:, channel]) for channel in range(3)], axis=2)
    rng = np.random.default_rng(11)
    image += rng.normal(0, 5, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _paint_swirls(size: int) -> np.ndarray:
    """Brush-like streaks along a field of vortices (line integral convolution of noise), blue night, yellow stars."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    rng = np.random.default_rng(5)
    centres = [(0.3, 0.3, 1.0), (0.72, 0.55, -1.0), (0.5, 0.85, 1.0), (0.12, 0.75, -1.0), (0.85, 0.15, 1.0)]

    def flow(px, py):
        vx, vy = np.full_like(px, 0.4), 0.15 * np.sin(6 * px)
        for cx, cy, spin in centres:
            dx, dy = px - cx, py - cy
            r2 = dx * dx + dy * dy + 1e-3
            strength = spin * np.exp(-r2 / 0.03) / np.sqrt(r2)
            vx, vy = vx - dy * strength, vy + dx * strength
        norm = np.sqrt(vx * vx + vy * vy) + 1e-6
        return vx / norm, vy / norm

    noise = gaussian_filter(rng.random((size, size)).astype(np.float32), 0.7)
    y0, x0 = np.mgrid[0:size, 0:size].astype(np.float32) / size
    streaks = noise.copy()
    for direction in (1.0, -1.0):
        px, py = x0.copy(), y0.copy()
        for _ in range(14):
            vx, vy = flow(px, py)
            px, py = px + direction * vx / size * 1.5, py + direction * vy / size * 1.5
            streaks += map_coordinates(noise, [py * size, px * size], order=1, mode="wrap")
    streaks = (streaks - streaks.mean()) / (streaks.std() + 1e-6)
    glow = sum(np.exp(-((x0 - cx) ** 2 + (y0 - cy) ** 2) / 0.006) for cx, cy, _ in centres)
    top, bottom = np.array([20, 40, 110], np.float32), np.array([45, 95, 170], np.float32)
    night = top * (1 - y0[..., None]) + bottom * y0[..., None]
    image = night + np.clip(glow, 0, 1)[..., None] * (np.array([240, 200, 60], np.float32) - night)
    image *= 1.0 + 0.3 * streaks[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def resolve_style(style) -> tuple[np.ndarray, str]:
    """A style image from an option value: "" (the default built-in), a built-in name, a file path, an array or a
    LoadedImage. Returns RGB uint8 and a label for the record."""
    if isinstance(style, LoadedImage):
        return style.rgb, "image"
    if isinstance(style, np.ndarray):
        return images.load(style).rgb, "image"
    name = str(style or "").strip() or DEFAULT_STYLE
    if name in BUILTIN_STYLES:
        return np.array(builtin_style(name)), name
    return images.load(name).rgb, Path(name).name
