"""Heatmap maths for landmark localisation: Gaussian training targets, sub-pixel decoding, and the geometry that maps
heatmap pixels to image pixels (FAN's square face crop, Keypoint R-CNN's RoI boxes). numpy/torch only, no drawing.

One coordinate convention everywhere (torchvision's and face-alignment's): continuous coordinates in which the pixel
with index (row i, column j) covers [j, j + 1) x [i, i + 1), so its centre is (j + 0.5, i + 0.5). Image keypoints,
boxes and heatmap points all use it, which is what makes the mappings below plain scalings and shifts.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# face-alignment's constants (face_alignment/utils.py and its detectors).
SCALE_FACTOR = 200.0  # a face of scale s is a square of 200*s pixels
CENTER_Y_OFFSET = 0.12  # crop centre moved up by 12% of the box height: boxes reach the brows, points the chin
REFERENCE_SCALE_RETINAFACE = 165.0  # box (w + h) / scale for RetinaFace/SCRFD/YuNet boxes (195: S3FD's looser ones)
CROP_SIZE = 256
HEATMAP_SIZE = 64


# ----------------------------------------------------------------------------------------------------------------
# Training targets


def gaussian_target(points, size, sigma: float) -> np.ndarray:
    """One Gaussian heatmap per point: exp(-d^2 / (2 sigma^2)), d the distance from a pixel's centre to the point.

    points: (K, 2) x, y in the map's continuous coordinates; size: side or (width, height); sigma in map pixels.
    Returns (K, H, W) float32 whose continuous peak is exactly 1 at each point (a pixel whose centre is the point
    holds 1). Not truncated: the whole map is the target a heatmap-regression network (FAN, Hourglass) learns
    with a pixel-wise L2 loss.
    """
    width, height = (size, size) if np.isscalar(size) else size
    if sigma <= 0:
        raise ValueError(f"sigma must be positive; got {sigma}")
    points = np.asarray(points, np.float64).reshape(-1, 2)
    xs = np.arange(width) + 0.5  # pixel centres
    ys = np.arange(height) + 0.5
    gx = np.exp(-((xs[None, :] - points[:, :1]) ** 2) / (2 * sigma**2))  # (K, W): separable, so cheap
    gy = np.exp(-((ys[None, :] - points[:, 1:]) ** 2) / (2 * sigma**2))  # (K, H)
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def measure_sigma(heatmap: np.ndarray) -> float:
    """The sigma of a (non-truncated) Gaussian blob, from its second moment: the inverse of `gaussian_target`."""
    heatmap = np.asarray(heatmap, np.float64)
    total = heatmap.sum()
    ys, xs = np.mgrid[0:heatmap.shape[0], 0:heatmap.shape[1]] + 0.5
    mx, my = (heatmap * xs).sum() / total, (heatmap * ys).sum() / total
    variance = (heatmap * ((xs - mx) ** 2 + (ys - my) ** 2)).sum() / total / 2  # two axes
    return float(np.sqrt(variance))


# ----------------------------------------------------------------------------------------------------------------
# Decoding


def decode(heatmaps, refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (..., K, H, W) -> points (..., K, 2) x, y in heatmap coordinates and scores (..., K).

    A point is the centre of the arg-max pixel. With `refine` (face-alignment's `get_preds_fromhm`), it then moves a
    quarter pixel along each axis toward the higher of its two neighbours: a cheap sub-pixel guess that halves the
    worst-case quantisation error (0.5 -> 0.25 px) for a symmetric peak. Peaks on the border are not moved.
    The score is the heatmap's value at the arg-max.
    """
    maps = torch.as_tensor(heatmaps).detach().float().cpu()
    *lead, height, width = maps.shape
    flat = maps.reshape(-1, height * width)
    scores, index = flat.max(dim=1)
    col, row = index % width, index // width
    points = torch.stack([col, row], dim=1).float() + 0.5
    if refine:
        interior = (col > 0) & (col < width - 1) & (row > 0) & (row < height - 1)  # as the reference: both axes
        rows = torch.arange(flat.shape[0])
        c, r = col.clamp(1, width - 2), row.clamp(1, height - 2)
        grid = flat.reshape(-1, height, width)
        dx = grid[rows, r, c + 1] - grid[rows, r, c - 1]
        dy = grid[rows, r + 1, c] - grid[rows, r - 1, c]
        shift = torch.stack([dx.sign(), dy.sign()], dim=1) * 0.25
        points = points + shift * interior[:, None]
    return points.reshape(*lead, 2).numpy(), scores.reshape(lead).numpy()


# ----------------------------------------------------------------------------------------------------------------
# FAN's face crop: a square of 200 * scale image pixels around a centre, resampled to `resolution` pixels


@dataclass(frozen=True)
class CropTransform:
    """The similarity (scale + shift, no rotation) between image coordinates and a square crop's coordinates.

    face-alignment writes it as a 3x3 matrix in `transform()`; the crop covers the image square of side
    200 * scale centred at `center`, and any resolution of the crop (256 input, 64 heatmaps) is the same square.
    """

    center: tuple[float, float]
    scale: float

    @property
    def side(self) -> float:
        return SCALE_FACTOR * self.scale

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The image square the crop covers, x1, y1, x2, y2."""
        cx, cy = self.center
        half = self.side / 2
        return (cx - half, cy - half, cx + half, cy + half)

    def to_crop(self, points, resolution: int) -> np.ndarray:
        """Image points (..., 2) -> crop points at `resolution` pixels a side."""
        points = np.asarray(points, np.float64)
        return (points - np.asarray(self.center)) * (resolution / self.side) + resolution / 2

    def to_image(self, points, resolution: int) -> np.ndarray:
        """Crop points at `resolution` pixels a side (e.g. decoded 64x64 heatmap points) -> image points."""
        points = np.asarray(points, np.float64)
        return (points - resolution / 2) * (self.side / resolution) + np.asarray(self.center)

    def matrix(self, resolution: int) -> np.ndarray:
        """2x3 image->crop matrix on pixel *indices* (OpenCV's warpAffine convention: pixel j's centre is j)."""
        a = resolution / self.side
        cx, cy = self.center
        # continuous: u = a * (x - cx) + res/2; indices are continuous minus 0.5 on both sides.
        shift_x = a * (0.5 - cx) + resolution / 2 - 0.5
        shift_y = a * (0.5 - cy) + resolution / 2 - 0.5
        return np.array([[a, 0.0, shift_x], [0.0, a, shift_y]])


def face_crop_transform(box, reference_scale: float = REFERENCE_SCALE_RETINAFACE) -> CropTransform:
    """face-alignment's centre and scale from a detector box (x1, y1, x2, y2): the box centre moved up by 12% of the
    box height, and scale = (width + height) / reference_scale."""
    x1, y1, x2, y2 = (float(v) for v in box)
    center = ((x1 + x2) / 2, (y1 + y2) / 2 - (y2 - y1) * CENTER_Y_OFFSET)
    scale = ((x2 - x1) + (y2 - y1)) / reference_scale
    if not scale > 0:
        raise ValueError(f"a face box needs a positive size; got {box}")
    return CropTransform(center, scale)


def crop(rgb: np.ndarray, transform: CropTransform, resolution: int = CROP_SIZE) -> np.ndarray:
    """The crop as a resolution x resolution uint8 image; outside the image is black (as the reference pads)."""
    # The reference crops at integer pixels then resizes; one affine warp does both without rounding the box.
    return cv2.warpAffine(rgb, transform.matrix(resolution), (resolution, resolution), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


# ----------------------------------------------------------------------------------------------------------------
# Heatmap -> image


def roi_to_heatmap(points, box, heatmap_size) -> np.ndarray:
    """Image points (..., 2) -> coordinates of a heatmap (side, or (w, h)) that covers the image box x1, y1, x2, y2."""
    width, height = (heatmap_size, heatmap_size) if np.isscalar(heatmap_size) else heatmap_size
    x1, y1, x2, y2 = (float(v) for v in box)
    scale = np.array([width / max(x2 - x1, 1e-6), height / max(y2 - y1, 1e-6)])
    return (np.asarray(points, np.float64) - np.array([x1, y1])) * scale


def heatmap_to_image(heatmap, box, image_size: tuple[int, int], fill: float | None = None) -> np.ndarray:
    """Warp one heatmap (H, W) that covers the image box (x1, y1, x2, y2) onto the whole image: (h, w) float32.

    The same mapping torchvision's `heatmaps_to_keypoints` uses for Keypoint R-CNN's 56x56 RoI maps (bicubic
    resampling over the box, pixel centres at +0.5), evaluated at every image pixel's centre; a FAN heatmap is the
    special case of a square box (`CropTransform.box`). torchvision clamps a box side below 1 px to 1; so does this.
    Outside the box the map holds `fill` (default: the heatmap's minimum, i.e. "nothing here").
    """
    maps = torch.as_tensor(heatmap).detach().float().cpu()
    height, width = maps.shape
    image_w, image_h = image_size
    x1, y1, x2, y2 = (float(v) for v in box)
    box_w, box_h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    out = np.full((image_h, image_w), float(maps.min()) if fill is None else fill, np.float32)
    # Image pixel columns/rows whose centres fall inside the box.
    c0, c1 = max(int(np.ceil(x1 - 0.5)), 0), min(int(np.floor(x1 + box_w - 0.5)), image_w - 1)
    r0, r1 = max(int(np.ceil(y1 - 0.5)), 0), min(int(np.floor(y1 + box_h - 0.5)), image_h - 1)
    if c1 < c0 or r1 < r0:
        return out
    u = (torch.arange(c0, c1 + 1, dtype=torch.float64) + 0.5 - x1) / box_w  # in [0, 1] across the box
    v = (torch.arange(r0, r1 + 1, dtype=torch.float64) + 0.5 - y1) / box_h
    grid = torch.stack(torch.meshgrid(v * 2 - 1, u * 2 - 1, indexing="ij")[::-1], dim=-1).float()
    # align_corners=False + border padding = F.interpolate(mode="bicubic") as torchvision uses it.
    sampled = F.grid_sample(maps[None, None], grid[None], mode="bicubic", padding_mode="border", align_corners=False)
    out[r0:r1 + 1, c0:c1 + 1] = sampled[0, 0].numpy()
    return out
