"""RetinaFace's networks (Deng et al. 2020), in the key layout of biubug6's Pytorch_Retinaface checkpoints.

Body (MobileNet-0.25 or ResNet-50) -> FPN -> one SSH context module per level -> class, box and landmark heads. Module
and attribute names follow the reference exactly (including `ClassHead` and `conv7x7_3`), because they are the
state-dict keys of the official checkpoints. Anchors, decoding and loading are `retinaface.py`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

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

