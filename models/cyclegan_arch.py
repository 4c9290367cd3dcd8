"""CycleGAN's generator from pytorch-CycleGAN-and-pix2pix, with the key layout of the official checkpoints.

ResnetGenerator (resnet_9blocks: Johnson et al.'s transform net with 9 residual blocks). No installable package ships
it; the module nesting is what the official state dicts' keys spell (`model.10.conv_block.1.weight`). It maps [-1, 1]
RGB to [-1, 1] RGB (tanh).
"""
from __future__ import annotations

import functools

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
