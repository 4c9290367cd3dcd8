"""Style transfer three ways, all built on one idea: VGG features carry content, their Gram matrices carry style.

- Fast neural style (Johnson et al. 2016): a `TransformerNet` trained once per style; one forward pass per image.
  The four official pytorch/examples models (candy, mosaic, rain_princess, udnie) come in one zip archive.
- Gatys optimisation (Gatys et al. 2016): the pixels themselves are optimised against VGG-19 content and style losses.
  `gatys_steps()` is a generator that reports every few steps, so a UI can stream the image and the loss curves and stop
  early; it keeps the best image seen.
- AdaIN (Huang & Belongie 2017): any style in one pass: the content's VGG features get the style's channel means and
  standard deviations, and a trained decoder turns them back into an image.

`run()` is the non-streaming pipeline (UI button and `python app.py predict style`). Style images for AdaIN/Gatys
are files the user gives or patterns this module paints (`BUILTIN_STYLES`), never downloaded.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
import time
import weakref
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Callable, Generator, Iterable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models import VGG19_Weights

from . import images, runtime, weights
from .images import LoadedImage, fit_within, with_alpha
from .style_archs import (ADAIN_ENCODER_LAYERS, ADAIN_RELU4_1, TransformerNet, adain_decoder, adain_encoder,
                          vgg19_layers)
from .tasks import Option, Task, TaskOutput

TASK_ID = "style"
FAST_STYLES = ("candy", "mosaic", "rain_princess", "udnie")
MODEL_NAMES = (*FAST_STYLES, "adain", "gatys")
DEFAULT_MODEL = "mosaic"
MODEL_LABELS = {
    "candy": "Fast style: candy (Johnson et al. 2016, pytorch/examples)",
    "mosaic": "Fast style: mosaic",
    "rain_princess": "Fast style: rain princess",
    "udnie": "Fast style: udnie",
    "adain": "AdaIN: any style image, one pass (Huang & Belongie 2017)",
    "gatys": "Gatys: optimise the pixels against VGG-19 (slow, streams)",
}
# Working size (longest side, px) when `max_side` is 0: fast style is one cheap pass; AdaIN's reference works at 512;
# Gatys runs a VGG forward and backward pass per step.
DEFAULT_WORKING_SIDE = {"fast": 768, "adain": 512, "gatys": 256}
MIN_SIDE = {"fast": 8, "adain": 32, "gatys": 32}  # AdaIN/Gatys pool 3-4 times and need a few feature pixels left

# --- Checkpoints ------------------------------------------------------------------------------------------------------

_EXAMPLES = "https://github.com/pytorch/examples/tree/main/fast_neural_style"
_ADAIN = "https://github.com/naoto0804/pytorch-AdaIN"
_VGG19 = VGG19_Weights.IMAGENET1K_V1  # only its URL is used: the file goes through our weights manager (offline rule)
_VGG19_FILE = _VGG19.url.rsplit("/", 1)[-1]

CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        weights.Checkpoint(
            name="fast-neural-style-models", task=TASK_ID, url="https://www.dropbox.com/s/lrvwfehqdcxoza8/saved_models.zip?dl=1",
            filename="fast_neural_style_saved_models.zip", sha256=None, bytes=None, license="BSD-3-Clause", source=_EXAMPLES,
            notes="the URL of pytorch/examples download_saved_models.py; a zip holding saved_models/{candy,mosaic,"
            "rain_princess,udnie}.pth (TransformerNet state dicts with legacy instance-norm running_mean/var keys), "
            "extracted into fast_neural_style/ beside the cache. Size and SHA-256 unpublished: the first download's "
            "hash is recorded and enforced. Mirror (unconfirmed): github.com/pytorch/examples/releases/download/"
            "v1.0.0/fast_neural_style_saved_models.zip",
        ),
        weights.Checkpoint(
            name="vgg19-imagenet", task=TASK_ID, url=_VGG19.url, filename=_VGG19_FILE, sha256=None, bytes=None,
            license="BSD-3-Clause (torchvision; ImageNet-trained)",
            source="https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg19.html",
            notes=f"torchvision VGG19_Weights.IMAGENET1K_V1 ({_VGG19.meta.get('_file_size', '?')} MB); only features.* "
            "is used. "
            "torchvision publishes the first 8 hex digits of the SHA-256 in the file name; they are checked on load",
        ),
        weights.Checkpoint(
            name="adain-vgg-normalised", task=TASK_ID, url=f"{_ADAIN}/releases/download/v0.0.0/vgg_normalised.pth",
            filename="adain_vgg_normalised.pth", sha256=None, bytes=None, license="MIT", source=_ADAIN,
            notes="release asset vgg_normalised.pth (saved as adain_vgg_normalised.pth): the Caffe VGG-19 to relu5_4 as a "
            "plain nn.Sequential state dict; only the layers to relu4_1 are used. SHA-256 and size UNCONFIRMED",
        ),
        weights.Checkpoint(
            name="adain-decoder", task=TASK_ID, url=f"{_ADAIN}/releases/download/v0.0.0/decoder.pth", filename="adain_decoder.pth", sha256=None,
            bytes=None, license="MIT", source=_ADAIN,
            notes="release asset decoder.pth (saved as adain_decoder.pth): plain nn.Sequential state dict. "
            "SHA-256 and size UNCONFIRMED",
        ),
    )
}
weights.register(*CHECKPOINTS.values())
FAST_STYLE_ARCHIVE = "fast-neural-style-models"
_FAST_STYLE_FOLDER = "fast_neural_style"
_MAX_MEMBER_BYTES = 64 << 20  # each official model is ~6.7 MB; a bigger member is not one of them (or a zip bomb)
_LEGACY_INSTANCE_NORM = re.compile(r"in\d+\.running_(mean|var)$")
_extract_lock = threading.Lock()


class ArchiveError(weights.WeightsError):
    """The fast-neural-style zip is damaged, incomplete or unsafe; nothing was extracted from it."""


def model_kind(model_name: str) -> str:
    if model_name in FAST_STYLES:
        return "fast"
    if model_name in ("adain", "gatys"):
        return model_name
    raise ValueError(f"unknown style model {model_name!r}; valid: {', '.join(MODEL_NAMES)}")


# --- Fast neural style: the zip archive and its four models -----------------------------------------------------------

def fast_style_file(name: str, progress: weights.ProgressCallback | None = None) -> Path:
    """Path of the official `name`.pth: already extracted ($CVPG_HOME or cache), else extracted from the zip."""
    if name not in FAST_STYLES:
        raise ValueError(f"{name!r} is not one of the official fast-style models ({', '.join(FAST_STYLES)})")
    found = _extracted(name)
    if found is not None:
        return found
    try:
        archive = weights.fetch(FAST_STYLE_ARCHIVE, progress)  # verified
    except weights.MissingWeightsError as error:
        folder = (weights.home_dir() or weights.cache_dir()) / _FAST_STYLE_FOLDER
        raise weights.MissingWeightsError(f"{error} (Or put the extracted {name}.pth in {folder}.)") from None
    with _extract_lock:  # two users loading two styles at once extract the archive once
        found = _extracted(name)
        if found is None:
            found = extract_fast_style_models(archive, weights.cache_dir() / _FAST_STYLE_FOLDER)[name]
    return found


def _extracted(name: str) -> Path | None:
    home = weights.home_dir()
    for folder in ([home] if home else []) + [weights.cache_dir()]:
        candidate = folder / _FAST_STYLE_FOLDER / f"{name}.pth"
        if candidate.is_file():
            return candidate
    return None


def extract_fast_style_models(archive: Path, folder: Path) -> dict[str, Path]:
    """Write exactly the four official models from the reference's zip into `folder` as `<name>.pth`.

    Every member name is checked before anything is written: an absolute path or a `..` component refuses the whole
    archive (a zip-slip attempt means the file is not the official one). Member names never become output paths; each
    file is written to a temporary name and renamed, so a reader never sees half a checkpoint.
    """
    archive = Path(archive)
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = _fast_style_members(bundle, archive.name)
            folder.mkdir(parents=True, exist_ok=True)
            return {name: _extract_member(bundle, info, folder / f"{name}.pth") for name, info in members.items()}
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"{archive} is not a readable zip archive ({error}); delete it and download it "
                           "again.") from None


def _fast_style_members(bundle: zipfile.ZipFile, label: str) -> dict[str, zipfile.ZipInfo]:
    found: dict[str, zipfile.ZipInfo] = {}
    for info in bundle.infolist():
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise ArchiveError(f"{label} has a member that points outside its folder ({info.filename!r}); "
                               "refusing the whole archive.")
        stem, suffix = os.path.splitext(PurePosixPath(name).name)
        if info.is_dir() or "__MACOSX" in parts or suffix != ".pth" or stem not in FAST_STYLES:
            continue  # folders, macOS resource forks, anything else: not extracted
        if stem in found:
            raise ArchiveError(f"{label} holds {stem}.pth twice ({found[stem].filename}, {info.filename}).")
        if info.file_size > _MAX_MEMBER_BYTES:
            raise ArchiveError(f"{label}: {info.filename} claims {info.file_size} bytes; the official models "
                               "are ~7 MB.")
        found[stem] = info
    missing = [f"{name}.pth" for name in FAST_STYLES if name not in found]
    if missing:
        raise ArchiveError(f"{label} lacks {', '.join(missing)}; it is not the pytorch/examples saved_models.zip.")
    return {name: found[name] for name in FAST_STYLES}


def _extract_member(bundle: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> Path:
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out, bundle.open(info) as stream:  # zipfile checks the CRC at the end
            written = 0
            while chunk := stream.read(1 << 20):
                written += len(chunk)
                if written > _MAX_MEMBER_BYTES:  # the header may lie about the size
                    raise ArchiveError(f"{info.filename} inflates past {_MAX_MEMBER_BYTES} bytes; refusing it.")
                out.write(chunk)
        os.replace(temp_name, target)
    finally:
        Path(temp_name).unlink(missing_ok=True)
    return target


def _convert_state_dict(state: dict) -> dict:
    """Drop the legacy instance-norm statistics of the official fast-style checkpoints.

    They were saved by PyTorch < 0.4, whose InstanceNorm2d kept `running_mean`/`running_var` buffers (`inN.*`, also
    inside the residual blocks); since 0.4 instance norm tracks none, so a strict load rejects them. The reference's
    `stylize()` deletes exactly the keys matching `in\\d+\\.running_(mean|var)$`; so do we. Newer checkpoints (a user's
    own, trained with the reference) have no such keys and pass unchanged.
    """
    return {key: value for key, value in state.items() if not _LEGACY_INSTANCE_NORM.search(key)}


def transformer_from_state(state: dict, label: str = "this checkpoint") -> TransformerNet:
    net = TransformerNet()
    _strict_load(net, _convert_state_dict(state), label, "TransformerNet of pytorch/examples fast_neural_style")
    return net


def _strict_load(net: nn.Module, state: dict, label: str, expected: str) -> None:
    if not isinstance(state, dict):
        raise weights.WeightsError(f"{label} holds a {type(state).__name__}, not a state dict of the {expected}.")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise weights.WeightsError(
            f"{label} does not fit the {expected}: {str(error).splitlines()[0]} ..."
        ) from None


# --- AdaIN ------------------------------------------------------------------------------------------------------------

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
    encoder = adain_encoder(full=True)  # the official file has every layer to relu5_4: load it whole, strictly
    _strict_load(encoder, encoder_state, "vgg_normalised.pth", "AdaIN VGG encoder (naoto0804/pytorch-AdaIN net.vgg)")
    decoder = adain_decoder()
    _strict_load(decoder, decoder_state, decoder_label, "AdaIN decoder (naoto0804/pytorch-AdaIN net.decoder)")
    return AdaIN(encoder[: ADAIN_RELU4_1 + 1], decoder)  # as the reference's test.py: keep the encoder to relu4_1


# --- Gatys: VGG-19 features -------------------------------------------------------------------------------------------

VGG19_LAYERS = vgg19_layers()


def gatys_vgg(state: dict | None = None) -> VGGFeatures:
    """torchvision's `vgg19().features` (random weights, or `state`: the official checkpoint), non-in-place ReLUs.

    Built with torchvision's own `make_layers` (what `vgg19(weights=None)` uses for `.features`), so the 400 MB
    classifier is never allocated. In-place ReLUs would overwrite a conv layer's output after we capture it.
    """
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["E"], batch_norm=False)
    for module in features:
        if isinstance(module, nn.ReLU):
            module.inplace = False
        elif isinstance(module, nn.Conv2d) and state is None:  # torchvision's VGG init, for random-weight tests
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    if state is not None:
        features_state = {key.removeprefix("features."): value for key, value in state.items()
                          if key.startswith("features.")}
        _strict_load(features, features_state, _VGG19_FILE, "torchvision VGG-19 features")
    return VGGFeatures(features, VGG19_LAYERS, imagenet_normalize=True)


def _check_torchvision_hash(path: Path) -> None:
    """torchvision names its files `<name>-<first 8+ hex digits of the SHA-256>.pth`; hold the file to that."""
    prefix = re.search(r"-([0-9a-f]{8,})\.", path.name)
    actual = weights.sha256_of(path)
    if prefix and not actual.startswith(prefix.group(1)):
        raise weights.ChecksumError(f"{path} does not match torchvision's published hash prefix {prefix.group(1)} "
                                    f"(SHA-256 {actual}). Delete it and download it again from {_VGG19.url}")


# --- Loading, shared per device ---------------------------------------------------------------------------------------

def load(model_name: str, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> nn.Module:
    """TransformerNet (fast styles), AdaIN, or VGGFeatures (gatys) with official weights, cached per device.

    `checkpoint_file`: a user's TransformerNet trained with pytorch/examples (any fast-style model name), or a user's
    AdaIN decoder trained with naoto0804/pytorch-AdaIN (model "adain").
    """
    kind = model_kind(model_name)
    device = device or runtime.device()
    if checkpoint_file is not None:
        if kind == "gatys":
            raise ValueError("gatys optimises the image itself against VGG-19; it takes no checkpoint.")
        key = ("style", kind, "user", weights.sha256_of(Path(checkpoint_file)), str(device))
        return runtime.MODELS.get(key, lambda: _ready(_build_user(kind, checkpoint_file, progress), device, kind))
    return runtime.MODELS.get(("style", model_name, str(device)),
                              lambda: _ready(_build_official(model_name, progress), device, kind))


def _build_official(model_name: str, progress) -> nn.Module:
    kind = model_kind(model_name)
    if kind == "fast":
        path = fast_style_file(model_name, progress)
        return transformer_from_state(weights.load_state_dict(path), path.name)
    if kind == "adain":
        return adain_from_states(weights.load_state_dict(weights.fetch("adain-vgg-normalised", progress)),
                                 weights.load_state_dict(weights.fetch("adain-decoder", progress)))
    path = weights.fetch("vgg19-imagenet", progress)
    _check_torchvision_hash(path)
    return gatys_vgg(weights.load_state_dict(path))


def _build_user(kind: str, checkpoint_file: str, progress) -> nn.Module:
    state = weights.load_state_dict(checkpoint_file)
    label = Path(checkpoint_file).name
    if kind == "fast":
        return transformer_from_state(state, label)
    encoder_state = weights.load_state_dict(weights.fetch("adain-vgg-normalised", progress))
    return adain_from_states(encoder_state, state, label)


def _ready(net: nn.Module, device: torch.device, kind: str) -> nn.Module:
    net.eval().requires_grad_(False).to(device)
    # fp16 only for TransformerNet: the Gatys optimisation stays in float32, and AdaIN's Caffe-scaled VGG activations
    # and their variances are not known to stay inside fp16's range.
    if kind == "fast" and runtime.half_precision(device):
        net.half()
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    return net


# --- One-pass stylisation (fast style, AdaIN) -------------------------------------------------------------------------

def _to_tensor(rgb: np.ndarray, device: torch.device, dtype: torch.dtype, scale: float) -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H x W in [0, scale]."""
    if not rgb.flags.writeable:  # e.g. a cached built-in style: torch wants memory it may write
        rgb = rgb.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
    return tensor.to(device=device, dtype=dtype).mul_(scale / 255.0).contiguous()


def _to_uint8(tensor: torch.Tensor, scale: float) -> np.ndarray:
    """1 x 3 x H x W in [0, scale] -> H x W x 3 uint8 (clamped; NaN becomes 0)."""
    image = torch.nan_to_num(tensor[0].float(), 0.0).mul(255.0 / scale).clamp_(0, 255).round_()
    return image.byte().permute(1, 2, 0).cpu().numpy()


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad bottom/right so H and W divide by `multiple`: the network's output then crops back exactly."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="reflect")


def _param(net: nn.Module) -> torch.Tensor:
    return next(net.parameters())


def stylize_fast(net: TransformerNet, rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> stylised RGB uint8 of the same size (the network works on 0-255, as it was trained)."""
    reference = _param(net)
    h, w = rgb.shape[:2]
    with torch.inference_mode():
        x = _pad_to_multiple(_to_tensor(rgb, reference.device, reference.dtype, 255.0), 4)
        y = net(x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x)
        return _to_uint8(y[..., :h, :w], 255.0)


def stylize_adain(model: AdaIN, content: np.ndarray, style: np.ndarray, alpha: float = 1.0,
                  preserve_color: bool = False) -> np.ndarray:
    """Content in the style of `style` (both RGB uint8, any sizes); `alpha` 0 reproduces the content through the
    decoder, 1 is full style. `preserve_color` first recolours the style image with the content's colours."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1; got {alpha}")
    if preserve_color:
        style = match_colors(style, content)
    reference = _param(model)
    h, w = content.shape[:2]
    with torch.inference_mode():
        x = _pad_to_multiple(_to_tensor(content, reference.device, reference.dtype, 1.0), 8)  # 3 pools, 3 x2 ups
        y = model.with_style_features(x, _style_features(model, style), alpha)
        return _to_uint8(y[..., :h, :w], 1.0)


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
    reference = _param(model)
    features = model.encode(_to_tensor(style, reference.device, reference.dtype, 1.0))
    with _style_cache_lock:
        known[key] = features
        while len(known) > _STYLE_CACHE_SIZE:
            known.popitem(last=False)
    return features


def predict(net: nn.Module, rgb: np.ndarray, style: np.ndarray | None = None, alpha: float = 1.0,
            preserve_color: bool = False) -> np.ndarray:
    """One-pass stylisation for either network (what a live webcam view calls per frame)."""
    if isinstance(net, TransformerNet):
        out = stylize_fast(net, rgb)
        return keep_luminance_only(out, rgb) if preserve_color else out
    if isinstance(net, AdaIN):
        if style is None:
            raise ValueError("AdaIN needs a style image.")
        return stylize_adain(net, rgb, style, alpha, preserve_color)
    raise ValueError("predict() takes a fast-style TransformerNet or AdaIN; Gatys runs through gatys_steps().")


# --- Colour preservation ----------------------------------------------------------------------------------------------

def match_colors(source: np.ndarray, target: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Recolour `source` (the style image) so its RGB mean and channel correlations match `target` (the content).

    The reference's `coral()`: standardise each channel, map the source's channel correlation onto the target's with
    symmetric matrix square roots, then take the target's channel means and standard deviations. The correlations are
    averaged over pixels (the reference sums them plus an identity, which scales the result by sqrt(N_target/N_source)
    when the two images differ in size); `eps` regularises a grey image's singular correlation.
    """
    def standardised(rgb):
        flat = rgb.reshape(-1, 3).T.astype(np.float64) / 255.0
        mean, std = flat.mean(axis=1, keepdims=True), flat.std(axis=1, ddof=1, keepdims=True) + eps
        normal = (flat - mean) / std
        return normal, mean, std, normal @ normal.T / max(normal.shape[1] - 1, 1) + eps * np.eye(3)

    source_normal, _, _, source_corr = standardised(source)
    _, target_mean, target_std, target_corr = standardised(target)
    mapping = _sqrtm(target_corr) @ np.linalg.inv(_sqrtm(source_corr))
    recoloured = (mapping @ source_normal) * target_std + target_mean
    return np.clip(np.rint(recoloured.T.reshape(source.shape) * 255.0), 0, 255).astype(np.uint8)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive (semi-)definite matrix, through its eigendecomposition."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def keep_luminance_only(stylised: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The stylised luminance with the content's chroma (YCbCr): colour preservation for a fixed-style network."""
    luma = np.asarray(Image.fromarray(stylised).convert("YCbCr"))[..., :1]
    chroma = np.asarray(Image.fromarray(content).resize(stylised.shape[1::-1]).convert("YCbCr"))[..., 1:]
    return np.asarray(Image.fromarray(np.concatenate([luma, chroma], axis=2), "YCbCr").convert("RGB"))


# --- Gram matrices: the style representation, and a picture of it -----------------------------------------------------

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
    reference = _param(extractor)
    with torch.inference_mode():
        features = extractor(_to_tensor(rgb, reference.device, reference.dtype, 1.0), [layer])[layer]
        gram = gram_matrix(features.float())[0].abs().cpu().numpy()
    scaled = np.sqrt(gram / max(float(gram.max()), 1e-12))
    picture = cv2.applyColorMap(np.rint(scaled * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)[..., ::-1]
    factor = max(1, -(-min_side // gram.shape[0]))
    return np.ascontiguousarray(picture.repeat(factor, axis=0).repeat(factor, axis=1))


def style_gram_image(model_name: str, style: np.ndarray, layer: str = "relu2_1") -> np.ndarray:
    """`gram_image` through the VGG of `model_name` ("adain": its encoder; "gatys": torchvision's VGG-19)."""
    if model_kind(model_name) == "fast":
        raise ValueError("fast-style networks have no VGG at run time: their style was learnt in training.")
    return gram_image(feature_extractor(load(model_name)), style, layer)


def feature_extractor(net: nn.Module) -> VGGFeatures:
    """The VGG a model sees style through: AdaIN's encoder, or the Gatys VGG itself."""
    if isinstance(net, AdaIN):
        return net.encoder
    if isinstance(net, VGGFeatures):
        return net
    raise ValueError("fast-style networks have no VGG: their style was learnt in training.")


# --- Gatys optimisation, as a generator -------------------------------------------------------------------------------

DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
OPTIMIZERS = ("lbfgs", "adam")
_DEFAULT_LEARNING_RATE = {"lbfgs": 1.0, "adam": 0.02}  # Adam steps in 0-1 pixel units


@dataclass
class GatysProgress:
    """One report of `gatys_steps`. Losses are weighted (content + style = total) and belong to `image`."""

    step: int  # optimiser steps taken before `image` (0: the starting image)
    steps: int  # steps planned
    content_loss: float
    style_loss: float
    total_loss: float
    image: np.ndarray  # RGB uint8 at the working size
    best_image: np.ndarray  # the lowest total loss so far (what Stop keeps)
    best_step: int
    best_loss: float
    history: list[tuple[int, float, float, float]]  # (step, content, style, total) for every step so far
    seconds: float  # since the generator started (targets and first step included)
    done: bool = False  # the last report: steps reached, stopped, or diverged
    stopped: bool = False  # `should_stop` said so before `steps`
    diverged: bool = False  # the loss became NaN/inf; `best_image` is the result

    def to_record(self) -> dict:
        return {"steps_done": self.step, "steps": self.steps, "best_step": self.best_step,
                "loss": {"content": self.content_loss, "style": self.style_loss, "total": self.total_loss},
                "best_loss": self.best_loss, "stopped": self.stopped, "diverged": self.diverged,
                "seconds": round(self.seconds, 3),
                "history": [{"step": s, "content": c, "style": st, "total": t} for s, c, st, t in self.history]}


def parse_layers(layers: str | Sequence[str], valid: Iterable[str] = VGG19_LAYERS) -> tuple[str, ...]:
    """"relu1_1, relu2_1" or a sequence -> a tuple of known VGG layer names."""
    names = tuple(re.split(r"[,\s]+", layers.strip())) if isinstance(layers, str) else tuple(layers)
    names = tuple(name for name in names if name)
    valid = list(valid)
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise ValueError(f"unknown VGG-19 layer {', '.join(unknown) or '(none given)'}; valid: {', '.join(valid)}")
    return names


@contextlib.contextmanager
def _autograd(enabled: bool):
    """Normal tensors (and gradients for the pixels when `enabled`) even if the caller runs under no_grad or
    inference_mode. Entered around each piece of work, never across the generator's yields, so the caller's own
    mode is untouched between reports."""
    with torch.inference_mode(False), torch.set_grad_enabled(enabled):
        yield


def gatys_steps(content: np.ndarray, style: np.ndarray, vgg: VGGFeatures | None = None, *, steps: int = 100,
                content_weight: float = 1.0, style_weight: float = 1e5,
                content_layers: str | Sequence[str] = DEFAULT_CONTENT_LAYERS,
                style_layers: str | Sequence[str] = DEFAULT_STYLE_LAYERS, optimizer: str = "lbfgs",
                learning_rate: float | None = None, init: str = "content", max_side: int = 256,
                preserve_color: bool = False, every: int = 5, should_stop: Callable[[], bool] | None = None,
                seed: int = 0, progress: weights.ProgressCallback | None = None,
                ) -> Generator[GatysProgress, None, GatysProgress]:
    """Optimise an image's pixels so its VGG features match `content` and its Gram matrices match `style`.

    Loss = content_weight * sum_l MSE(F_l(x), F_l(content)) + style_weight * sum_l MSE(G_l(x), G_l(style)), with
    `gram_matrix`'s normalisation. Yields a `GatysProgress` at step 0, every `every` steps and at the end (`done`);
    the generator's return value is that last report too. Stop early with `should_stop()` (checked before each step;
    the last report is then `stopped`, with `best_image`), or simply by closing the generator: every report carries
    the best image so far. `vgg` None loads the official VGG-19 (cached). Images are RGB uint8; `content` is scaled
    to fit `max_side` (0: as it is) and `style` likewise.
    """
    content_layers, style_layers = parse_layers(content_layers), parse_layers(style_layers)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise'; got {init!r}")
    if steps < 0:
        raise ValueError(f"steps must be 0 or more; got {steps}")
    started = time.perf_counter()
    vgg = vgg if vgg is not None else load("gatys", progress=progress)
    device = _param(vgg).device
    if max_side:
        content, style = fit_within(content, max_side)[0], fit_within(style, max_side)[0]
    _check_side(content, "gatys")
    _check_side(style, "gatys", "style image")
    if preserve_color:
        style = match_colors(style, content)

    with _autograd(False):
        content_t = _to_tensor(content, device, torch.float32, 1.0)
        content_targets = {name: value.detach() for name, value in vgg(content_t, content_layers).items()}
        style_targets = {name: gram_matrix(value).detach()
                         for name, value in vgg(_to_tensor(style, device, torch.float32, 1.0), style_layers).items()}
    wanted = list(dict.fromkeys(content_layers + style_layers))

    def losses(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = vgg(x, wanted)
        content_loss = sum(F.mse_loss(features[name], content_targets[name]) for name in content_layers)
        style_loss = sum(F.mse_loss(gram_matrix(features[name]), style_targets[name]) for name in style_layers)
        return content_weight * content_loss, style_weight * style_loss

    with _autograd(True):
        if init == "content":
            x = content_t.clone()
        else:
            generator = torch.Generator().manual_seed(seed)
            x = torch.rand(content_t.shape, generator=generator).to(device)
        x.requires_grad_(True)
        lr = learning_rate or _DEFAULT_LEARNING_RATE[optimizer]
        # L-BFGS with max_iter=1: one function evaluation per step() (so reports are per step), its curvature memory
        # carries over between calls.
        opt = (torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=50) if optimizer == "lbfgs"
               else torch.optim.Adam([x], lr=lr))
    evaluated: dict = {}

    def closure() -> torch.Tensor:
        opt.zero_grad()
        content_loss, style_loss = losses(x)
        total = content_loss + style_loss
        total.backward()
        content_loss, style_loss = content_loss.detach(), style_loss.detach()
        evaluated.update(content=content_loss.item(), style=style_loss.item(), image=x.detach().clone())
        return total

    history: list[tuple[int, float, float, float]] = []
    best: dict = {"loss": float("inf"), "image": x.detach().clone(), "step": 0}
    for step in range(steps + 1):
        stopping = step == steps or (should_stop is not None and should_stop())
        if stopping:  # the final (or stopped-at) image: its loss, without a step
            with _autograd(False):
                content_loss, style_loss = losses(x)
            evaluated.update(content=float(content_loss), style=float(style_loss), image=x.detach().clone())
        else:
            with _autograd(True):
                if optimizer == "lbfgs":
                    opt.step(closure)  # evaluates (and reports on) x before moving it
                else:
                    closure()
                    opt.step()
        total = evaluated["content"] + evaluated["style"]
        history.append((step, evaluated["content"], evaluated["style"], total))
        diverged = not np.isfinite(total)
        if not diverged and total < best["loss"]:
            best.update(loss=total, image=evaluated["image"], step=step)
        done = stopping or diverged
        if progress is not None:
            progress(step / max(steps, 1), f"Step {step} of {steps}")
        if done or step % max(every, 1) == 0:
            report = GatysProgress(
                step, steps, evaluated["content"], evaluated["style"], total, _to_uint8(evaluated["image"], 1.0),
                _to_uint8(best["image"], 1.0), best["step"], best["loss"], list(history),
                time.perf_counter() - started, done=done, stopped=stopping and step < steps, diverged=diverged)
            yield report
            if done:
                return report
        with _autograd(False):
            x.clamp_(0.0, 1.0)  # keep pixels displayable; the optimiser does not know the box
    raise AssertionError("unreachable: the loop returns at step == steps")


def _check_side(rgb: np.ndarray, kind: str, what: str = "image") -> None:
    if min(rgb.shape[:2]) < MIN_SIDE[kind]:
        raise ValueError(f"The {what} is {rgb.shape[1]}x{rgb.shape[0]} at the working size; {kind} needs at least "
                         f"{MIN_SIDE[kind]} px a side. Use a bigger image or working size.")


# --- Built-in style images: painted here, so the tab ships no artwork -------------------------------------------------

BUILTIN_STYLES = ("stained-glass", "waves", "swirls")
DEFAULT_STYLE = "stained-glass"
_STYLE_FOLDER = Path(tempfile.gettempdir()) / "cvpg-examples"  # beside assets' examples, where Gradio may serve


@lru_cache(maxsize=None)
def builtin_style(name: str, size: int = 512) -> np.ndarray:
    """A procedural style image (RGB uint8, size x size), the same on every machine."""
    painters = {"stained-glass": _paint_stained_glass, "waves": _paint_waves, "swirls": _paint_swirls}
    if name not in painters:
        raise ValueError(f"unknown built-in style {name!r}; valid: {', '.join(BUILTIN_STYLES)}")
    image = painters[name](size)
    image.setflags(write=False)  # shared by every caller through the cache
    return image


def builtin_style_path(name: str, size: int = 512) -> str:
    """The built-in style written once as a PNG (for a UI's examples or the command line)."""
    target = _STYLE_FOLDER / f"style-{name}-{size}.png"
    if not target.is_file():
        _STYLE_FOLDER.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=_STYLE_FOLDER, suffix=".png")
        os.close(handle)
        Image.fromarray(builtin_style(name, size)).save(temp)
        os.replace(temp, target)
    return str(target)


def _paint_stained_glass(size: int) -> np.ndarray:
    """Voronoi cells of jewel colours, brighter at their centres, with dark lead lines where two cells meet."""
    rng = np.random.default_rng(7)
    seeds = rng.uniform(0, size, (90, 2)).astype(np.float32)
    palette = np.array([[178, 34, 52], [25, 70, 160], [20, 130, 80], [230, 170, 30], [110, 40, 140],
                        [20, 150, 170], [220, 90, 30], [240, 220, 160]], np.float32)
    colors = palette[rng.integers(0, len(palette), len(seeds))] * rng.uniform(0.75, 1.1, (len(seeds), 1))
    image = np.empty((size, size, 3), np.float32)
    xs = np.arange(size, dtype=np.float32)
    cell_radius = size / np.sqrt(len(seeds))
    for top in range(0, size, 64):  # 64 rows at a time keeps the distance table small
        ys = np.arange(top, min(top + 64, size), dtype=np.float32)
        d2 = (ys[:, None, None] - seeds[:, 1]) ** 2 + (xs[None, :, None] - seeds[:, 0]) ** 2
        nearest = np.argmin(d2, axis=2)
        two = np.sqrt(np.partition(d2, 1, axis=2)[..., :2])
        shade = 1.0 - 0.35 * np.clip(two[..., 0] / cell_radius, 0, 1)
        band = colors[nearest] * shade[..., None]
        band[two[..., 1] - two[..., 0] < size / 128] = (25, 22, 20)  # the lead between panes
        image[top:top + len(ys)] = band
    image += rng.normal(0, 6, image.shape)  # glass grain
    return np.clip(image, 0, 255).astype(np.uint8)


def _paint_waves(size: int) -> np.ndarray:
    """Bands of a rolling sea, navy to foam, bent by a few crossing sine waves (a nod to woodblock prints)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    phase = (9 * y + 1.2 * np.sin(2 * np.pi * (1.3 * x + 0.4 * y)) + 0.35 * np.sin(2 * np.pi * (5 * x - 2 * y))
             + 0.15 * np.sin(2 * np.pi * (13 * x + 7 * y)))
    band = phase - np.floor(phase)
    stops = [0.0, 0.5, 0.8, 0.92, 1.0]
    colors = np.array([[12, 30, 70], [25, 75, 130], [110, 160, 200], [240, 235, 215], [240, 235, 215]], np.float32)
    image = np.stack([np.interp(band, stops, colors[:, channel]) for channel in range(3)], axis=2)
    rng = np.random.default_rng(11)
    image += rng.normal(0, 5, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _paint_swirls(size: int) -> np.ndarray:
    """Brush-like streaks along a field of vortices (line integral convolution of noise), blue night, yellow stars."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    rng = np.random.default_rng(5)
    centres = [(0.3, 0.3, 1.0), (0.72, 0.55, -1.0), (0.5, 0.85, 1.0), (0.12, 0.75, -1.0), (0.85, 0.15, 1.0)]

    def flow(px, py):
        vx, vy = np.full_like(px, 0.4), 0.15 * np.sin(6 * px)
        for cx, cy, spin in centres:
            dx, dy = px - cx, py - cy
            r2 = dx * dx + dy * dy + 1e-3
            strength = spin * np.exp(-r2 / 0.03) / np.sqrt(r2)
            vx, vy = vx - dy * strength, vy + dx * strength
        norm = np.sqrt(vx * vx + vy * vy) + 1e-6
        return vx / norm, vy / norm

    noise = gaussian_filter(rng.random((size, size)).astype(np.float32), 0.7)
    y0, x0 = np.mgrid[0:size, 0:size].astype(np.float32) / size
    streaks = noise.copy()
    for direction in (1.0, -1.0):
        px, py = x0.copy(), y0.copy()
        for _ in range(14):
            vx, vy = flow(px, py)
            px, py = px + direction * vx / size * 1.5, py + direction * vy / size * 1.5
            streaks += map_coordinates(noise, [py * size, px * size], order=1, mode="wrap")
    streaks = (streaks - streaks.mean()) / (streaks.std() + 1e-6)
    glow = sum(np.exp(-((x0 - cx) ** 2 + (y0 - cy) ** 2) / 0.006) for cx, cy, _ in centres)
    top, bottom = np.array([20, 40, 110], np.float32), np.array([45, 95, 170], np.float32)
    night = top * (1 - y0[..., None]) + bottom * y0[..., None]
    image = night + np.clip(glow, 0, 1)[..., None] * (np.array([240, 200, 60], np.float32) - night)
    image *= 1.0 + 0.3 * streaks[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def resolve_style(style) -> tuple[np.ndarray, str]:
    """A style image from an option value: "" (the default built-in), a built-in name, a file path, an array or a
    LoadedImage. Returns RGB uint8 and a label for the record."""
    if isinstance(style, LoadedImage):
        return style.rgb, "image"
    if isinstance(style, np.ndarray):
        return images.load(style).rgb, "image"
    name = str(style or "").strip() or DEFAULT_STYLE
    if name in BUILTIN_STYLES:
        return np.array(builtin_style(name)), name
    return images.load(name).rgb, Path(name).name


# --- The tab's pipeline -----------------------------------------------------------------------------------------------

def run(loaded: LoadedImage, model: str = DEFAULT_MODEL, checkpoint: str | None = None,
        progress: weights.ProgressCallback | None = None, style="", alpha: float = 1.0,
        preserve_color: bool = False, steps: int = 100, content_weight: float = 1.0, style_weight: float = 1e5,
        content_layers: str = ",".join(DEFAULT_CONTENT_LAYERS), style_layers: str = ",".join(DEFAULT_STYLE_LAYERS),
        optimizer: str = "lbfgs", init: str = "content", max_side: int = 0, gram_layer: str = "relu2_1",
        ) -> TaskOutput:
    """Stylise one image: a fast-style model, AdaIN with `style`, or `steps` of Gatys optimisation with `style`.

    Images: "stylized" (working size, the input's transparency re-attached), "content" (the input at working size,
    for a before/after slider) and, for adain/gatys, "style" (as used: scaled, recoloured when preserving colour)
    and "gram" (the style's Gram matrix at `gram_layer`).
    """
    kind = model_kind(model)
    device = runtime.device()
    side = max_side or DEFAULT_WORKING_SIDE[kind]
    content, scaled_from = fit_within(loaded.rgb, side)
    _check_side(content, kind)
    notes = list(loaded.notes)
    if scaled_from is not None:
        notes.append(f"stylised at {content.shape[1]}x{content.shape[0]} (working size {side} px)")
    style_rgb, style_label = resolve_style(style) if kind != "fast" else (None, None)  # a bad file fails first
    with runtime.stopwatch(device) as load_time:
        net = load(model, device, checkpoint, progress)
    record = {"task": TASK_ID, "model": model, "checkpoint": checkpoint or _checkpoint_label(model),
              "device": runtime.describe(device), "half_precision": _param(net).dtype == torch.float16,
              "input_size": list(loaded.original_size), "working_size": [content.shape[1], content.shape[0]]}
    result_images = {"content": content}
    if kind == "fast":
        with runtime.stopwatch(device) as model_time:
            stylised = predict(net, content, preserve_color=preserve_color)
        record["preserve_color"] = preserve_color
        detail = ""
    else:
        style_rgb = fit_within(style_rgb, side)[0]
        if preserve_color:
            style_rgb = match_colors(style_rgb, content)
        _check_side(style_rgb, kind, "style image")
        record.update(style=style_label, style_size=[style_rgb.shape[1], style_rgb.shape[0]],
                      preserve_color=preserve_color, gram_layer=gram_layer)
        with runtime.stopwatch(device) as model_time:
            if kind == "adain":
                stylised = stylize_adain(net, content, style_rgb, alpha)
                record["alpha"] = alpha
                detail = f", alpha {alpha:g}"
            else:
                final = _run_gatys(net, content, style_rgb, steps, content_weight, style_weight, content_layers,
                                   style_layers, optimizer, init, progress)
                stylised = final.best_image if final.diverged else final.image
                record["gatys"] = {"content_weight": content_weight, "style_weight": style_weight,
                                   "content_layers": list(parse_layers(content_layers)),
                                   "style_layers": list(parse_layers(style_layers)), "optimizer": optimizer,
                                   "init": init, **final.to_record()}
                first, last = final.history[0][3], final.history[-1][3]
                detail = f", {final.step} steps, loss {first:.3g} -> {last:.3g}"
        result_images["style"] = style_rgb
        result_images["gram"] = gram_image(feature_extractor(net), style_rgb, gram_layer)
    result_images["stylized"] = with_alpha(stylised, loaded.alpha)  # resized to the working size
    record.update(notes=notes, ms={"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1)})
    summary = (f"{model} on {record['device']}: {content.shape[1]}x{content.shape[0]}, "
               f"{model_time['ms']:.0f} ms{detail}")
    return TaskOutput(result_images, record, summary)


def _run_gatys(vgg, content, style, steps, content_weight, style_weight, content_layers, style_layers, optimizer,
               init, progress) -> GatysProgress:
    final = None
    for final in gatys_steps(content, style, vgg, steps=steps, content_weight=content_weight,
                             style_weight=style_weight, content_layers=content_layers, style_layers=style_layers,
                             optimizer=optimizer, init=init, max_side=0, every=max(steps, 1), progress=progress):
        pass
    return final


def _checkpoint_label(model: str) -> str:
    kind = model_kind(model)
    if kind == "fast":
        return f"{FAST_STYLE_ARCHIVE}/{model}.pth"
    return "adain-vgg-normalised + adain-decoder" if kind == "adain" else "vgg19-imagenet"


_GRAM_LAYERS = tuple(f"{kind}{block}_1" for block in range(1, 5) for kind in ("conv", "relu"))

TASK = Task(
    id=TASK_ID,
    title="Style transfer",
    models=MODEL_NAMES,
    default_model=DEFAULT_MODEL,
    options=(
        Option("style", "", "adain/gatys: style image file, or a built-in pattern "
               f"({', '.join(BUILTIN_STYLES)}); empty: {DEFAULT_STYLE}"),
        Option("alpha", 1.0, "adain: style strength (0 = the content through the decoder, 1 = full style)",
               minimum=0.0, maximum=1.0),
        Option("preserve_color", False, "keep the content's colours (adain/gatys: recolour the style image first; "
               "fast styles: keep the content's chroma)"),
        Option("steps", 100, "gatys: optimiser steps", minimum=1, maximum=2000),
        Option("content_weight", 1.0, "gatys: weight of the content (feature) loss", minimum=0.0),
        Option("style_weight", 1e5, "gatys: weight of the style (Gram matrix) loss", minimum=0.0),
        Option("content_layers", ",".join(DEFAULT_CONTENT_LAYERS), "gatys: VGG-19 layers for the content loss"),
        Option("style_layers", ",".join(DEFAULT_STYLE_LAYERS), "gatys: VGG-19 layers for the style loss"),
        Option("optimizer", "lbfgs", "gatys: optimiser of the pixels", choices=OPTIMIZERS),
        Option("init", "content", "gatys: start from the content image or from noise", choices=("content", "noise")),
        Option("max_side", 0, "working size, longest side in px (0: fast styles 768, adain 512, gatys 256)",
               minimum=0, maximum=2048),
        Option("gram_layer", "relu2_1", "adain/gatys: layer of the Gram matrix picture of the style",
               choices=_GRAM_LAYERS),
    ),
    max_side=2048,
    run=run,
    preload=lambda model: load(model),
)
