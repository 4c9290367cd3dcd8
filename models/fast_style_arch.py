"""The image transform network of fast neural style, written so the official checkpoints load with `strict=True`.

`TransformerNet` (Johnson et al. 2016) as pytorch/examples `fast_neural_style` builds it: reflection padding, instance
norm with affine parameters, five residual blocks, nearest x2 upsample + conv instead of transposed convs. RGB 0-255
in, RGB 0-255 out (unclamped). Its key layout is checked against ../shared/layouts/fast_style.json by the tests.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class ConvLayer(nn.Module):
    """Reflection padding then a convolution: avoids the dark borders zero padding paints into stylised images."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel_size // 2)  # no parameters, so the key names stay `convN.conv2d.*`
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        return self.conv2d(self.pad(x))


class UpsampleConvLayer(ConvLayer):
    """Nearest-neighbour x2 upsampling then a convolution: no checkerboard artefacts (Odena et al., Distill 2016)."""

    def forward(self, x):
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResidualBlock(nn.Module):
    """conv-IN-ReLU-conv-IN plus the input; no ReLU after the sum (as the reference)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x):
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class TransformerNet(nn.Module):
    """Two stride-2 downsampling convs, five residual blocks at 1/4 resolution, two upsampling convs.

    H and W should be multiples of 4 for the output to have the input's size (the stylise code pads to that).
    """

    def __init__(self):
        super().__init__()
        self.conv1 = ConvLayer(3, 32, 9)
        self.in1 = nn.InstanceNorm2d(32, affine=True)
        self.conv2 = ConvLayer(32, 64, 3, stride=2)
        self.in2 = nn.InstanceNorm2d(64, affine=True)
        self.conv3 = ConvLayer(64, 128, 3, stride=2)
        self.in3 = nn.InstanceNorm2d(128, affine=True)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (ResidualBlock(128) for _ in range(5))
        self.deconv1 = UpsampleConvLayer(128, 64, 3)
        self.in4 = nn.InstanceNorm2d(64, affine=True)
        self.deconv2 = UpsampleConvLayer(64, 32, 3)
        self.in5 = nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9)

    def forward(self, x):
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)
