"""Face anonymisation: blur, pixelate, solid fill, eye bar or a drawn mask, applied only inside each face region.

A face region is the detector's box, enlarged, as an ellipse or a rectangle, with an optionally feathered edge.
Everything is composited through that region's alpha, and pixels where the alpha is zero are copied from the input
untouched, so the rest of the photo stays byte-identical.

The defaults were chosen by measurement (benchmarks/face_residuals.py; table in benchmarks/RESULTS.md): a face
detector run on the output must not find the hidden faces again. Two findings shaped them:
- A small face is already a blob to a detector: blurring away its detail leaves a skin-coloured oval under dark hair,
  which RetinaFace still calls a face (25% of the crowd photo's faces at the old sigma = strength * side / 4, with
  the region 1.2x the box). So blur and block sizes grow with the face *plus* a fixed number of pixels (tiny faces
  become flat), and the region is 1.5x the box, so hair and outline go too and no head shape is left.
- Anything face-like drawn on top is found as a face: a black eye bar over a blurred face (28%), a drawn cartoon face
  (89%, even 32% with features at 10% contrast). So the eye bar is mid-grey over a blurred face, and the drawn mask is
  a plain sticker unless `mask_face` asks for the cartoon.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

MODES = ("blur", "pixelate", "fill", "eye_bar", "mask")
SHAPES = ("ellipse", "box")
FILL_COLOR = (20, 20, 20)
EYE_BAR_COLOR = (128, 128, 128)  # a dark bar is itself the dark eye band detectors look for (28% found vs 3%)
MASK_COLOR = (245, 200, 60)
# sigma = strength * (BLUR_PER_SIDE * side + BLUR_PX), side = the region's smaller side in px
BLUR_PER_SIDE, BLUR_PX = 0.5, 8.0
BLUR_WORKING_SIGMA = 4.0  # wider blurs run on a shrunk copy
# block = strength * (BLOCK_PER_SIDE * side + BLOCK_PX): about 6 blocks across a large face at 0.5, 1 on a tiny one
BLOCK_PER_SIDE, BLOCK_PX = 0.33, 16.0
MAX_ENLARGE = 2.5


@dataclass(frozen=True)
class Style:
    mode: str = "blur"
    strength: float = 0.5  # blur: sigma; pixelate: block size; eye bar: blur under the bar (0: the bar alone)
    block: int = 0  # pixelate: block side in pixels (0: from strength and the face's size)
    color: tuple[int, int, int] | None = None  # fill, eye bar (None: dark fill, mid-grey bar)
    enlarge: float = 1.5  # the region is the box scaled by this about its centre
    shape: str = "ellipse"
    feather: float = 0.1  # soft edge, as a fraction of the region's smaller side (0: hard edge)
    mask_face: bool = False  # mask: draw eyes and a smile from the landmarks (detectors find the cartoon as a face)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {self.shape!r}")


def stronger(style: Style, level: int) -> Style:
    """The style that re-hides faces a detector still finds after `level` rounds: more blur, larger blocks, a larger
    region; a drawn cartoon face loses its features (they are what the detector finds)."""
    return replace(style, strength=min(1.0, style.strength + 0.25 * level),
                   block=int(round(style.block * (1 + 0.5 * level))),
                   enlarge=min(MAX_ENLARGE, style.enlarge + 0.25 * level), mask_face=False)


def anonymize(rgb: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray | None, style: Style) -> np.ndarray:
    """Return a copy of `rgb` with every face (boxes N x 4, landmarks N x 5 x 2 or None) anonymised."""
    out = rgb.copy()
    for index, box in enumerate(np.asarray(boxes, np.float32).reshape(-1, 4)):
        if not np.isfinite(box).all():
            continue  # a broken checkpoint can emit NaN boxes; there is no region to hide
        points = None if landmarks is None else np.asarray(landmarks[index], np.float32)
        _anonymize_one(out, box, points, style)
    return out


def region_box(box: np.ndarray, enlarge: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The enlarged box, clipped to the image, as integer pixel bounds (x0, y0, x1, y1), x1/y1 exclusive."""
    x0, y0, x1, y1 = _enlarged(box, enlarge)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def _enlarged(box: np.ndarray, enlarge: float) -> tuple[int, int, int, int]:
    """The box scaled about its centre, in integer pixels, possibly reaching outside the image."""
    box = [float(value) for value in box]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w, half_h = (box[2] - box[0]) * enlarge / 2, (box[3] - box[1]) * enlarge / 2
    eps = 1e-4  # float noise in box * enlarge must not widen the region by a whole pixel
    return (int(np.floor(cx - half_w + eps)), int(np.floor(cy - half_h + eps)),
            int(np.ceil(cx + half_w - eps)), int(np.ceil(cy + half_h - eps)))


def region_alpha(region: tuple[int, int, int, int], window: tuple[int, int, int, int], shape: str,
                 feather: float) -> np.ndarray:
    """Alpha in [0, 1] over `window` (x0, y0, x1, y1) for a face `region` that may reach outside it.

    1 inside the ellipse or box, falling to 0 over the feather band at its border. Computed from the distance to
    the border, so a face cut by the image edge keeps its shape, and no array larger than the window is made.
    """
    rx0, ry0, rx1, ry1 = region
    x = np.arange(window[0], window[2], dtype=np.float32)[None, :] + 0.5
    y = np.arange(window[1], window[3], dtype=np.float32)[:, None] + 0.5
    half_w, half_h = (rx1 - rx0) / 2, (ry1 - ry0) / 2
    if shape == "box":
        inside = np.minimum(np.minimum(x - rx0, rx1 - x), np.minimum(y - ry0, ry1 - y))  # px to the nearest edge
    else:
        radius = np.sqrt(((x - (rx0 + half_w)) / half_w) ** 2 + ((y - (ry0 + half_h)) / half_h) ** 2)
        inside = (1 - radius) * min(half_w, half_h)  # px to the border, measured along the shorter axis
    band = feather * 2 * min(half_w, half_h)
    if band < 1:
        return (inside > 0).astype(np.float32)
    ramp = np.clip(inside / band, 0, 1)
    return (ramp * ramp * (3 - 2 * ramp)).astype(np.float32)  # smoothstep: no visible seam where the fade ends


def blur_sigma(side: float, strength: float) -> float:
    """Gaussian sigma for a region `side` px across: proportional to the face, plus a floor that flattens tiny ones."""
    return max(1.0, strength * (BLUR_PER_SIDE * side + BLUR_PX))


def block_size(side: float, strength: float) -> int:
    """Pixelate block side for a region `side` px across; a tiny face becomes a single block."""
    return max(2, int(round(strength * (BLOCK_PER_SIDE * side + BLOCK_PX))))


def _anonymize_one(out: np.ndarray, box: np.ndarray, points: np.ndarray | None, style: Style) -> None:
    height, width = out.shape[:2]
    full = _enlarged(box, style.enlarge)
    x0, y0, x1, y1 = region_box(box, style.enlarge, width, height)
    if x1 - x0 < 2 or y1 - y0 < 2 or full[2] - full[0] < 2 or full[3] - full[1] < 2:
        return
    patch = out[y0:y1, x0:x1]
    alpha = region_alpha(full, (x0, y0, x1, y1), style.shape, style.feather)
    side = min(full[2] - full[0], full[3] - full[1])  # of the whole region: a face cut by the edge is hidden alike
    effect, coverage = _effect(patch, style, side, None if points is None else points - (x0, y0))
    alpha = alpha * coverage
    blended = patch.astype(np.float32) * (1 - alpha[..., None]) + effect.astype(np.float32) * alpha[..., None]
    blended = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    out[y0:y1, x0:x1] = np.where(alpha[..., None] > 0, blended, patch)


def _effect(patch: np.ndarray, style: Style, side: int, points: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The anonymised version of the patch, and where it applies (1 everywhere, or the drawn shape)."""
    h, w = patch.shape[:2]
    everywhere = np.ones((h, w), np.float32)
    if style.mode == "blur":
        return _blurred(patch, side, style.strength), everywhere
    if style.mode == "pixelate":
        block = style.block or block_size(side, style.strength)
        small = cv2.resize(patch, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST), everywhere
    if style.mode == "fill":
        return np.broadcast_to(np.array(style.color or FILL_COLOR, np.uint8), patch.shape), everywhere
    if style.mode == "mask" and not style.mask_face:
        return np.broadcast_to(np.array(MASK_COLOR, np.uint8), patch.shape), everywhere
    if points is None:
        raise ValueError(f"{style.mode} needs the five face landmarks")
    if style.mode == "eye_bar":
        return _eye_bar_over_blur(patch, side, style, points)
    return _drawn_mask(patch, points)


def _blurred(patch: np.ndarray, side: int, strength: float) -> np.ndarray:
    """Gaussian blur; a wide one runs on a copy shrunk so sigma is BLUR_WORKING_SIGMA px there, then is scaled back
    (smooth either way, and a 1000 px face takes milliseconds instead of seconds)."""
    sigma = min(blur_sigma(side, strength), max(patch.shape[:2]))  # wider leaves the patch flat anyway
    shrink = int(sigma // BLUR_WORKING_SIGMA)
    if shrink < 2:
        return cv2.GaussianBlur(patch, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    h, w = patch.shape[:2]
    small = cv2.resize(patch, (max(1, round(w / shrink)), max(1, round(h / shrink))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / shrink, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _eye_bar_over_blur(patch: np.ndarray, side: int, style: Style, points: np.ndarray):
    """The bar over the face blurred at `strength`; at strength 0 the bar alone, as old photos did."""
    h, w = patch.shape[:2]
    bar = _eye_bar(points, (w, h))
    color = np.array(style.color or EYE_BAR_COLOR, np.float32)
    if style.strength <= 0:
        return np.broadcast_to(color.astype(np.uint8), patch.shape), bar
    base = _blurred(patch, side, style.strength).astype(np.float32)
    drawn = base * (1 - bar[..., None]) + color * bar[..., None]
    return np.clip(np.rint(drawn), 0, 255).astype(np.uint8), np.ones((h, w), np.float32)


def _eye_bar(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bar along the line through both eyes, long enough to cover them, as a 0/1 coverage map."""
    left, right = points[0], points[1]
    centre = (left + right) / 2
    distance = max(float(np.linalg.norm(right - left)), 4.0)
    angle = float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))
    corners = cv2.boxPoints(((float(centre[0]), float(centre[1])), (distance * 2.2, distance * 0.7), angle))
    coverage = np.zeros((size[1], size[0]), np.float32)
    cv2.fillPoly(coverage, [np.round(corners).astype(np.int32)], 1.0)
    return coverage


def _drawn_mask(patch: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A cartoon face drawn over the region: a plain face disc with eyes and a smile placed from the landmarks."""
    h, w = patch.shape[:2]
    face = np.empty_like(patch)
    face[...] = MASK_COLOR
    distance = max(float(np.linalg.norm(points[1] - points[0])), 4.0)
    thickness = max(1, int(distance / 10))
    for eye in points[:2]:
        cv2.circle(face, tuple(int(v) for v in eye), max(2, int(distance / 6)), (40, 30, 20), -1, cv2.LINE_AA)
    mouth_centre = (points[3] + points[4]) / 2
    mouth_half = max(float(np.linalg.norm(points[4] - points[3])) / 2, 3.0)
    cv2.ellipse(face, tuple(int(v) for v in mouth_centre), (int(mouth_half), int(mouth_half * 0.6)), 0, 10, 170,
                (40, 30, 20), thickness, cv2.LINE_AA)
    return face, np.ones((h, w), np.float32)
