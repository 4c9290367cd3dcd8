"""CycleGAN (Zhu et al., ICCV 2017): unpaired translation with the official resnet_9blocks generators, and the cycle.

A generator takes any size: the input is reflect-padded to a multiple of 4 (two stride-2 levels) and the result
cropped back. For the 7 pairs trained together (horse2zebra / zebra2horse, ...) the reverse generator F undoes G:
X -> Y = G(X) -> X' = F(G(X)), and |X - X'| per pixel is the cycle-consistency loss CycleGAN trains with, made visible.
The network is models/cyclegan_arch.py; loading and conversions shared with Pix2Pix are models/translation.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import draw, translation, weights
from .cyclegan_arch import ResnetGenerator
from .images import check_rgb, fit_within

TASK_ID = "cyclegan"
MODELS = (
    "horse2zebra", "zebra2horse", "summer2winter_yosemite", "winter2summer_yosemite", "monet2photo", "style_monet",
    "style_cezanne", "style_ukiyoe", "style_vangogh", "apple2orange", "orange2apple", "map2sat", "sat2map",
    "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label", "facades_label2photo",
    "iphone2dslr_flower",
)
DEFAULT_MODEL = "horse2zebra"
# CycleGAN models trained together as the two directions of one pair: X -> Y -> X is the cycle.
PAIRS = [("horse2zebra", "zebra2horse"), ("summer2winter_yosemite", "winter2summer_yosemite"),
         ("monet2photo", "style_monet"), ("apple2orange", "orange2apple"), ("map2sat", "sat2map"),
         ("cityscapes_photo2label", "cityscapes_label2photo"), ("facades_photo2label", "facades_label2photo")]
REVERSE = {**dict(PAIRS), **{backward: forward for forward, backward in PAIRS}}
MULTIPLE = 4  # two stride-2 levels: sides must divide by 4 to come back the same size

CHECKPOINTS = translation.catalogue(TASK_ID, MODELS, "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{}.pth",
                                    "resnet_9blocks, instance norm, no dropout")


build = ResnetGenerator  # the network in the official layout (random weights until loaded)


def load(model: str = DEFAULT_MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> torch.nn.Module:
    """The generator `model` with its official weights (or a user's file in the reference format), shared."""
    return translation.load_generator(TASK_ID, model, build, device, checkpoint_file, progress)


def working_image(rgb: np.ndarray, working_side: int) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The image at most `working_side` px a side (0: as it is), and its old (w, h) if it was scaled down."""
    return fit_within(rgb, working_side) if working_side else (rgb, None)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to a multiple; returns the padded tensor and the original (H, W) to crop back to."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"  # reflect needs the pad smaller than the side
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (h, w)


def translate(net: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    """Any size: reflect-pad to a multiple of 4 (two stride-2 levels), translate, crop back."""
    check_rgb(rgb, "CycleGAN")
    device, dtype = translation.placement(net)
    x, (h, w) = pad_to_multiple(translation.to_tensor(rgb, device, dtype), MULTIPLE)
    with torch.inference_mode():
        return translation.to_image(net(x)[..., :h, :w])


@dataclass
class Cycle:
    translated: np.ndarray  # Y = G(X)
    reconstructed: np.ndarray  # X' = F(G(X))
    error: np.ndarray  # per-pixel |X - X'| averaged over channels, in the networks' [-1, 1] units (H, W) float32
    mean_error: float  # the cycle-consistency loss (L1) of this image, as CycleGAN trains it


def cycle(forward: torch.nn.Module, backward: torch.nn.Module, rgb: np.ndarray) -> Cycle:
    translated = translate(forward, rgb)
    reconstructed = translate(backward, translated)
    error = np.abs(rgb.astype(np.float32) - reconstructed.astype(np.float32)).mean(axis=2) / 127.5
    return Cycle(translated, reconstructed, error, float(error.mean()))


def error_heatmap(error: np.ndarray, vmax: float = 1.0) -> np.ndarray:
    """The |X - X'| map as a colour image (inferno: dark = reconstructed exactly, bright = lost)."""
    return draw.colorize(error / vmax)
