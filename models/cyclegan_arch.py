"""The two generators of pytorch-CycleGAN-and-pix2pix, with the key layout of the official checkpoints.

ResnetGenerator (CycleGAN, Johnson et al.'s transform net with 9 residual blocks) and UnetGenerator (pix2pix,
unet_256: eight stride-2 levels with skip connections). No installable package ships them; the module nesting is
what the official state dicts' keys spell (`model.10.conv_block.1.weight`, `model.model.1.model.3...`).
Both map [-1, 1] RGB to [-1, 1] RGB (tanh).
"""
from __future__ import annotations

import functools

import torch
from torch import nn

# CycleGAN's "instance" norm: no affine parameters, no running statistics (so no state-dict entries at all).
InstanceNorm = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int, dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), InstanceNorm(channels),
                                   nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), InstanceNorm(channels)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """7x7 conv, two stride-2 downsamplings, `blocks` residual blocks, two transposed-conv upsamplings, 7x7 conv."""

    def __init__(self, channels: int = 64, blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, channels, 7), InstanceNorm(channels), nn.ReLU(True)]
        for level in range(2):
            width = channels * 2**level
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1), InstanceNorm(width * 2), nn.ReLU(True)]
        layers += [ResnetBlock(channels * 4) for _ in range(blocks)]
        for level in range(2, 0, -1):
            width = channels * 2**level
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                       InstanceNorm(width // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UnetBlock(nn.Module):
    """One U-Net level: down (conv), the inner levels, up (transposed conv), and the skip concatenation.

    The outermost level has no norm and ends in tanh; the innermost has no inner levels. Convolutions before a
    BatchNorm carry no bias, as in the reference.
    """

    def __init__(self, outer: int, inner: int, in_channels: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        in_channels = in_channels or outer
        down = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=False)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=False)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, nn.BatchNorm2d(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=False)
            layers = [nn.LeakyReLU(0.2, True), down, nn.BatchNorm2d(inner), submodule, nn.ReLU(True), up,
                      nn.BatchNorm2d(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """unet_256: `levels` stride-2 levels, so inputs must be multiples of 2**levels (256 for the official models)."""

    def __init__(self, channels: int = 64, levels: int = 8, dropout: bool = True):
        super().__init__()
        block = UnetBlock(channels * 8, channels * 8, innermost=True)
        for _ in range(levels - 5):
            block = UnetBlock(channels * 8, channels * 8, submodule=block, dropout=dropout)
        for scale in (4, 2, 1):
            block = UnetBlock(channels * scale, channels * scale * 2, submodule=block)
        self.model = UnetBlock(3, channels, in_channels=3, submodule=block, outermost=True)
        self.levels = levels

    def forward(self, x):
        return self.model(x)
