"""mmdetection's conventions, as far as CenterNet and CornerNet use them: the test-time geometry and normalisation,
mmcv's ConvModule, and the checkpoint files of the mmdetection model zoo.

Both detectors run with the official mmdetection COCO checkpoints. mmdetection tests them without resizing: the photo
(ours may first be shrunk to a working size) is centrally zero-padded (`RandomCenterCropPad` in test mode) to a size
fixed by a padding rule, then normalised with the ImageNet statistics. `Geometry` maps network-input pixels and
heatmap cells back to the photo exactly as mmdetection's decoders do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch import nn

from . import runtime, weights
from .images import check_rgb

MMDET_DOWNLOADS = "https://download.openmmlab.com/mmdetection/v2.0"
MMDET_LICENSE = "Apache-2.0 (mmdetection code and model zoo; the weights' licence is not stated separately)"
# mmdetection's DetDataPreprocessor for both configs: bgr_to_rgb=True, then these RGB statistics on 0-255 pixels.
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)


# ----------------------------------------------------------------------------------------------------------------
# mmcv's ConvModule, as far as these checkpoints use it


class ConvModule(nn.Module):
    """Convolution, optional BatchNorm, optional ReLU, named as mmcv's ConvModule names them (`conv`, `bn`), so
    mmdetection state dicts load as they are. As in mmcv, the convolution has a bias only when no norm follows."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 norm: bool = True, relu: bool = True, conv: nn.Module | None = None):
        super().__init__()
        self.conv = conv if conv is not None else nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                                            bias=not norm)
        if norm:
            self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        return self.activate(x)


# ----------------------------------------------------------------------------------------------------------------
# Geometry: photo -> (downscaled) working image -> centrally padded network input -> heatmap cells


@dataclass(frozen=True)
class Geometry:
    """How network-input pixels and heatmap cells map back to the photo.

    `border` is mmdetection's: (top, bottom, left, right) edges of the working image inside the padded input. A point
    (x, y) of the input is the photo point ((x - left) / sx, (y - top) / sy), sx and sy the downscale factors; a
    heatmap cell (i, j) is the input point (j * rx, i * ry), rx and ry the input size over the heatmap size (4, or
    511 / 128 for CornerNet), exactly as mmdetection's decoders compute it.
    """

    image_size: tuple[int, int]  # (w, h) of the photo
    working_size: tuple[int, int]  # (w, h) after the optional downscale
    input_size: tuple[int, int]  # (w, h) after the central padding: what the network sees
    border: tuple[float, float, float, float]  # top, bottom, left, right
    feature_size: tuple[int, int] = (0, 0)  # (w, h) of the heatmaps, known after the forward

    @property
    def scale(self) -> tuple[float, float]:
        return self.working_size[0] / self.image_size[0], self.working_size[1] / self.image_size[1]

    @property
    def ratio(self) -> tuple[float, float]:
        return self.input_size[0] / self.feature_size[0], self.input_size[1] / self.feature_size[1]

    def input_to_image(self, xs, ys):
        """Input-pixel coordinates -> photo coordinates (tensors or arrays)."""
        (sx, sy), (top, _, left, _) = self.scale, self.border
        return (xs - left) / sx, (ys - top) / sy

    def feature_to_image(self, xs, ys):
        """Heatmap coordinates (column, row, offsets added) -> photo coordinates."""
        rx, ry = self.ratio
        return self.input_to_image(xs * rx, ys * ry)

    def image_to_feature_matrix(self) -> np.ndarray:
        """The 2 x 3 affine map photo pixel -> heatmap coordinate (for warping a heatmap onto the photo)."""
        (sx, sy), (rx, ry), (top, _, left, _) = self.scale, self.ratio, self.border
        return np.array([[sx / rx, 0, left / rx], [0, sy / ry, top / ry]], np.float64)


def padded_size(size: int, mode: str, value: int, add: int = 0) -> int:
    """mmdetection's test-time target size: 'logical_or' gives (size | value) + add, 'size_divisor' rounds up."""
    if mode == "logical_or":
        return (size | value) + add
    if mode == "size_divisor":
        return -(-size // value) * value
    raise ValueError(f"unknown padding mode {mode!r}")


def center_pad(image: np.ndarray, target_h: int, target_w: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Place `image` (H, W, C) in a zero canvas of the target size with the two centres aligned, as
    RandomCenterCropPad does in test mode (`_crop_image_and_paste` with the image centre). A target smaller than the
    image by one pixel (CornerNet's `size | 127` when size is already 128k - 1) crops that pixel, as it does there.
    Returns the canvas and the border (top, bottom, left, right) of the pasted image in it."""
    height, width = image.shape[:2]
    cy, cx = height // 2, width // 2
    x0, x1 = max(0, cx - target_w // 2), min(cx + target_w // 2, width)
    y0, y1 = max(0, cy - target_h // 2), min(cy + target_h // 2, height)
    left, right, top, bottom = cx - x0, x1 - cx, cy - y0, y1 - cy
    canvas_cy, canvas_cx = target_h // 2, target_w // 2
    canvas = np.zeros((target_h, target_w) + image.shape[2:], image.dtype)  # mmdet fills with mean=[0, 0, 0]
    canvas[canvas_cy - top:canvas_cy + bottom, canvas_cx - left:canvas_cx + right] = image[y0:y1, x0:x1]
    return canvas, (canvas_cy - top, canvas_cy + bottom, canvas_cx - left, canvas_cx + right)


def working_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The (w, h) the network works at: the photo's, or scaled down so its longer side is `max_side`."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    factor = max_side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def preprocess(rgb: np.ndarray, pad: tuple[str, int, int], max_side: int | None = None,
               device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, Geometry]:
    """RGB uint8 (H, W, 3) -> normalised (1, 3, h, w) input and its Geometry.

    mmdetection's test pipeline: no resize (ours may shrink to `max_side` first), central zero padding by the
    `pad` rule (mode, value, extra pixels), then (x - mean) / std in RGB order, so padding becomes -mean / std.
    """
    check_rgb(rgb, "This detector")
    height, width = rgb.shape[:2]
    size = working_size(width, height, max_side)
    image = rgb if size == (width, height) else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    target_h, target_w = padded_size(size[1], *pad), padded_size(size[0], *pad)
    canvas, border = center_pad(image.astype(np.float32), target_h, target_w)
    x = torch.from_numpy(canvas).to(device).permute(2, 0, 1).unsqueeze(0)
    mean = torch.tensor(MEAN_RGB, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD_RGB, device=x.device).view(1, 3, 1, 1)
    x = ((x - mean) / std).to(dtype)
    geometry = Geometry((width, height), size, (target_w, target_h), tuple(float(b) for b in border))
    return x, geometry


def network_input(net: nn.Module, rgb: np.ndarray, pad: tuple[str, int, int],
                  max_side: int | None) -> tuple[torch.Tensor, Geometry]:
    """`preprocess` on the network's device and dtype, channels-last on CUDA as `runtime.prepare` left the net."""
    parameter = next(net.parameters())
    x, geometry = preprocess(rgb, pad, max_side, parameter.device, parameter.dtype)
    if parameter.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, geometry


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints: mmdetection's files


def fetch(name: str, progress: weights.ProgressCallback | None = None) -> Path:
    """A verified local copy of a catalogued mmdetection checkpoint.

    No full SHA-256 is published for these files, so the weights manager records the first download's hash; openmmlab
    names each file after the first 8 hex digits of its SHA-256 (`..._<date>-<8 hex>.pth`, made by mmdetection's
    publish_model.py), and we check that prefix too, so a corrupted first download is caught.
    """
    checkpoint = weights.get(name)
    path = weights.fetch(checkpoint, progress)
    prefix = Path(checkpoint.filename).stem.rsplit("-", 1)[-1]
    actual = weights.sha256_of(path)
    if not actual.startswith(prefix):
        raise weights.ChecksumError(
            f"{path} is not {checkpoint.name}: its SHA-256 {actual} does not start with {prefix}, the prefix in the "
            f"official file name. Delete it (and {path.name}.sha256 beside it) and download it again from "
            f"{checkpoint.url}")
    return path


def read_mmdet_checkpoint(path: Path | str) -> dict:
    """The state dict of an mmdetection checkpoint file, opened with weights_only=True only.

    mmdetection v2 saves {"meta": {...}, "state_dict": {...}} (publish_model.py drops "optimizer"). "meta" holds plain
    values (mmdet/mmcv versions, the config as text, CLASSES, epoch, iter, time), which the weights_only unpickler
    accepts. If a file's meta held anything else (a numpy scalar, a class), torch.load(weights_only=True) refuses the
    whole file; we then say so and stop, rather than unpickle objects (weights_only=False is never used).
    """
    try:
        return weights.load_state_dict(path)
    except weights.UnsafeCheckpointError as error:
        refused = error.refused
        raise weights.WeightsError(
            f"{Path(path).name} cannot be opened safely: mmdetection checkpoints keep their weights beside a 'meta' "
            f"dict, and this file holds an object that torch.load(weights_only=True) refuses ({refused}). Re-save "
            "only its 'state_dict' (e.g. torch.load(f, weights_only=True) inside "
            "torch.serialization.safe_globals([that object]), then torch.save(checkpoint['state_dict'], ...)) and "
            "give this app that file."
        ) from None


def unwrap(state: dict) -> dict:
    """Quirk shared by every mmdetection file: the weights sit under "state_dict" next to "meta" (a plain state dict,
    e.g. one re-saved as `read_mmdet_checkpoint` suggests, passes through). A `module.` prefix from a DataParallel
    save is dropped too."""
    return weights.unwrap(state, keys=("state_dict",))


def cached_load(family: str, name: str, device: torch.device | None, checkpoint_file: str | None, progress,
                build: Callable[[str], nn.Module], convert: Callable[[str, dict], dict]) -> nn.Module:
    """One shared network per model, device and weights: the official file (or a user's `checkpoint_file` in the
    same format) through `convert` (the family's `_convert_state_dict`) into `build(name)`, strictly."""
    device = device or runtime.device()
    path = Path(checkpoint_file) if checkpoint_file is not None else None

    def loader() -> nn.Module:
        state = read_mmdet_checkpoint(path if path is not None else fetch(name, progress))
        net = weights.strict_load(build(name), convert(name, state), name, "the official mmdetection layout")
        return runtime.prepare(net, device)

    return runtime.cached_model(family, name, device, path, loader)
