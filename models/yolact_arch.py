"""YOLACT's network (Bolya et al., "YOLACT: Real-time Instance Segmentation", ICCV 2019): ResNet + FPN, a protonet
that paints 32 prototype masks for the whole image, and one prediction head, shared by the five FPN levels, that gives
every prior box a class distribution, a box regression and 32 mask coefficients.

Written so that dbolya/yolact's COCO checkpoints load with `strict=True` after `models.yolact._convert_state_dict`:
module names, their nesting and their registration order follow the reference (backbone.py `ResNetBackbone`,
yolact.py `FPN`, `PredictionModule`, `Yolact`, utils/functions.py `make_net` for the protonet), so the state-dict
keys are the reference's (`backbone.layers.0.0.conv1.weight`, `proto_net.10.bias`, `prediction_layers.0.conf_layer`).
The code is our own: no CUDA assumptions, no TorchScript, only what inference of yolact_base / yolact_resnet50 uses.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class YolactConfig:
    """The settings of the reference's `yolact_base_config` / `yolact_resnet50_config` (data/config.py) that the
    architecture and test-time decoding need."""

    name: str
    blocks: tuple[int, int, int, int]  # Bottleneck blocks per ResNet stage: 3,4,23,3 is ResNet-101, 3,4,6,3 ResNet-50
    input_size: int = 550  # images are resized to a square of this side, aspect ratio not kept
    num_classes: int = 81  # background (index 0) + COCO's 80 classes
    num_prototypes: int = 32
    fpn_channels: int = 256
    # One prior size per FPN level P3..P7, in pixels of the input square (`pred_scales`), and the aspect ratios
    # tried at every location (`pred_aspect_ratios`).
    prior_scales: tuple[float, ...] = (24, 48, 96, 192, 384)
    aspect_ratios: tuple[float, ...] = (1, 0.5, 2)
    # The reference's `use_square_anchors=True` ("backward compatibility with a bug"): priors are squares whose
    # side is scale * sqrt(aspect ratio); the checkpoints were trained with these.
    square_priors: bool = True
    variances: tuple[float, float] = (0.1, 0.2)  # SSD box encoding: centre offsets x0.1, log-size offsets x0.2
    # Test-time decoding (coco_base_config): priors whose best class scores at most conf_threshold are dropped;
    # Fast NMS looks at the top_k priors per class with IoU threshold nms_threshold; max_detections survive.
    conf_threshold: float = 0.05
    nms_threshold: float = 0.5
    top_k: int = 200
    max_detections: int = 100

    def at_size(self, input_size: int) -> "YolactConfig":
        """The same network at another input side, with prior sizes scaled as the reference's yolact_im400 /
        yolact_im700 configs do (int(scale / 550 * size))."""
        scales = tuple(int(scale / self.input_size * input_size) for scale in self.prior_scales)
        return replace(self, input_size=input_size, prior_scales=scales)


YOLACT_BASE = YolactConfig("yolact_base", (3, 4, 23, 3))
YOLACT_RESNET50 = YolactConfig("yolact_resnet50", (3, 4, 6, 3))


class YolactOutput(NamedTuple):
    """What the network computes for a batch, before any decoding."""

    loc: torch.Tensor  # N x P x 4: box regressions (dx, dy, dw, dh) against each prior
    scores: torch.Tensor  # N x P x num_classes: softmax class probabilities, column 0 = background
    coefficients: torch.Tensor  # N x P x K: mask coefficients after tanh, in [-1, 1]
    prototypes: torch.Tensor  # N x K x h x w: prototype masks after ReLU (138 x 138 at 550 px)
    priors: torch.Tensor  # P x 4: prior boxes (cx, cy, w, h) as fractions of the input square


# --- backbone ------------------------------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """ResNet's bottleneck block with the stride on the 3x3 convolution (the reference's, like torchvision's)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + shortcut)


class ResNetBackbone(nn.Module):
    """The reference's ResNetBackbone: torchvision's ResNet body, but its stages live in one ModuleList `layers`
    (keys `layers.0.0.conv1.weight`, not `layer1.0.conv1.weight`) and it returns every stage's output (C2..C5)."""

    def __init__(self, blocks: tuple[int, ...]):
        super().__init__()
        # Registered before the stem, as in the reference, so state_dict() lists the stages first.
        self.layers = nn.ModuleList()
        self.channels: list[int] = []
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            inplanes = self._add_stage(inplanes, planes, count, stride=1 if index == 0 else 2)

    def _add_stage(self, inplanes: int, planes: int, count: int, stride: int) -> int:
        width = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or inplanes != width:  # a projection shortcut wherever the shape changes
            downsample = nn.Sequential(nn.Conv2d(inplanes, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))
        stage = [Bottleneck(inplanes, planes, stride, downsample)]
        stage += [Bottleneck(width, planes) for _ in range(1, count)]
        self.layers.append(nn.Sequential(*stage))
        self.channels.append(width)
        return width

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outputs = []
        for stage in self.layers:
            x = stage(x)
            outputs.append(x)
        return outputs


# --- neck and heads ------------------------------------------------------------------------------------------------


class FPN(nn.Module):
    """Feature pyramid over C3..C5, plus P6 and P7 by strided 3x3 convolutions (the reference's
    `use_conv_downsample=True, num_downsample=2`). Lateral and output convolutions are stored coarsest first
    (`lat_layers.0` reads C5), the reference's order "for backward compatibility"."""

    def __init__(self, in_channels: list[int], channels: int = 256, extra_levels: int = 2):
        super().__init__()
        self.lat_layers = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in reversed(in_channels))
        self.pred_layers = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        self.downsample_layers = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, stride=2)
                                               for _ in range(extra_levels))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        # Top-down pathway: start at C5, upsample (bilinear) and add the next finer lateral.
        merged: list[torch.Tensor] = [None] * len(features)  # type: ignore[list-item]
        x = None
        for lateral, level in zip(self.lat_layers, reversed(range(len(features)))):
            feature = lateral(features[level])
            if x is not None:
                feature = feature + F.interpolate(x, size=feature.shape[-2:], mode="bilinear", align_corners=False)
            merged[level] = x = feature
        # 3x3 smoothing with ReLU (`relu_pred_layers=True`); pred_layers.0 is for the coarsest level, like lat_layers.
        outputs = list(merged)
        for smooth, level in zip(self.pred_layers, reversed(range(len(features)))):
            outputs[level] = F.relu(smooth(merged[level]))
        for down in self.downsample_layers:  # P6 from P5, P7 from P6, no ReLU (`relu_downsample_layers=False`)
            outputs.append(down(outputs[-1]))
        return outputs


def protonet(in_channels: int = 256, channels: int = 256, prototypes: int = 32) -> nn.Sequential:
    """The protonet of `mask_proto_net`: three 3x3 convs, x2 bilinear upsampling, a 3x3 conv and a 1x1 conv to
    the prototypes. Built layer for layer like the reference's make_net, so the convolutions sit at indices
    0, 2, 4, 8, 10 (it keeps a ReLU after the upsampling, a no-op on ReLU outputs; kept for the indices)."""
    def conv(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
        return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)

    return nn.Sequential(
        conv(in_channels, channels, 3), nn.ReLU(inplace=True),
        conv(channels, channels, 3), nn.ReLU(inplace=True),
        conv(channels, channels, 3), nn.ReLU(inplace=True),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.ReLU(inplace=True),
        conv(channels, channels, 3), nn.ReLU(inplace=True),
        conv(channels, prototypes, 1),  # no ReLU here: the model applies it as the prototype activation
    )


class PredictionHead(nn.Module):
    """One 3x3 conv + ReLU (`extra_head_net`), then three 3x3 convs: box regressions, class logits and mask
    coefficients for each of the `priors` prior boxes at every location."""

    def __init__(self, channels: int, priors: int, num_classes: int, num_prototypes: int):
        super().__init__()
        self.num_classes, self.num_prototypes = num_classes, num_prototypes
        self.upfeature = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.bbox_layer = nn.Conv2d(channels, priors * 4, 3, padding=1)
        self.conf_layer = nn.Conv2d(channels, priors * num_classes, 3, padding=1)
        self.mask_layer = nn.Conv2d(channels, priors * num_prototypes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.upfeature(x)

        def per_prior(layer: nn.Conv2d, width: int) -> torch.Tensor:
            # N x (A*width) x H x W -> N x (H*W*A) x width: location-major, then prior, as the priors are laid out.
            out = layer(x).permute(0, 2, 3, 1)
            return out.reshape(out.shape[0], -1, width)

        return (per_prior(self.bbox_layer, 4), per_prior(self.conf_layer, self.num_classes),
                torch.tanh(per_prior(self.mask_layer, self.num_prototypes)))  # `mask_proto_coeff_activation`


# --- the model -----------------------------------------------------------------------------------------------------


class Yolact(nn.Module):
    """YOLACT for inference: `forward(x)` takes a normalised N x 3 x S x S batch and returns a `YolactOutput`.
    Decoding (boxes, Fast NMS, mask assembly) lives in models/yolact.py."""

    def __init__(self, config: YolactConfig = YOLACT_BASE):
        super().__init__()
        self.config = config
        self.backbone = ResNetBackbone(config.blocks)
        self.proto_net = protonet(config.fpn_channels, config.fpn_channels, config.num_prototypes)
        # FPN over C3, C4, C5 (`selected_layers = [1, 2, 3]`), plus P6 and P7.
        self.fpn = FPN(self.backbone.channels[1:], config.fpn_channels, extra_levels=2)
        # The reference builds five PredictionModules, but with `share_prediction_module=True` the last four only
        # point at the first one (outside the state dict); one head applied to every level is the same network.
        priors_per_location = len(config.aspect_ratios)
        self.prediction_layers = nn.ModuleList([
            PredictionHead(config.fpn_channels, priors_per_location, config.num_classes, config.num_prototypes)])
        self._priors: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> YolactOutput:
        c2, c3, c4, c5 = self.backbone(x)
        levels = self.fpn([c3, c4, c5])  # P3..P7: 69, 35, 18, 9, 5 px a side at 550
        # Prototypes from P3 (`mask_proto_src=0`), ReLU as the prototype activation.
        prototypes = F.relu(self.proto_net(levels[0]))
        head = self.prediction_layers[0]
        loc, logits, coefficients = (torch.cat(parts, dim=1) for parts in zip(*(head(level) for level in levels)))
        sizes = tuple(tuple(level.shape[-2:]) for level in levels)
        return YolactOutput(loc, F.softmax(logits.float(), dim=-1), coefficients, prototypes,
                            self.priors(sizes, x.device))

    def priors(self, sizes: tuple[tuple[int, int], ...], device: torch.device) -> torch.Tensor:
        """Prior boxes for feature maps of these (h, w) sizes, cached (they depend on nothing else)."""
        key = (sizes, str(device))
        if key not in self._priors:
            self._priors[key] = make_priors(sizes, self.config).to(device)
        return self._priors[key]


def feature_sizes(input_size: int, levels: int = 5) -> list[tuple[int, int]]:
    """(h, w) of P3..P7 for a square input, by the convolutions' arithmetic (69, 35, 18, 9, 5 at 550); the
    prototypes are twice P3's side (138)."""
    def strided(side: int, kernel: int = 3, padding: int = 1) -> int:
        return (side + 2 * padding - kernel) // 2 + 1

    side = strided(strided(input_size, 7, 3))  # conv1 then maxpool: C2
    sizes = []
    for _ in range(levels):  # C3, C4, C5 by stride-2 3x3 convs in the ResNet; P6, P7 by the FPN's
        side = strided(side)
        sizes.append((side, side))
    return sizes


def make_priors(sizes, config: YolactConfig) -> torch.Tensor:
    """Prior boxes (cx, cy, w, h), fractions of the input square, in the order the head emits its predictions:
    level by level (P3 first), then row by row, column by column, then one box per aspect ratio.

    The centre of cell (row j, column i) is ((i + 0.5) / W, (j + 0.5) / H). With the checkpoints' settings
    (`use_pixel_scales=True, preapply_sqrt=False, use_square_anchors=True`) a prior is a square of side
    scale * sqrt(aspect ratio) / input_size, whatever the aspect ratio's direction.
    """
    boxes = []
    for (height, width), scale in zip(sizes, config.prior_scales):
        rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                                    torch.arange(width, dtype=torch.float64), indexing="ij")
        cx, cy = (cols + 0.5) / width, (rows + 0.5) / height
        for_ratio = []
        for ratio in config.aspect_ratios:
            w = scale * ratio ** 0.5 / config.input_size
            h = w if config.square_priors else scale / ratio ** 0.5 / config.input_size
            for_ratio.append(torch.stack([cx, cy, torch.full_like(cx, w), torch.full_like(cy, h)], dim=-1))
        boxes.append(torch.stack(for_ratio, dim=2).reshape(-1, 4))  # H x W x A x 4 -> location-major
    return torch.cat(boxes).float()
