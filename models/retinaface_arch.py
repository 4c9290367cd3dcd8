"""RetinaFace (Deng et al. 2020, "RetinaFace: Single-shot Multi-level Face Localisation in the Wild"): face boxes and
five landmarks, for the de-identification tab.

Two variants of biubug6's re-implementation, both with 2 anchors per location on strides 8/16/32:
- "retinaface-mnet": MobileNet-0.25 body, 64-channel FPN/SSH, plain ReLU (the Face-Detector-1MB-with-landmark
  checkpoint; with LeakyReLU it gives false positives), anchors 10/20, 32/64, 128/256 px.
- "retinaface-r50": torchvision ResNet-50 body (layer2..4), 256-channel FPN/SSH, anchors 16/32, 64/128, 256/512 px.

The network sees a BGR float image minus the Caffe means (104, 117, 123), not scaled. `predict()` maps an RGB uint8
array to `FaceDetections` in the original image's pixels; the pure pieces (`prior_boxes`, `decode_boxes`,
`decode_landmarks`, `detections_from_outputs`) are public so tests can feed them hand-made network outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from . import runtime, weights

TASK_ID = "face-deid"
DEFAULT_MODEL = "retinaface-mnet"
_FACE_DETECTOR_1MB = "https://github.com/biubug6/Face-Detector-1MB-with-landmark"
_FACEXLIB = "https://github.com/xinntao/facexlib"

CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        weights.Checkpoint(
            name="retinaface-mnet", task=TASK_ID,
            url=f"{_FACE_DETECTOR_1MB}/raw/2b075657aef954b9426f938ac7fce100b6910fe6/weights/mobilenet0.25_Final.pth",
            filename="retinaface_mobilenet0.25_Final.pth",
            sha256="ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1", bytes=1_789_735, license="MIT", source=_FACE_DETECTOR_1MB,
            notes="plain state dict, 300 tensors, no `module.` prefix; MobileNet-0.25 with plain ReLU, WIDER FACE; "
            "SHA-256 verified on this project's copy",
        ),
        weights.Checkpoint(
            name="retinaface-r50", task=TASK_ID, url=f"{_FACEXLIB}/releases/download/v0.1.0/detection_Resnet50_Final.pth",
            filename="detection_Resnet50_Final.pth",
            sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d", bytes=109_497_761, license="MIT", source=_FACEXLIB,
            notes="biubug6/Pytorch_Retinaface's Resnet50_Final.pth as mirrored by facexlib; keys carry a `module.` prefix "
            "(saved from nn.DataParallel). SHA-256 and size from third-party records, not yet checked against a "
            "download here",
        ),
    )
}
weights.register(*CHECKPOINTS.values())

_BGR_MEANS = (104.0, 117.0, 123.0)  # Caffe ImageNet means, in the BGR order the network was trained on
_PRE_NMS_TOP_K = 5000  # bounds NMS time when a user asks for a very low score threshold
ANCHORS_PER_LOCATION = 2


@dataclass(frozen=True)
class Variant:
    """The architecture and anchor settings that belong to one checkpoint (biubug6's `cfg_*` dictionaries)."""

    backbone: str  # "mobilenet0.25" | "resnet50"
    in_channels: tuple[int, int, int]  # channels of the three body outputs fed to the FPN
    out_channels: int  # FPN and SSH width
    min_sizes: tuple[tuple[int, ...], ...]  # anchor sides in input pixels, one tuple per stride
    steps: tuple[int, ...] = (8, 16, 32)
    variance: tuple[float, float] = (0.1, 0.2)


VARIANTS = {
    "retinaface-mnet": Variant("mobilenet0.25", (64, 128, 256), 64, ((10, 20), (32, 64), (128, 256))),
    "retinaface-r50": Variant("resnet50", (512, 1024, 2048), 256, ((16, 32), (64, 128), (256, 512))),
}


@dataclass
class FaceDetections:
    """Faces found in one image, sorted by score (highest first), in the original image's pixel coordinates."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32 in [0, 1]
    landmarks: np.ndarray  # (N, 5, 2) float32 x, y: left eye, right eye, nose, left and right mouth corner
    image_size: tuple[int, int]  # (width, height) of the image the coordinates refer to

    def __len__(self) -> int:
        return len(self.scores)


# ----------------------------------------------------------------------------------------------------------------
# Architecture. Module and attribute names follow the reference exactly (including `ClassHead` and `conv7x7_3`),
# because they are the state-dict keys of the official checkpoints.


def _conv_bn(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1, relu: bool = True):
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


def _conv_dw(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each with BN and ReLU: MobileNet v1's separable block."""
    return nn.Sequential(*_conv_bn(in_ch, in_ch, 3, stride, groups=in_ch), *_conv_bn(in_ch, out_ch, 1))


class MobileNetBody(nn.Module):
    """MobileNet v1 at width 0.25, cut into the three stages whose outputs (strides 8, 16, 32) feed the FPN.

    The ImageNet classifier of the reference is left out: the detector never uses it and the checkpoint has no keys
    for it.
    """

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(
            nn.Sequential(*_conv_bn(3, 8, 3, stride=2)),
            _conv_dw(8, 16, 1), _conv_dw(16, 32, 2), _conv_dw(32, 32, 1), _conv_dw(32, 64, 2), _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *(_conv_dw(128, 128, 1) for _ in range(5)))
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class ResNet50Body(nn.Module):
    """torchvision's ResNet-50 up to layer4, returning layer2..4 (strides 8, 16, 32); no pooling or classifier."""

    def __init__(self):
        super().__init__()
        resnet = torchvision.models.resnet50(weights=None)
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(resnet, name))  # same names, same order: the keys of the official dict

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        c2 = self.layer2(x)
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


class FPN(nn.Module):
    """Top-down feature pyramid: 1x1 lateral convs, nearest upsampling, 3x3 merge convs on the two finer levels."""

    def __init__(self, in_channels: tuple[int, int, int], out_channels: int):
        super().__init__()
        self.output1, self.output2, self.output3 = (nn.Sequential(*_conv_bn(c, out_channels, 1)) for c in in_channels)
        self.merge1 = nn.Sequential(*_conv_bn(out_channels, out_channels))
        self.merge2 = nn.Sequential(*_conv_bn(out_channels, out_channels))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        fine, middle, coarse = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        middle = self.merge2(middle + F.interpolate(coarse, size=middle.shape[-2:], mode="nearest"))
        fine = self.merge1(fine + F.interpolate(middle, size=fine.shape[-2:], mode="nearest"))
        return [fine, middle, coarse]


class SSH(nn.Module):
    """Single Stage Headless context module: 3x3, "5x5" and "7x7" receptive fields built from stacked 3x3 convs."""

    def __init__(self, channels: int):
        super().__init__()
        half, quarter = channels // 2, channels // 4
        self.conv3X3 = nn.Sequential(*_conv_bn(channels, half, relu=False))
        self.conv5X5_1 = nn.Sequential(*_conv_bn(channels, quarter))
        self.conv5X5_2 = nn.Sequential(*_conv_bn(quarter, quarter, relu=False))
        self.conv7X7_2 = nn.Sequential(*_conv_bn(quarter, quarter))
        self.conv7x7_3 = nn.Sequential(*_conv_bn(quarter, quarter, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self.conv5X5_1(x)  # the 5x5 and 7x7 branches share their first conv
        branches = [self.conv3X3(x), self.conv5X5_2(shared), self.conv7x7_3(self.conv7X7_2(shared))]
        return F.relu(torch.cat(branches, dim=1))


class Head(nn.Module):
    """A 1x1 conv predicting `values` numbers per anchor, flattened to (batch, H*W*anchors, values).

    Flattening channels-last puts the anchors of one location next to each other, location by location in row-major
    order: the order of `prior_boxes`.
    """

    def __init__(self, channels: int, values: int, anchors: int = ANCHORS_PER_LOCATION):
        super().__init__()
        self.values_per_anchor = values
        self.conv1x1 = nn.Conv2d(channels, anchors * values, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values_per_anchor)


class RetinaFace(nn.Module):
    """Body -> FPN -> one SSH per level -> class, box and landmark heads per level.

    `forward` returns (box offsets (B, P, 4), face/background probabilities (B, P, 2) after softmax, landmark
    offsets (B, P, 10)), P being the number of prior boxes for the input size.
    """

    def __init__(self, variant: Variant):
        super().__init__()
        self.variant = variant
        self.body = MobileNetBody() if variant.backbone == "mobilenet0.25" else ResNet50Body()
        self.fpn = FPN(variant.in_channels, variant.out_channels)
        self.ssh1, self.ssh2, self.ssh3 = (SSH(variant.out_channels) for _ in range(3))
        levels = len(variant.steps)
        self.ClassHead = nn.ModuleList(Head(variant.out_channels, 2) for _ in range(levels))
        self.BboxHead = nn.ModuleList(Head(variant.out_channels, 4) for _ in range(levels))
        self.LandmarkHead = nn.ModuleList(Head(variant.out_channels, 10) for _ in range(levels))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pyramid = self.fpn(self.body(x))
        features = [ssh(level) for ssh, level in zip((self.ssh1, self.ssh2, self.ssh3), pyramid)]
        loc = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], dim=1)
        logits = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], dim=1)
        landm = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], dim=1)
        return loc, logits.softmax(dim=-1), landm


# ----------------------------------------------------------------------------------------------------------------
# Building and loading


def build(name: str = DEFAULT_MODEL) -> RetinaFace:
    """The architecture of checkpoint `name` with random weights (what `load` fills with the official ones)."""
    try:
        return RetinaFace(VARIANTS[name])
    except KeyError:
        raise ValueError(f"Unknown RetinaFace variant {name!r}; known: {', '.join(VARIANTS)}") from None


def load(name: str = DEFAULT_MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> RetinaFace:
    """The network with its official weights (or a user's `checkpoint_file` in the official format), in eval mode
    on `device`, shared through runtime.MODELS."""
    device = device or runtime.device()
    path = Path(checkpoint_file) if checkpoint_file is not None else None

    def loader() -> RetinaFace:
        state = weights.load_state_dict(path if path is not None else weights.fetch(name, progress))
        return _ready(_from_state(name, _convert_state_dict(state)), device)

    return runtime.MODELS.get(cache_key(name, device, path), loader)


def cache_key(name: str, device: torch.device, checkpoint_file: Path | None = None) -> tuple:
    """One cached network per variant, device and weights (a user's file is known by its content hash)."""
    content = weights.sha256_of(checkpoint_file) if checkpoint_file is not None else None
    return ("retinaface", name, content, str(device))


def _convert_state_dict(state: dict) -> dict:
    """Pytorch_Retinaface's checkpoints were saved from nn.DataParallel: drop the `module.` prefix of every key."""
    return {key.removeprefix("module."): value for key, value in state.items()}


def _from_state(name: str, state: dict) -> RetinaFace:
    net = build(name)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise weights.WeightsError(
            f"This checkpoint does not fit {name}: {str(error).splitlines()[0]} ... (expected the official layout)"
        ) from None
    return net


def _ready(net: RetinaFace, device: torch.device) -> RetinaFace:
    net.eval().requires_grad_(False).to(device)
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)  # faster convolutions on tensor cores
    if runtime.half_precision(device):
        net.half()
    return net


# ----------------------------------------------------------------------------------------------------------------
# Pure maths: anchors and decoding (all coordinates normalised to [0, 1] of the network's input)


@lru_cache(maxsize=16)
def _prior_boxes_cached(height: int, width: int, min_sizes: tuple, steps: tuple) -> torch.Tensor:
    levels = []
    for sizes, step in zip(min_sizes, steps):
        rows, cols = -(-height // step), -(-width // step)  # ceil: the feature map size of a stride-`step` level
        cy, cx = torch.meshgrid((torch.arange(rows) + 0.5) * step / height,
                                (torch.arange(cols) + 0.5) * step / width, indexing="ij")
        centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2).expand(-1, len(sizes), 2)
        sides = torch.tensor([[s / width, s / height] for s in sizes]).expand(rows * cols, -1, 2)
        levels.append(torch.cat([centres, sides], dim=-1).reshape(-1, 4))  # location-major, then anchor size
    return torch.cat(levels).float()


def prior_boxes(height: int, width: int, min_sizes=VARIANTS[DEFAULT_MODEL].min_sizes,
                steps=VARIANTS[DEFAULT_MODEL].steps) -> torch.Tensor:
    """Anchors (P, 4) as normalised cx, cy, w, h: per level, per feature-map cell in row-major order, per size.

    The tensor is cached per size and shared: do not modify it in place.
    """
    return _prior_boxes_cached(int(height), int(width), tuple(map(tuple, min_sizes)), tuple(steps))


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor, variance=(0.1, 0.2)) -> torch.Tensor:
    """Offsets (P, 4) -> corners (P, 4) x1, y1, x2, y2: centre shifts scaled by the anchor, log-space sizes."""
    centres = priors[:, :2] + loc[:, :2] * variance[0] * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(loc[:, 2:] * variance[1])
    return torch.cat([centres - sizes / 2, centres + sizes / 2], dim=1)


def decode_landmarks(landm: torch.Tensor, priors: torch.Tensor, variance=(0.1, 0.2)) -> torch.Tensor:
    """Offsets (P, 10) -> points (P, 5, 2): each point is the anchor centre shifted by offset * variance * size."""
    offsets = landm.reshape(-1, 5, 2)
    return priors[:, None, :2] + offsets * variance[0] * priors[:, None, 2:]


def detections_from_outputs(loc: torch.Tensor, conf: torch.Tensor, landm: torch.Tensor, priors: torch.Tensor,
                            image_size: tuple[int, int], variance=(0.1, 0.2), score_threshold: float = 0.5,
                            nms_iou: float = 0.4, min_face: float = 0) -> FaceDetections:
    """One image's network outputs (P, 4), (P, 2) probabilities, (P, 10) -> faces in pixels of `image_size` (w, h).

    The priors are normalised to the network's input, so multiplying by the original size also undoes any resize.
    """
    width, height = image_size
    scores = conf[:, 1]
    keep = torch.nonzero(scores > score_threshold).squeeze(1)
    keep = keep[scores[keep].argsort(descending=True)[:_PRE_NMS_TOP_K]]
    scale = torch.tensor([width, height], dtype=loc.dtype, device=loc.device)
    boxes = decode_boxes(loc[keep], priors[keep], variance) * scale.repeat(2)
    points = decode_landmarks(landm[keep], priors[keep], variance) * scale
    scores = scores[keep]
    big_enough = torch.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= min_face
    boxes, points, scores = boxes[big_enough], points[big_enough], scores[big_enough]
    kept = torchvision.ops.nms(boxes, scores, nms_iou)  # indices in decreasing order of score
    return FaceDetections(_numpy(boxes[kept]), _numpy(scores[kept]), _numpy(points[kept]), (width, height))


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.float().cpu().numpy().astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# Images in, faces out


def working_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The (w, h) the network sees: the original, or downscaled so the longer side is `max_side` (never enlarged)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    factor = max_side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def preprocess(rgb: np.ndarray, max_side: int | None = None, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> (1, 3, h, w) BGR float minus the channel means, at the working size."""
    _check_rgb(rgb)
    height, width = rgb.shape[:2]
    x = torch.tensor(rgb, device=device).permute(2, 0, 1).flip(0).unsqueeze(0).float()  # a copy: input may be read-only
    size = working_size(width, height, max_side)
    if size != (width, height):
        # antialias: plain bilinear downscaling aliases fine textures into face-like patterns
        x = F.interpolate(x, size=(size[1], size[0]), mode="bilinear", antialias=True, align_corners=False)
    x = x - torch.tensor(_BGR_MEANS, device=x.device).view(1, 3, 1, 1)
    return x.to(dtype)


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        described = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"RetinaFace needs an RGB uint8 array of shape (H, W, 3); got a {described}")


def predict(model: RetinaFace, rgb: np.ndarray, score_threshold: float = 0.5, nms_iou: float = 0.4,
            max_side: int | None = None, min_face: float = 0) -> FaceDetections:
    """Faces in an RGB uint8 image, in its own pixel coordinates, however small the network's working size was."""
    parameter = next(model.parameters())
    x = preprocess(rgb, max_side, parameter.device, parameter.dtype)
    if parameter.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    variant = model.variant
    priors = prior_boxes(x.shape[2], x.shape[3], variant.min_sizes, variant.steps).to(parameter.device)
    with torch.inference_mode():
        loc, conf, landm = model(x)
        return detections_from_outputs(
            loc[0].float(), conf[0].float(), landm[0].float(), priors, (rgb.shape[1], rgb.shape[0]),
            variant.variance, score_threshold, nms_iou, min_face,
        )
