"""Fast neural style (Johnson et al. 2016): a `TransformerNet` trained once per style, one forward pass per image.

The four official pytorch/examples models (candy, mosaic, rain_princess, udnie) come in one zip archive, extracted
safely beside the cache; a user's own TransformerNet trained with the reference loads the same way.
"""
from __future__ import annotations

import os
import re
import tempfile
import threading
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from . import runtime, weights
from .fast_style_arch import TransformerNet
from .images import check_rgb
from .style_colors import keep_luminance_only
from .style_tensors import first_parameter, pad_to_multiple, to_tensor, to_uint8

FAST_STYLES = ("candy", "mosaic", "rain_princess", "udnie")
WORKING_SIDE = 768  # the default longest side: one cheap pass
MIN_SIDE = 8

ARCHIVE = weights.Checkpoint(
    name="fast-neural-style-models", task="style",
    url="https://www.dropbox.com/s/lrvwfehqdcxoza8/saved_models.zip?dl=1", filename="fast_neural_style_saved_models.zip", sha256=None, bytes=None, license="BSD-3-Clause",
    source="https://github.com/pytorch/examples/tree/main/fast_neural_style", hash_origin="first-download",
    notes="the URL of pytorch/examples download_saved_models.py; a zip holding saved_models/{candy,mosaic,"
    "rain_princess,udnie}.pth (TransformerNet state dicts with legacy instance-norm running_mean/var keys), "
    "extracted into fast_neural_style/ beside the cache. Size and SHA-256 unpublished: the first download's "
    "hash is recorded and enforced. Mirror (unconfirmed): github.com/pytorch/examples/releases/download/"
    "v1.0.0/fast_neural_style_saved_models.zip",
)
weights.register(ARCHIVE)
_FOLDER = "fast_neural_style"
_MAX_MEMBER_BYTES = 64 << 20  # each official model is ~6.7 MB; a bigger member is not one of them (or a zip bomb)
_LEGACY_INSTANCE_NORM = re.compile(r"in\d+\.running_(mean|var)$")
_extract_lock = threading.Lock()


class ArchiveError(weights.WeightsError):
    """The fast-neural-style zip is damaged, incomplete or unsafe; nothing was extracted from it."""


# --- The zip archive and its four models ------------------------------------------------------------------------------

def fast_style_file(name: str, progress: weights.ProgressCallback | None = None) -> Path:
    """Path of the official `name`.pth: already extracted ($CVPG_HOME or cache), else extracted from the zip."""
    if name not in FAST_STYLES:
        raise ValueError(f"{name!r} is not one of the official fast-style models ({', '.join(FAST_STYLES)})")
    found = _extracted(name)
    if found is not None:
        return found
    try:
        archive = weights.fetch(ARCHIVE, progress)  # verified
    except weights.MissingWeightsError as error:
        folder = (weights.home_dir() or weights.cache_dir()) / _FOLDER
        raise weights.MissingWeightsError(f"{error} (Or put the extracted {name}.pth in {folder}.)") from None
    with _extract_lock:  # two users loading two styles at once extract the archive once
        found = _extracted(name)
        if found is None:
            found = extract_fast_style_models(archive, weights.cache_dir() / _FOLDER)[name]
    return found


def _extracted(name: str) -> Path | None:
    home = weights.home_dir()
    for folder in ([home] if home else []) + [weights.cache_dir()]:
        candidate = folder / _FOLDER / f"{name}.pth"
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
            members = _official_members(bundle, archive.name)
            folder.mkdir(parents=True, exist_ok=True)
            return {name: _extract_member(bundle, info, folder / f"{name}.pth") for name, info in members.items()}
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"{archive} is not a readable zip archive ({error}); delete it and download it "
                           "again.") from None


def _official_members(bundle: zipfile.ZipFile, label: str) -> dict[str, zipfile.ZipInfo]:
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



# --- Loading ----------------------------------------------------------------------------------------------------------

def drop_legacy_instance_norm(state: dict) -> dict:
    """Drop the legacy instance-norm statistics of the official fast-style checkpoints.

    They were saved by PyTorch < 0.4, whose InstanceNorm2d kept `running_mean`/`running_var` buffers (`inN.*`, also
    inside the residual blocks); since 0.4 instance norm tracks none, so a strict load rejects them. The reference's
    `stylize()` deletes exactly the keys matching `in\\d+\\.running_(mean|var)$`; so do we. Newer checkpoints (a user's
    own, trained with the reference) have no such keys and pass unchanged.
    """
    return {key: value for key, value in state.items() if not _LEGACY_INSTANCE_NORM.search(key)}


def transformer_from_state(state: dict, label: str = "this checkpoint") -> TransformerNet:
    if not isinstance(state, dict):
        raise weights.WeightsError(f"{label} holds a {type(state).__name__}, not a TransformerNet state dict.")
    net = TransformerNet()
    weights.strict_load(net, drop_legacy_instance_norm(state), f"the TransformerNet of pytorch/examples "
                        f"fast_neural_style ({label})", expected="its saved_models/*.pth layout")
    return net


def load(name: str, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> TransformerNet:
    """The official `name` model, or (`checkpoint_file`) a user's TransformerNet trained with pytorch/examples;
    one shared instance per weights and device, in fp16 on CUDA."""
    device = device or runtime.device()

    def build() -> TransformerNet:
        path = Path(checkpoint_file) if checkpoint_file is not None else fast_style_file(name, progress)
        return runtime.prepare(transformer_from_state(weights.load_state_dict(path), path.name), device)

    # a user's file is the same network whichever style name it was chosen under
    return runtime.cached_model("fast_style", name if checkpoint_file is None else "own", device, checkpoint_file,
                                build)


# --- Stylising --------------------------------------------------------------------------------------------------------

def stylize_fast(net: TransformerNet, rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> stylised RGB uint8 of the same size (the network works on 0-255, as it was trained)."""
    check_rgb(rgb, "Fast neural style")
    reference = first_parameter(net)
    h, w = rgb.shape[:2]
    with torch.inference_mode():
        x = pad_to_multiple(to_tensor(rgb, reference.device, reference.dtype, 255.0), 4)
        y = net(x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x)
        return to_uint8(y[..., :h, :w], 255.0)


def predict(net: TransformerNet, rgb: np.ndarray, preserve_color: bool = False) -> np.ndarray:
    """One stylised frame; `preserve_color` keeps the content's chroma (what a live webcam view calls per frame)."""
    out = stylize_fast(net, rgb)
    return keep_luminance_only(out, rgb) if preserve_color else out
