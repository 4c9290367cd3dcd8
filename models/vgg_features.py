"""VGG features and their Gram matrices: what AdaIN and Gatys see an image through.

VGG activations carry content (where things are); their Gram matrices carry style (which features fire together,
wherever they are). `VGGFeatures` returns the activations of named layers of any VGG stack (AdaIN's Caffe-weight
encoder, torchvision's VGG-19 for Gatys), `gram_matrix` computes the style representation and `gram_image` draws it
for the tab's teaching view.
"""
from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np
import torch
from torch import nn

from . import runtime
from .style_tensors import first_parameter, to_tensor

# VGG-19 (configuration "E"): conv widths per block; a max-pool follows every block.
VGG19_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


def vgg19_layers() -> dict[str, int]:
    """Layer name (conv1_1, relu1_1, ..., pool5) -> index in torchvision's `vgg19().features`."""
    names: dict[str, int] = {}
    index = 0
    for block, widths in enumerate(VGG19_BLOCKS, start=1):
        for position in range(1, len(widths) + 1):
            names[f"conv{block}_{position}"] = index
            names[f"relu{block}_{position}"] = index + 1
            index += 2
        names[f"pool{block}"] = index
        index += 1
    return names


class VGGFeatures(nn.Module):
    """A VGG feature stack that returns the activations of named layers (it stops after the deepest one asked for)."""

    def __init__(self, layers: nn.Sequential, names: dict[str, int], imagenet_normalize: bool):
        super().__init__()
        self.layers = layers
        self.names = {name: index for name, index in names.items() if index < len(layers)}
        self.imagenet_normalize = imagenet_normalize  # torchvision VGG wants ImageNet mean/std; AdaIN's has a 1x1 conv
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb01: torch.Tensor, wanted: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = list(wanted)
        unknown = [name for name in wanted if name not in self.names]
        if unknown:
            raise ValueError(f"unknown VGG layer {', '.join(unknown)}; valid: {', '.join(self.names)}")
        by_index = {self.names[name]: name for name in wanted}
        x = (rgb01 - self.mean.to(rgb01.dtype)) / self.std.to(rgb01.dtype) if self.imagenet_normalize else rgb01
        found = {}
        for index, layer in enumerate(self.layers[: max(by_index) + 1]):
            x = layer(x)
            if index in by_index:
                found[by_index[index]] = x
        return found


def feature_extractor(net: nn.Module) -> VGGFeatures:
    """The VGG a model sees style through: its `encoder` (AdaIN), or the network itself (the Gatys VGG)."""
    extractor = getattr(net, "encoder", net)
    if isinstance(extractor, VGGFeatures):
        return extractor
    raise ValueError("fast-style networks have no VGG: their style was learnt in training.")


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C) with G[n, i, j] = sum over pixels of F[n, i, p] * F[n, j, p] / (C * H * W).

    How strongly channels i and j fire together, wherever in the image: texture without layout. Dividing by the
    number of feature values (Johnson et al.; pytorch/examples `gram_matrix`) makes layers and image sizes
    comparable, so one style weight works at any working size. Gatys et al. use the raw sum with 1/(4 N^2 M^2) in
    the loss instead; that changes the scale of good style weights, not the method.
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def gram_image(extractor: VGGFeatures, rgb: np.ndarray, layer: str = "relu2_1", min_side: int = 256) -> np.ndarray:
    """The Gram matrix of `rgb` at `layer` as a C x C picture (viridis, enlarged to at least `min_side` px).

    For display only: |G| divided by its largest entry, then a square root so weaker channel correlations stay
    visible next to the bright diagonal (each channel's energy). Row/column i is VGG channel i.
    """
    reference = first_parameter(extractor)
    with torch.inference_mode():
        features = extractor(to_tensor(rgb, reference.device, reference.dtype, 1.0), [layer])[layer]
        gram = runtime.to_numpy(gram_matrix(features.float())[0].abs())
    scaled = np.sqrt(gram / max(float(gram.max()), 1e-12))
    picture = cv2.applyColorMap(np.rint(scaled * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)[..., ::-1]
    factor = max(1, -(-min_side // gram.shape[0]))
    return np.ascontiguousarray(picture.repeat(factor, axis=0).repeat(factor, axis=1))
