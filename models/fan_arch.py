"""FAN, the Face Alignment Network (Bulat & Tzimiropoulos, ICCV 2017, "How far are we from solving the 2D & 3D Face
Alignment problem?"): stacked hourglasses (Newell et al. 2016) built from a hierarchical, parallel, multi-scale
residual block, predicting one 64x64 heatmap per landmark after every stack.

Re-stated from the published architecture so that face-alignment's 2DFAN-4 state dict loads with `strict=True`:
module and attribute names (`m0`, `top_m_0`, `b2_plus_1`, ...) and registration order are the checkpoint's keys and
their order (checked against ../shared/layouts/fan4.json in the tests). Input: RGB in [0, 1], 256x256; output: a list
with one (B, 68, 64, 64) tensor per stack, the last one being the prediction.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=False)


class ConvBlock(nn.Module):
    """Pre-activation residual block whose three 3x3 convs (out/2, out/4, out/4 channels) run in sequence and are
    concatenated: the receptive fields 3, 5 and 7 all reach the output (Bulat & Tzimiropoulos' multi-scale block)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        half, quarter = out_ch // 2, out_ch // 4
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = _conv3x3(in_ch, half)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv2 = _conv3x3(half, quarter)
        self.bn3 = nn.BatchNorm2d(quarter)
        self.conv3 = _conv3x3(quarter, quarter)
        # A 1x1 projection (itself pre-activated) only where the channel count changes.
        self.downsample = None if in_ch == out_ch else nn.Sequential(
            nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True), nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv1(F.relu(self.bn1(x)))
        second = self.conv2(F.relu(self.bn2(first)))
        third = self.conv3(F.relu(self.bn3(second)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.cat([first, second, third], dim=1) + shortcut


class HourGlass(nn.Module):
    """One hourglass of `depth` levels: at each level an upper branch keeps the resolution (`b1_<level>`), a lower
    branch halves it (`b2_<level>`), recurses (or, at the bottom, runs `b2_plus_1`), is refined (`b3_<level>`) and
    upsampled back; the two branches are summed."""

    def __init__(self, depth: int = 4, features: int = 256):
        super().__init__()
        self.depth = depth
        self._add_level(depth, features)

    def _add_level(self, level: int, features: int) -> None:
        # Registration order is the checkpoint's key order: b1, b2, (deeper levels | b2_plus), b3.
        self.add_module(f"b1_{level}", ConvBlock(features, features))
        self.add_module(f"b2_{level}", ConvBlock(features, features))
        if level > 1:
            self._add_level(level - 1, features)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(features, features))
        self.add_module(f"b3_{level}", ConvBlock(features, features))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        upper = self._modules[f"b1_{level}"](x)
        lower = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        lower = self._level(level - 1, lower) if level > 1 else self._modules[f"b2_plus_{level}"](lower)
        lower = self._modules[f"b3_{level}"](lower)
        return upper + F.interpolate(lower, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class FAN(nn.Module):
    """Stem (7x7/2 conv, three ConvBlocks, one 2x pooling: 256 -> 64 px) then `num_modules` hourglass stacks.

    Every stack predicts heatmaps (`l<i>`); all but the last feed them back, mapped to features (`al<i>`), together
    with their own features (`bl<i>`), into the next stack: intermediate supervision, so each stack refines the last.
    """

    def __init__(self, num_modules: int = 4, num_landmarks: int = 68, features: int = 256):
        super().__init__()
        self.num_modules = num_modules
        self.num_landmarks = num_landmarks
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, features)
        for i in range(num_modules):
            self.add_module(f"m{i}", HourGlass(4, features))
            self.add_module(f"top_m_{i}", ConvBlock(features, features))
            self.add_module(f"conv_last{i}", nn.Conv2d(features, features, kernel_size=1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(features))
            self.add_module(f"l{i}", nn.Conv2d(features, num_landmarks, kernel_size=1))
            if i < num_modules - 1:
                self.add_module(f"bl{i}", nn.Conv2d(features, features, kernel_size=1))
                self.add_module(f"al{i}", nn.Conv2d(num_landmarks, features, kernel_size=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.conv4(self.conv3(F.avg_pool2d(self.conv2(x), 2, stride=2)))
        stacks = []
        for i in range(self.num_modules):
            features = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](x))
            features = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](features)))
            heatmaps = self._modules[f"l{i}"](features)
            stacks.append(heatmaps)
            if i < self.num_modules - 1:
                x = x + self._modules[f"bl{i}"](features) + self._modules[f"al{i}"](heatmaps)
        return stacks
