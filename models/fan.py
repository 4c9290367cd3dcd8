"""FAN / 2DFAN-4 (Bulat & Tzimiropoulos 2017): 68 face landmarks per face box, with every stack's heatmaps.

Four stacked hourglasses (fan_arch.py) predict 68 64x64 heatmaps each, trained by L2 regression of Gaussian targets.
The input is face-alignment's crop: a square around the box's (raised) centre, scaled by the box size and resampled
to 256x256 by one affine warp (heatmaps.CropTransform); the last stack's peaks, decoded with the quarter-pixel
refinement (heatmaps.decode), go back to the image through the inverse of that warp. Coordinates are continuous
pixels, pixel (i, j) covering [j, j+1) x [i, i+1) (see heatmaps.py).

`predict()` maps an RGB uint8 array and face boxes to a `FaceLandmarks`: points, scores and every stack's heatmaps.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import heatmaps, runtime, weights
from .fan_arch import FAN
from .images import check_rgb

MODEL = "2dfan4"
TASK_ID = "landmarks"

CHECKPOINT = weights.Checkpoint(
    name=MODEL, task=TASK_ID, url="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
    filename="2DFAN4-11f355bf06.pth.tar", sha256=None, bytes=None,
    license="BSD-3-Clause (face-alignment code); weights trained on 300W-LP and similar research data sets, whose "
    "terms may restrict use (unconfirmed)",
    source="https://github.com/1adrianb/face-alignment",
    notes="face-alignment v1.5's 2D FAN-4 (68 points): a plain state dict of FAN(num_modules=4), 1129 tensors, "
    "loaded there with torch.load(weights_only=True) and a strict load_state_dict. Not the TorchScript "
    ".zip files of face-alignment 1.3-1.4 (2DFAN4-cd938726ad.zip), which weights_only cannot open. No "
    "published SHA-256 or size (by torch hub's naming, 11f355bf06 would be the start of its SHA-256; "
    "unconfirmed, face-alignment does not check it): the first download's hash is recorded and enforced. "
    "~95 MB expected from the parameter count",
    hash_origin="first-download",
)
weights.register(CHECKPOINT)

# The 68-point iBUG 300-W markup FAN predicts: (group, first index, last index, closed contour?). "Right" is the
# subject's right (the left of the image).
FACE68_GROUPS = (
    ("jaw", 0, 16, False), ("right_brow", 17, 21, False), ("left_brow", 22, 26, False),
    ("nose_bridge", 27, 30, False), ("nose_base", 31, 35, False), ("right_eye", 36, 41, True),
    ("left_eye", 42, 47, True), ("outer_lip", 48, 59, True), ("inner_lip", 60, 67, True),
)
FACE68_NAMES = tuple(f"{name}_{i - first + 1}" for name, first, last, _ in FACE68_GROUPS
                     for i in range(first, last + 1))
FACE68_CONNECTIVITY = tuple(
    pair for _, first, last, closed in FACE68_GROUPS
    for pair in [(i, i + 1) for i in range(first, last)] + ([(last, first)] if closed else [])
)
NOSE_TIP = 30  # the nose tip of the 68-point markup

MAX_BATCH = 8  # faces per FAN forward: bounds memory on crowded photos


@dataclass
class FaceLandmarks:
    """68 landmarks per face, faces in the detector's order (score, highest first), image pixel coordinates."""

    boxes: np.ndarray  # (N, 4) float32 detector boxes
    scores: np.ndarray  # (N,) detector scores
    points: np.ndarray  # (N, 68, 2) float32 image points
    point_scores: np.ndarray  # (N, 68) heatmap peak values
    heatmap_points: np.ndarray  # (N, 68, 2) the same points in 64x64 heatmap coordinates
    stacks: np.ndarray  # (N, S, 68, 64, 64) float32: the heatmaps of every hourglass stack, the last is the output
    transforms: list[heatmaps.CropTransform]  # each face's crop (centre, scale)
    refined: bool  # quarter-pixel refinement applied
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.scores)


# ----------------------------------------------------------------------------------------------------------------
# Building and loading


def build(num_modules: int = 4) -> FAN:
    """FAN with random weights (what `load` fills with the official checkpoint)."""
    return FAN(num_modules=num_modules)


def load(name: str = MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> FAN:
    """2DFAN-4 with its official weights (or a user's `checkpoint_file` in the official format), in eval mode on
    `device` (fp16 on CUDA), shared through runtime.MODELS."""
    if name != MODEL:  # before any download
        raise ValueError(f"Unknown FAN model {name!r}; known: {MODEL}")
    device = device or runtime.device()
    path = Path(checkpoint_file) if checkpoint_file is not None else None

    def loader() -> FAN:
        source = path if path is not None else weights.fetch(name, progress)
        _refuse_torchscript(source)
        net = build()
        # Known packaging quirks: a `state_dict` wrapper, `module.` prefixes (nn.DataParallel), no BatchNorm counters.
        state = _with_batchnorm_counters(weights.unwrap(weights.load_state_dict(source), keys=("state_dict",)), net)
        return runtime.prepare(weights.strict_load(net, state, name), device)

    return runtime.cached_model("fan", name, device, path, loader)


def cache_key(name: str, device: torch.device, checkpoint_file: Path | None = None) -> tuple:
    """The model cache's key for `load(name, device, checkpoint_file)` (tests seed the cache with it)."""
    return runtime.model_key("fan", name, device, checkpoint_file)


def _refuse_torchscript(path: Path) -> None:
    """face-alignment 1.3-1.4 shipped FAN as TorchScript archives; they hold code, not just tensors, and opening
    them needs torch.jit.load, which this app never does. Say so instead of a generic unpickling error."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any("/code/" in name or name.endswith("/constants.pkl") for name in names):
        raise weights.WeightsError(
            f"{Path(path).name} is a TorchScript archive (like face-alignment 1.3-1.4's 2DFAN4-*.zip), not a state "
            "dict. Use the plain state dict 2DFAN4-11f355bf06.pth.tar, or convert on a machine you trust: "
            "torch.save(torch.jit.load(path).state_dict(), 'fan.pth')."
        )


def _with_batchnorm_counters(state: dict, net: torch.nn.Module) -> dict:
    """BatchNorm counters missing from checkpoints saved by old PyTorch are unused at inference: zeros fill them."""
    missing = {key: torch.zeros_like(value) for key, value in net.state_dict().items()
               if key.endswith("num_batches_tracked") and key not in state}
    return {**state, **missing}


# ----------------------------------------------------------------------------------------------------------------
# Prediction


def predict(net: FAN, rgb: np.ndarray, boxes: np.ndarray, scores: np.ndarray | None = None, refine: bool = True,
            reference_scale: float = heatmaps.REFERENCE_SCALE_RETINAFACE) -> FaceLandmarks:
    """68 landmarks for each face box (x1, y1, x2, y2) in an RGB uint8 image, with every stack's heatmaps."""
    check_rgb(rgb, "FAN")
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32)
    transforms = [heatmaps.face_crop_transform(box, reference_scale) for box in boxes]
    parameter = next(net.parameters())
    stacks = []
    for start in range(0, len(boxes), MAX_BATCH):
        crops = np.stack([heatmaps.crop(rgb, t, heatmaps.CROP_SIZE) for t in transforms[start:start + MAX_BATCH]])
        x = torch.from_numpy(crops).to(parameter.device).permute(0, 3, 1, 2).to(parameter.dtype) / 255  # RGB, 0-1
        with torch.inference_mode():
            stacks.append(torch.stack(net(x), dim=1).float().cpu().numpy())  # (B, S, 68, 64, 64)
    size, count = heatmaps.HEATMAP_SIZE, net.num_landmarks
    stacked = np.concatenate(stacks) if stacks else np.zeros((0, net.num_modules, count, size, size), np.float32)
    points_hm, point_scores = heatmaps.decode(stacked[:, -1], refine=refine)
    points_hm = points_hm.reshape(len(boxes), count, 2)
    points = np.stack([t.to_image(p, size) for t, p in zip(transforms, points_hm)]) if len(boxes) else points_hm
    return FaceLandmarks(boxes, scores, points.astype(np.float32), point_scores.reshape(len(boxes), count),
                         points_hm.astype(np.float32), stacked, transforms, refine, (rgb.shape[1], rgb.shape[0]))


def heatmap_on_image(result: FaceLandmarks, face: int, point: int, stack: int = -1) -> np.ndarray:
    """One face's heatmap of one landmark (from `stack`, default the last) warped onto the image: (H, W), 0 outside."""
    return heatmaps.heatmap_to_image(result.stacks[face, stack, point], result.transforms[face].box,
                                     result.image_size, fill=0.0)
