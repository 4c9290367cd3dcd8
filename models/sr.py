"""Super-resolution family: SRGAN and the ESRGAN family, their checkpoints, loading and tiled prediction.

`predict()` maps an RGB uint8 array to an upscaled one, in overlapping tiles when the input is large and with smaller
tiles after an out-of-memory error; `bicubic()` is the baseline every model is compared with. The networks are in
`sr_arch.py`; the tab (options, the "check against the original" mode) is `models/tabs/super_resolution.py`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from . import cancel, runtime, weights
from .sr_arch import RRDBNet, SRGANGenerator, SRVGGNetCompact

TASK_ID = "super-resolution"
_REAL_ESRGAN = "https://github.com/xinntao/Real-ESRGAN"
_LEFTTHOMAS = "https://github.com/leftthomas/SRGAN/raw/b0323c6ca4ca920f7daa41ba05f44bd220557cd9/epochs"


def _srgan_checkpoint(scale: int, sha256: str, size: int, notes: str) -> weights.Checkpoint:
    """leftthomas' generators: one plain state dict per scale, all from the same pinned commit."""
    filename = f"netG_epoch_{scale}_100.pth"
    return weights.Checkpoint(
        name=f"srgan-x{scale}", task=TASK_ID, url=f"{_LEFTTHOMAS}/{filename}", filename=filename, sha256=sha256,
        bytes=size, license="MIT", source="https://github.com/leftthomas/SRGAN", notes=notes,
    )


def _real_esrgan(name: str, release_file: str, doc: str, sha256: str, size: int, state_key: str, notes: str,
                 hash_origin: str = "third-party") -> weights.Checkpoint:
    """A Real-ESRGAN release file; `state_key` is the dict entry that wraps its weights."""
    return weights.Checkpoint(
        name=name, task=TASK_ID, url=f"{_REAL_ESRGAN}/releases/download/{release_file}",
        filename=release_file.split("/")[-1], sha256=sha256, bytes=size, license="BSD-3-Clause",
        source=f"{_REAL_ESRGAN}/blob/master/docs/{doc}.md", notes=f"key {state_key}; {notes}", hash_origin=hash_origin,
        state_key=state_key,
    )


CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        _srgan_checkpoint(4, "f4c381640826a48d2440583e4920c6bb4041804f4e285c3c6d585f03961fe87c", 2_952_717,
                          "plain state dict from PyTorch 0.3 (no BatchNorm num_batches_tracked); SHA-256 verified on "
                          "this project's copy"),
        _srgan_checkpoint(2, "a7ddfb8d2109ea7360ca7a6913c3acbb7128deef16c2868476e2bb1e2cf9ec3b", 2_361_404,
                          "as srgan-x4; SHA-256 verified on this project's copy"),
        _srgan_checkpoint(8, "91bc47a807f09ebb9c40a69ff2fd3b598e7e618d91f506b71a9c3ec2cbb94355", 3_544_030,
                          "as srgan-x4, three x2 upsamplers; SHA-256 verified on this project's copy"),
        _real_esrgan("realesrgan-x4plus", "v0.1.0/RealESRGAN_x4plus.pth", "model_zoo",
                     "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1", 67_040_989, "params_ema",
                     "SHA-256 as published by several third parties, not yet checked against a download here"),
        _real_esrgan("realesrgan-x4plus-anime-6b", "v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth", "anime_model",
                     "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da", 17_938_799, "params_ema",
                     "SHA-256 from a third-party package pin, not yet checked against a download here"),
        _real_esrgan("realesr-general-x4v3", "v0.2.5.0/realesr-general-x4v3.pth", "model_zoo",
                     "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292", 4_885_111, "params",
                     "SHA-256 as published by third parties, not yet checked against a download here"),
        _real_esrgan("realesr-general-wdn-x4v3", "v0.2.5.0/realesr-general-wdn-x4v3.pth", "model_zoo",
                     "1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca", 4_885_111, "params",
                     "the weak-denoise twin blended in by the denoise strength. SHA-256 from third-party records, "
                     "not yet checked against a download here"),
        _real_esrgan("realesr-animevideov3", "v0.2.5.0/realesr-animevideov3.pth", "anime_video_model",
                     "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d", 2_504_012, "params",
                     "SRVGGNetCompact with 16 convs (53 tensors); SHA-256 verified on this project's copy",
                     hash_origin="published"),
    )
}
weights.register(*CHECKPOINTS.values())


@dataclass(frozen=True)
class SRModel:
    name: str
    label: str
    arch: str  # "srgan" | "rrdb" | "srvgg" | "bicubic"
    scale: int
    checkpoint: str | None = None
    blend_checkpoint: str | None = None  # denoise strength interpolates checkpoint with this one (DNI)
    num_block: int = 23  # rrdb: residual-in-residual dense blocks
    num_conv: int = 32  # srvgg: body convolutions
    default_tile: int = 512  # input pixels per tile side; bigger inputs are processed in overlapping tiles


MODELS = {
    model.name: model
    for model in (
        SRModel("srgan-x4", "SRGAN x4 (Ledig et al. 2017; leftthomas, VOC2012)", "srgan", 4, "srgan-x4"),
        SRModel("srgan-x2", "SRGAN x2 (leftthomas, VOC2012)", "srgan", 2, "srgan-x2"),
        SRModel("srgan-x8", "SRGAN x8 (leftthomas, VOC2012)", "srgan", 8, "srgan-x8"),
        SRModel("realesrgan-x4plus", "Real-ESRGAN x4plus (RRDBNet, 23 blocks)", "rrdb", 4, "realesrgan-x4plus",
                default_tile=256),
        SRModel("realesrgan-x4plus-anime-6b", "Real-ESRGAN x4plus anime (RRDBNet, 6 blocks)", "rrdb", 4,
                "realesrgan-x4plus-anime-6b", num_block=6, default_tile=256),
        SRModel("realesr-general-x4v3", "Real-ESRGAN general x4v3 (SRVGGNetCompact) + denoise", "srvgg", 4,
                "realesr-general-x4v3", blend_checkpoint="realesr-general-wdn-x4v3"),
        SRModel("realesr-animevideov3", "Real-ESRGAN anime video x4 v3 (SRVGGNetCompact, 16 convs; fast, for Live)",
                "srvgg", 4, "realesr-animevideov3", num_conv=16),
        SRModel("bicubic-x4", "Bicubic x4 (baseline, no network)", "bicubic", 4),
        SRModel("bicubic-x2", "Bicubic x2 (baseline, no network)", "bicubic", 2),
    )
}
DEFAULT_MODEL = "srgan-x4"
_TILE_PAD = 10  # input pixels of context around each tile, cropped away afterwards
_MIN_TILE = 64


class SRMemoryError(RuntimeError):
    """Even the smallest tile does not fit in memory."""


@dataclass
class SRResult:
    image: np.ndarray  # H*s x W*s x 3 uint8
    scale: int
    tile: int  # tile side used (0: whole image at once)
    tiles: int


def build(model_name: str) -> torch.nn.Module:
    """The architecture of `model_name` with random weights (what `load` fills with a checkpoint)."""
    spec = MODELS[model_name]
    if spec.arch == "srgan":
        return SRGANGenerator(scale=spec.scale)
    if spec.arch == "rrdb":
        return RRDBNet(scale=spec.scale, num_block=spec.num_block)
    if spec.arch == "srvgg":
        return SRVGGNetCompact(scale=spec.scale, num_conv=spec.num_conv)
    raise ValueError(f"{model_name} has no network")


def load(model_name: str, device: torch.device | None = None, checkpoint_file: str | None = None,
         denoise: float = 0.5, progress: weights.ProgressCallback | None = None) -> torch.nn.Module | None:
    """The network for `model_name` with its official weights (or a user's `checkpoint_file`), cached per device."""
    spec = MODELS[model_name]
    if spec.arch == "bicubic":
        return None
    device = device or runtime.device()
    if checkpoint_file is not None:
        def from_file():
            return runtime.prepare(_from_state(spec, weights.load_state_dict(checkpoint_file)), device)

        return runtime.cached_model("sr", model_name, device, checkpoint_file, from_file)

    def loader():
        state = weights.load_state_dict(weights.fetch(spec.checkpoint, progress))
        if _blends(spec, denoise):
            other = weights.load_state_dict(weights.fetch(spec.blend_checkpoint, progress))
            state = blend_state_dicts(weights.unwrap(state), weights.unwrap(other), denoise)
        return runtime.prepare(_from_state(spec, state), device)

    return runtime.cached_model("sr", model_name, device, None, loader, _blend_key(spec, denoise))


def cache_key(model_name: str, device: torch.device, denoise: float = 0.5) -> tuple:
    """The key of the official-weights network in runtime.MODELS (one per model, device and denoise strength)."""
    return runtime.model_key("sr", model_name, device, None, _blend_key(MODELS[model_name], denoise))


def _blends(spec: SRModel, denoise: float) -> bool:
    return spec.blend_checkpoint is not None and denoise < 1.0


def _blend_key(spec: SRModel, denoise: float) -> float | None:
    return round(denoise, 2) if _blends(spec, denoise) else None


def blend_state_dicts(strong: dict, weak: dict, strength: float) -> dict:
    """Deep network interpolation (Wang et al. 2019): `strength` of the denoising weights, the rest from the weak one."""
    return {key: strength * strong[key] + (1.0 - strength) * weak[key] for key in strong}


def _from_state(spec: SRModel, state: dict) -> torch.nn.Module:
    """The network of `spec` filled strictly with a checkpoint's weights, in any of its official packagings."""
    return weights.strict_load(build(spec.name), _convert_state_dict(spec, state), spec.label,
                               f"the official {spec.arch} layout")


def _convert_state_dict(spec: SRModel, state: dict) -> dict:
    """Bring a checkpoint in any official packaging to the plain key layout of our modules."""
    state = weights.unwrap(state)  # Real-ESRGAN releases wrap the weights in a dict; DataParallel adds `module.`
    if spec.arch == "srgan":
        # leftthomas' checkpoints come from PyTorch 0.3, before BatchNorm had num_batches_tracked; weights_only
        # loading drops the version metadata that would let PyTorch add it, so add the (unused) counters here.
        for key in [k for k in state if k.endswith(".running_mean")]:
            state.setdefault(key.replace("running_mean", "num_batches_tracked"), torch.tensor(0, dtype=torch.long))
    return state


def bicubic(rgb: np.ndarray, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (round(w * scale), round(h * scale))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))


def predict(net: torch.nn.Module | None, rgb: np.ndarray, scale: int, tile: int = 0,
            progress: weights.ProgressCallback | None = None) -> SRResult:
    """Upscale an RGB uint8 image; `tile` > 0 processes overlapping tiles of that many input pixels a side.

    On out-of-memory the tile is halved and the run repeated, down to 64 px; then SRMemoryError.
    """
    if net is None:
        return SRResult(bicubic(rgb, scale), scale, 0, 0)
    cancel.watch(net)  # a server job stops between layers too, not only between tiles
    device = next(net.parameters()).device
    dtype = next(net.parameters()).dtype
    x = torch.tensor(rgb).permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=dtype).div_(255.0)
    while True:
        try:
            with torch.inference_mode():
                y, tiles = _tiled_forward(net, x, scale, tile, progress)
                out = y.squeeze(0).float().clamp_(0, 1).mul_(255.0).round_().byte().permute(1, 2, 0).cpu().numpy()
            break
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not runtime.is_out_of_memory(error):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            smallest = tile and tile <= _MIN_TILE
            if smallest:
                raise SRMemoryError(
                    "Not enough memory to super-resolve this image, even in 64 px tiles. Try a smaller image, "
                    "a lighter model (realesr-general-x4v3 or SRGAN), or run on the CPU (--device cpu)."
                ) from None
            tile = max(_MIN_TILE, (tile or max(rgb.shape[:2])) // 2)
    return SRResult(out, scale, tile if tiles > 1 else 0, tiles)


def _tiled_forward(net, x: torch.Tensor, scale: int, tile: int, progress) -> tuple[torch.Tensor, int]:
    _, _, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return net(x), 1
    out = x.new_zeros(x.shape[0], 3, h * scale, w * scale)
    boxes = [(top, left) for top in range(0, h, tile) for left in range(0, w, tile)]
    for index, (top, left) in enumerate(boxes):
        cancel.check(index, len(boxes), "tile")
        bottom, right = min(top + tile, h), min(left + tile, w)
        # Each tile sees _TILE_PAD pixels of its neighbours, so its border is computed with real context.
        ptop, pleft = max(top - _TILE_PAD, 0), max(left - _TILE_PAD, 0)
        pbottom, pright = min(bottom + _TILE_PAD, h), min(right + _TILE_PAD, w)
        piece = net(x[:, :, ptop:pbottom, pleft:pright])
        dy, dx = (top - ptop) * scale, (left - pleft) * scale
        out[:, :, top * scale:bottom * scale, left * scale:right * scale] = \
            piece[:, :, dy:dy + (bottom - top) * scale, dx:dx + (right - left) * scale]
        if progress is not None:
            progress((index + 1) / len(boxes), f"Tile {index + 1} of {len(boxes)}")
    return out, len(boxes)
