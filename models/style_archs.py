"""Style-transfer networks, written so the official checkpoints load with `strict=True`.

- `TransformerNet`: the image transform network of Johnson et al. 2016 as pytorch/examples `fast_neural_style` builds
  it (reflection padding, instance norm with affine parameters, five residual blocks, nearest x2 upsample + conv instead
  of transposed convs). RGB 0-255 in, RGB 0-255 out (unclamped).
- `adain_encoder()` / `adain_decoder()`: the VGG-19 encoder (Caffe weights with the input normalisation folded into a
  first 1x1 conv) and the mirrored decoder of Huang & Belongie 2017, with the plain `nn.Sequential` indices of
  naoto0804/pytorch-AdaIN, so the state-dict keys are `{index}.weight`. RGB 0-1 in and out.
- `vgg19_layers()`: layer name -> module index in torchvision's `vgg19().features`, for the Gatys losses.

Key layouts are checked against ../shared/layouts/{fast_style,adain_vgg,adain_decoder}.json by the tests.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

# VGG-19 (configuration "E"): conv widths per block; a max-pool follows every block.
_VGG19_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


# --- Fast neural style (Johnson et al. 2016), key layout of pytorch/examples ------------------------------------------

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


# --- AdaIN (Huang & Belongie 2017), key layout of naoto0804/pytorch-AdaIN ---------------------------------------------

def _adain_vgg() -> tuple[list[nn.Module], dict[str, int]]:
    """The reference's VGG-19 module list (all 53 modules, to relu5_4) and its layer names -> indices."""
    modules: list[nn.Module] = [nn.Conv2d(3, 3, 1)]  # Caffe preprocessing (BGR, mean subtraction, x255) as a conv
    names: dict[str, int] = {}
    channels = 3
    for block, widths in enumerate(_VGG19_BLOCKS, start=1):
        if block > 1:
            # ceil_mode: odd sizes keep their last row/column, as in the Torch original the weights come from
            modules.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
        for index, width in enumerate(widths, start=1):
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(channels, width, 3)]
            names[f"conv{block}_{index}"] = len(modules) - 1
            modules.append(nn.ReLU())
            names[f"relu{block}_{index}"] = len(modules) - 1
            channels = width
    return modules, names


ADAIN_ENCODER_LAYERS: dict[str, int] = _adain_vgg()[1]
ADAIN_RELU4_1 = ADAIN_ENCODER_LAYERS["relu4_1"]  # 30: the reference encodes up to here and drops the rest


def adain_encoder(full: bool = True) -> nn.Sequential:
    """The reference's `net.vgg`. `full=True` has every layer of the official `vgg_normalised.pth` (to load it
    strictly); `full=False` stops at relu4_1, the only part AdaIN uses (`test.py` slices `[:31]`)."""
    modules, _ = _adain_vgg()
    return nn.Sequential(*(modules if full else modules[:ADAIN_RELU4_1 + 1]))


def adain_decoder() -> nn.Sequential:
    """The reference's `net.decoder`: the encoder to relu4_1 mirrored, with nearest x2 upsampling for the pools."""
    plan = [(512, 256), "up", (256, 256), (256, 256), (256, 256), (256, 128), "up", (128, 128), (128, 64), "up",
            (64, 64), (64, 3)]
    modules: list[nn.Module] = []
    for step in plan:
        if step == "up":
            modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        modules += [nn.ReflectionPad2d(1), nn.Conv2d(step[0], step[1], 3), nn.ReLU()]
    return nn.Sequential(*modules[:-1])  # the last conv outputs RGB directly: no ReLU


# --- VGG-19 as torchvision builds it (Gatys et al. 2016) --------------------------------------------------------------

def vgg19_layers() -> dict[str, int]:
    """Layer name (conv1_1, relu1_1, ..., pool5) -> index in torchvision's `vgg19().features`."""
    names: dict[str, int] = {}
    index = 0
    for block, widths in enumerate(_VGG19_BLOCKS, start=1):
        for position in range(1, len(widths) + 1):
            names[f"conv{block}_{position}"] = index
            names[f"relu{block}_{position}"] = index + 1
            index += 2
        names[f"pool{block}"] = index
        index += 1
    return names
