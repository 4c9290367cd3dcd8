"""Super-resolution networks, written so the official checkpoints load with `strict=True`.

No maintained pip package ships these three for modern torch without pulling in a training framework (basicsr breaks
on new torchvision), so they are re-stated here from the papers, with the layer names of the official state dicts
(manifests in ../shared/layouts/). Every network maps RGB in [0, 1] to RGB in [0, 1] at `scale` times the size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# --- SRGAN generator (Ledig et al. 2017), key layout of leftthomas/SRGAN ---------------------------------------------

class _SRGANResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class _SRGANUpsample(nn.Module):
    """Conv to 4x the channels, then PixelShuffle(2): one x2 step (the paper's sub-pixel convolution)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.prelu = nn.PReLU()

    def forward(self, x):
        return self.prelu(self.pixel_shuffle(self.conv(x)))


class SRGANGenerator(nn.Module):
    """9x9 conv + PReLU, five residual blocks, conv + PReLU, a global skip, log2(scale) x2 upsamplers, 9x9 conv."""

    def __init__(self, scale: int = 4, channels: int = 64, num_blocks: int = 5):
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError("SRGAN scale must be 2, 4 or 8")
        self.scale = scale
        self.block1 = nn.Sequential(nn.Conv2d(3, channels, 9, padding=4), nn.PReLU())
        for index in range(num_blocks):  # named block2..block6 in the official checkpoint
            setattr(self, f"block{index + 2}", _SRGANResidualBlock(channels))
        self._residual_names = [f"block{index + 2}" for index in range(num_blocks)]
        # At the pinned commit block7 is conv + PReLU, without the BatchNorm of later versions.
        self.block7 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU())
        upsamplers = [_SRGANUpsample(channels) for _ in range(int(math.log2(scale)))]
        self.block8 = nn.Sequential(*upsamplers, nn.Conv2d(channels, 3, 9, padding=4))

    def forward(self, x):
        features = self.block1(x)
        residual = features
        for name in self._residual_names:
            residual = getattr(self, name)(residual)
        out = self.block8(features + self.block7(residual))
        return (torch.tanh(out) + 1) / 2


# --- ESRGAN's RRDBNet (Wang et al. 2018), key layout of BasicSR ----------------------------------------------------

class _ResidualDenseBlock(nn.Module):
    """Five densely connected convs; the output is scaled by 0.2 before the residual add (residual scaling)."""

    def __init__(self, channels: int = 64, growth: int = 32):
        super().__init__()
        for index in range(4):
            setattr(self, f"conv{index + 1}", nn.Conv2d(channels + index * growth, growth, 3, padding=1))
        self.conv5 = nn.Conv2d(channels + 4 * growth, channels, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        features = [x]
        for index in range(4):
            conv = getattr(self, f"conv{index + 1}")
            features.append(self.lrelu(conv(torch.cat(features, 1))))
        return x + 0.2 * self.conv5(torch.cat(features, 1))


class _RRDB(nn.Module):
    def __init__(self, channels: int, growth: int):
        super().__init__()
        self.rdb1 = _ResidualDenseBlock(channels, growth)
        self.rdb2 = _ResidualDenseBlock(channels, growth)
        self.rdb3 = _ResidualDenseBlock(channels, growth)

    def forward(self, x):
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """Residual-in-residual dense blocks without BatchNorm, then two nearest x2 upsamplings with convs."""

    def __init__(self, scale: int = 4, num_block: int = 23, channels: int = 64, growth: int = 32):
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError("RRDBNet scale must be 1, 2 or 4")
        self.scale = scale
        # x2 and x1 models see a pixel-unshuffled input, so the body always works at 1/4 of the output size.
        self._unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.conv_first = nn.Conv2d(3 * self._unshuffle**2, channels, 3, padding=1)
        self.body = nn.Sequential(*[_RRDB(channels, growth) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_up1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_up2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_hr = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_last = nn.Conv2d(channels, 3, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        if self._unshuffle > 1:
            x = F.pixel_unshuffle(x, self._unshuffle)
        features = self.conv_first(x)
        features = features + self.conv_body(self.body(features))
        features = self.lrelu(self.conv_up1(F.interpolate(features, scale_factor=2, mode="nearest")))
        features = self.lrelu(self.conv_up2(F.interpolate(features, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(features))).clamp(0, 1)


# --- Real-ESRGAN's SRVGGNetCompact, key layout of xinntao/Real-ESRGAN ----------------------------------------------

class SRVGGNetCompact(nn.Module):
    """A plain stack of convs + PReLU at low resolution, PixelShuffle at the end, plus the nearest-upsampled input."""

    def __init__(self, scale: int = 4, num_conv: int = 32, channels: int = 64):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.PReLU(num_parameters=channels)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(num_parameters=channels)]
        layers.append(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x):
        out = self.upsampler(self.body(x))
        return (out + F.interpolate(x, scale_factor=self.scale, mode="nearest")).clamp(0, 1)
