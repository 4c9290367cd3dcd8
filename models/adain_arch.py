"""AdaIN's encoder and decoder (Huang & Belongie 2017), written so the official checkpoints load with `strict=True`.

`adain_encoder()` / `adain_decoder()`: the VGG-19 encoder (Caffe weights with the input normalisation folded into a
first 1x1 conv) and the mirrored decoder, with the plain `nn.Sequential` indices of naoto0804/pytorch-AdaIN, so the
state-dict keys are `{index}.weight`. RGB 0-1 in and out. Key layouts are checked against
../shared/layouts/{adain_vgg,adain_decoder}.json by the tests.
"""
from __future__ import annotations

from torch import nn

from .vgg_features import VGG19_BLOCKS


def _adain_vgg() -> tuple[list[nn.Module], dict[str, int]]:
    """The reference's VGG-19 module list (all 53 modules, to relu5_4) and its layer names -> indices."""
    modules: list[nn.Module] = [nn.Conv2d(3, 3, 1)]  # Caffe preprocessing (BGR, mean subtraction, x255) as a conv
    names: dict[str, int] = {}
    channels = 3
    for block, widths in enumerate(VGG19_BLOCKS, start=1):
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
