"""AdaIN (Huang & Belongie 2017): any style image in one pass.

The content's VGG features (to relu4_1) get the style's channel means and standard deviations, and a trained decoder
turns them back into an image; `alpha` blends the content and the re-styled features before decoding, and
`preserve_color` recolours the style image with the content's colours first.
"""
from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import runtime, weights
from .adain_arch import ADAIN_ENCODER_LAYERS, ADAIN_RELU4_1, adain_decoder, adain_encoder
from .images import check_rgb
from .style_colors import match_colors
from .style_tensors import first_parameter, pad_to_multiple, to_tensor, to_uint8
from .vgg_features import VGGFeatures

WORKING_SIDE = 512  # the default longest side, as the reference
MIN_SIDE = 32  # the encoder pools three times and needs a few feature pixels left
_ADAIN = "https://github.com/naoto0804/pytorch-AdaIN"
ENCODER = weights.Checkpoint(
    name="adain-vgg-normalised", task="style", url=f"{_ADAIN}/releases/download/v0.0.0/vgg_normalised.pth",
    filename="adain_vgg_normalised.pth", sha256=None, bytes=None, license="MIT", source=_ADAIN,
    hash_origin="first-download",
    notes="release asset vgg_normalised.pth (saved as adain_vgg_normalised.pth): the Caffe VGG-19 to relu5_4 as a "
    "plain nn.Sequential state dict; only the layers to relu4_1 are used. SHA-256 and size UNCONFIRMED",
)
DECODER = weights.Checkpoint(
    name="adain-decoder", task="style", url=f"{_ADAIN}/releases/download/v0.0.0/decoder.pth",
    filename="adain_decoder.pth", sha256=None, bytes=None, license="MIT", source=_ADAIN, hash_origin="first-download",
    notes="release asset decoder.pth (saved as adain_decoder.pth): plain nn.Sequential state dict. "
    "SHA-256 and size UNCONFIRMED",
)
weights.register(ENCODER, DECODER)


def channel_mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation over the pixels, shaped (N, C, 1, 1).

    As the reference: the unbiased variance plus `eps` (which keeps flat channels from dividing by zero).
    """
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    return flat.mean(dim=2).view(n, c, 1, 1), (flat.var(dim=2) + eps).sqrt().view(n, c, 1, 1)


def adaptive_instance_norm(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y), per channel: the content's layout with the style's
    statistics."""
    content_mean, content_std = channel_mean_std(content)
    style_mean, style_std = channel_mean_std(style)
    return (content - content_mean) / content_std * style_std + style_mean


class AdaIN(nn.Module):
    """Encoder (VGG-19 to relu4_1) + AdaIN + decoder; RGB 0-1 in and out."""

    def __init__(self, encoder: nn.Sequential, decoder: nn.Sequential):
        super().__init__()
        self.encoder = VGGFeatures(encoder, ADAIN_ENCODER_LAYERS, imagenet_normalize=False)
        self.decoder = decoder

    def encode(self, rgb01: torch.Tensor) -> torch.Tensor:
        return self.encoder(rgb01, ["relu4_1"])["relu4_1"]

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        return self.with_style_features(content, self.encode(style), alpha)

    def with_style_features(self, content: torch.Tensor, style_features: torch.Tensor, alpha: float = 1.0):
        """As forward, with the style already encoded (a live view re-uses one style for every frame)."""
        content_features = self.encode(content)
        target = adaptive_instance_norm(content_features.float(), style_features.float())
        mixed = alpha * target + (1.0 - alpha) * content_features.float()  # alpha blends in feature space
        return self.decoder(mixed.to(content_features.dtype))


def adain_from_states(encoder_state: dict, decoder_state: dict, decoder_label: str = "decoder.pth") -> AdaIN:
    for state, label in ((encoder_state, "vgg_normalised.pth"), (decoder_state, decoder_label)):
        if not isinstance(state, dict):
            raise weights.WeightsError(f"{label} holds a {type(state).__name__}, not a state dict of AdaIN.")
    encoder = adain_encoder(full=True)  # the official file has every layer to relu5_4: load it whole, strictly
    weights.strict_load(encoder, encoder_state, "the AdaIN VGG encoder (naoto0804/pytorch-AdaIN net.vgg, "
                        "vgg_normalised.pth)")
    decoder = adain_decoder()
    weights.strict_load(decoder, decoder_state, f"the AdaIN decoder (naoto0804/pytorch-AdaIN net.decoder, "
                        f"{decoder_label})")
    return AdaIN(encoder[: ADAIN_RELU4_1 + 1], decoder)  # as the reference's test.py: keep the encoder to relu4_1


def load(device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> AdaIN:
    """The official encoder and decoder, or the official encoder with `checkpoint_file`: a user's decoder trained
    with naoto0804/pytorch-AdaIN; one shared instance per weights and device."""
    device = device or runtime.device()

    def build() -> AdaIN:
        encoder_state = weights.load_state_dict(weights.fetch(ENCODER, progress))
        if checkpoint_file is None:
            model = adain_from_states(encoder_state, weights.load_state_dict(weights.fetch(DECODER, progress)))
        else:
            model = adain_from_states(encoder_state, weights.load_state_dict(checkpoint_file),
                                      Path(checkpoint_file).name)
        # fp32 even on CUDA: the Caffe-scaled VGG activations and their variances are not known to stay inside
        # fp16's range.
        return runtime.prepare(model, device, half=False)

    return runtime.cached_model("adain", "adain", device, checkpoint_file, build)


def stylize_adain(model: AdaIN, content: np.ndarray, style: np.ndarray, alpha: float = 1.0,
                  preserve_color: bool = False) -> np.ndarray:
    """Content in the style of `style` (both RGB uint8, any sizes); `alpha` 0 reproduces the content through the
    decoder, 1 is full style. `preserve_color` first recolours the style image with the content's colours."""
    check_rgb(content, "AdaIN")
    check_rgb(style, "AdaIN's style image")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1; got {alpha}")
    if preserve_color:
        style = match_colors(style, content)
    reference = first_parameter(model)
    h, w = content.shape[:2]
    with torch.inference_mode():
        x = pad_to_multiple(to_tensor(content, reference.device, reference.dtype, 1.0), 8)  # 3 pools, 3 x2 ups
        y = model.with_style_features(x, _style_features(model, style), alpha)
        return to_uint8(y[..., :h, :w], 1.0)


_STYLE_CACHE_SIZE = 4
_style_cache: "weakref.WeakKeyDictionary[AdaIN, OrderedDict[str, torch.Tensor]]" = weakref.WeakKeyDictionary()
_style_cache_lock = threading.Lock()


def _style_features(model: AdaIN, style: np.ndarray) -> torch.Tensor:
    """The style's relu4_1 features, remembered for the last few style images: a webcam view stylises every frame
    with the same style, and encoding it costs as much as encoding the frame."""
    key = f"{style.shape}:{hashlib.sha1(np.ascontiguousarray(style).data).hexdigest()}"
    with _style_cache_lock:
        known = _style_cache.setdefault(model, OrderedDict())
        if key in known:
            known.move_to_end(key)
            return known[key]
    reference = first_parameter(model)
    features = model.encode(to_tensor(style, reference.device, reference.dtype, 1.0))
    with _style_cache_lock:
        known[key] = features
        while len(known) > _STYLE_CACHE_SIZE:
            known.popitem(last=False)
    return features
