"""Super-resolution: SRGAN and the ESRGAN family against bicubic, with tiling and a PSNR/SSIM check.

`predict()` maps an RGB uint8 array to an upscaled one; `run()` is the tab's whole pipeline (used by the UI and by
`python app.py predict super-resolution`), including the "check against the original" mode: shrink a sharp photo by the
scale, super-resolve it, and measure model and bicubic against the original.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from . import runtime, weights
from .images import LoadedImage, with_alpha
from .sr_archs import RRDBNet, SRGANGenerator, SRVGGNetCompact
from .tasks import Option, Task, TaskOutput

TASK_ID = "super-resolution"
_REAL_ESRGAN = "https://github.com/xinntao/Real-ESRGAN"
_LEFTTHOMAS = "https://github.com/leftthomas/SRGAN/raw/b0323c6ca4ca920f7daa41ba05f44bd220557cd9/epochs"

CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        weights.Checkpoint(
            name="srgan-x4", task=TASK_ID, url=f"{_LEFTTHOMAS}/netG_epoch_4_100.pth", filename="netG_epoch_4_100.pth",
            sha256="f4c381640826a48d2440583e4920c6bb4041804f4e285c3c6d585f03961fe87c", bytes=2_952_717, license="MIT",
            source="https://github.com/leftthomas/SRGAN",
            notes="plain state dict from PyTorch 0.3 (no BatchNorm num_batches_tracked); SHA-256 verified on this project's copy",
        ),
        weights.Checkpoint(
            name="srgan-x2", task=TASK_ID, url=f"{_LEFTTHOMAS}/netG_epoch_2_100.pth", filename="netG_epoch_2_100.pth",
            sha256="a7ddfb8d2109ea7360ca7a6913c3acbb7128deef16c2868476e2bb1e2cf9ec3b", bytes=2_361_404, license="MIT",
            source="https://github.com/leftthomas/SRGAN", notes="as srgan-x4; SHA-256 verified on this project's copy",
        ),
        weights.Checkpoint(
            name="realesrgan-x4plus", task=TASK_ID, url=f"{_REAL_ESRGAN}/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
            filename="RealESRGAN_x4plus.pth", sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1", bytes=67_040_989,
            license="BSD-3-Clause", source=f"{_REAL_ESRGAN}/blob/master/docs/model_zoo.md",
            notes="key params_ema; SHA-256 as published by several third parties, not yet checked against a download here",
        ),
        weights.Checkpoint(
            name="realesrgan-x4plus-anime-6b", task=TASK_ID,
            url=f"{_REAL_ESRGAN}/releases/download/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
            filename="RealESRGAN_x4plus_anime_6B.pth", sha256="f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da", bytes=None,
            license="BSD-3-Clause", source=f"{_REAL_ESRGAN}/blob/master/docs/anime_model.md",
            notes="key params_ema; SHA-256 from a third-party package pin, not yet checked against a download here",
        ),
        weights.Checkpoint(
            name="realesr-general-x4v3", task=TASK_ID, url=f"{_REAL_ESRGAN}/releases/download/v0.2.5.0/realesr-general-x4v3.pth",
            filename="realesr-general-x4v3.pth", sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292", bytes=4_885_111,
            license="BSD-3-Clause", source=f"{_REAL_ESRGAN}/blob/master/docs/model_zoo.md",
            notes="key params; SHA-256 as published by third parties, not yet checked against a download here",
        ),
        weights.Checkpoint(
            name="realesr-general-wdn-x4v3", task=TASK_ID,
            url=f"{_REAL_ESRGAN}/releases/download/v0.2.5.0/realesr-general-wdn-x4v3.pth",
            filename="realesr-general-wdn-x4v3.pth", sha256=None, bytes=None, license="BSD-3-Clause", source=f"{_REAL_ESRGAN}/blob/master/docs/model_zoo.md",
            notes="key params; the weak-denoise twin blended in by the denoise strength. No published SHA-256: the first "
            "download's hash is recorded and enforced",
        ),
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
    num_block: int = 23
    default_tile: int = 512  # input pixels per tile side; bigger inputs are processed in overlapping tiles


MODELS = {
    model.name: model
    for model in (
        SRModel("srgan-x4", "SRGAN x4 (Ledig et al. 2017; leftthomas, VOC2012)", "srgan", 4, "srgan-x4"),
        SRModel("srgan-x2", "SRGAN x2 (leftthomas, VOC2012)", "srgan", 2, "srgan-x2"),
        SRModel("realesrgan-x4plus", "Real-ESRGAN x4plus (RRDBNet, 23 blocks)", "rrdb", 4, "realesrgan-x4plus",
                default_tile=256),
        SRModel("realesrgan-x4plus-anime-6b", "Real-ESRGAN x4plus anime (RRDBNet, 6 blocks)", "rrdb", 4,
                "realesrgan-x4plus-anime-6b", num_block=6, default_tile=256),
        SRModel("realesr-general-x4v3", "Real-ESRGAN general x4v3 (SRVGGNetCompact) + denoise", "srvgg", 4,
                "realesr-general-x4v3", blend_checkpoint="realesr-general-wdn-x4v3"),
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
        return SRVGGNetCompact(scale=spec.scale)
    raise ValueError(f"{model_name} has no network")


def load(model_name: str, device: torch.device | None = None, checkpoint_file: str | None = None,
         denoise: float = 0.5, progress: weights.ProgressCallback | None = None) -> torch.nn.Module | None:
    """The network for `model_name` with its official weights (or a user's `checkpoint_file`), cached per device."""
    spec = MODELS[model_name]
    if spec.arch == "bicubic":
        return None
    device = device or runtime.device()
    if checkpoint_file is not None:
        key = ("sr", model_name, weights.sha256_of(Path(checkpoint_file)), str(device))
        return runtime.MODELS.get(key, lambda: _ready(_from_state(spec, weights.load_state_dict(checkpoint_file)), device))
    blend = spec.blend_checkpoint is not None and denoise < 1.0
    key = cache_key(model_name, device, denoise)

    def loader():
        state = _convert_state_dict(spec, weights.load_state_dict(weights.fetch(spec.checkpoint, progress)))
        if blend:
            other = _convert_state_dict(spec, weights.load_state_dict(weights.fetch(spec.blend_checkpoint, progress)))
            state = blend_state_dicts(state, other, denoise)
        return _ready(_from_state(spec, state, converted=True), device)

    return runtime.MODELS.get(key, loader)


def cache_key(model_name: str, device: torch.device, denoise: float = 0.5) -> tuple:
    """The key of the official-weights network in runtime.MODELS (one per model, device and denoise strength)."""
    blend = MODELS[model_name].blend_checkpoint is not None and denoise < 1.0
    return ("sr", model_name, round(denoise, 2) if blend else None, str(device))


def blend_state_dicts(strong: dict, weak: dict, strength: float) -> dict:
    """Deep network interpolation (Wang et al. 2019): `strength` of the denoising weights, the rest from the weak one."""
    return {key: strength * strong[key] + (1.0 - strength) * weak[key] for key in strong}


def _from_state(spec: SRModel, state: dict, converted: bool = False) -> torch.nn.Module:
    net = build(spec.name)
    if not converted:
        state = _convert_state_dict(spec, state)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise weights.WeightsError(
            f"This checkpoint does not fit {spec.label}: {str(error).splitlines()[0]} ... "
            f"(expected the official {spec.arch} layout)"
        ) from None
    return net


def _convert_state_dict(spec: SRModel, state: dict) -> dict:
    """Bring a checkpoint in any official packaging to the plain key layout of our modules."""
    for wrapper in ("params_ema", "params", "state_dict"):  # Real-ESRGAN releases wrap the weights in a dict
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    state = {key.removeprefix("module."): value for key, value in state.items()}  # saved from nn.DataParallel
    if spec.arch == "srgan":
        # leftthomas' checkpoints come from PyTorch 0.3, before BatchNorm had num_batches_tracked; weights_only
        # loading drops the version metadata that would let PyTorch add it, so add the (unused) counters here.
        for key in [k for k in state if k.endswith(".running_mean")]:
            state.setdefault(key.replace("running_mean", "num_batches_tracked"), torch.tensor(0, dtype=torch.long))
    return state


def _ready(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    net.eval().requires_grad_(False).to(device)
    if runtime.half_precision(device):
        net.half()
    return net


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


def quality(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of an estimate against the reference, on RGB uint8 over the whole image."""
    return {
        "psnr_db": float(peak_signal_noise_ratio(reference, estimate, data_range=255)),
        "ssim": float(structural_similarity(reference, estimate, channel_axis=2, data_range=255)),
    }


def shrink_for_check(original: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop the original to a multiple of the scale and make its low-resolution version by bicubic downscaling."""
    h, w = original.shape[:2]
    cropped = original[: h - h % scale, : w - w % scale]
    return cropped, bicubic(cropped, 1.0 / scale)


def run(loaded: LoadedImage, model: str = DEFAULT_MODEL, checkpoint: str | None = None,
        progress: weights.ProgressCallback | None = None, mode: str = "upscale", denoise: float = 0.5,
        tile: int = 0) -> TaskOutput:
    """The tab's pipeline. mode "upscale": bicubic vs model on the input; "check": shrink, upscale, measure."""
    spec = MODELS[model]
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = load(model, device, checkpoint, denoise, progress)
    tile = tile or spec.default_tile
    source = loaded.rgb
    original = None
    if mode == "check":
        original, source = shrink_for_check(source, spec.scale)
        if min(source.shape[:2]) < 8:
            raise ValueError(f"The photo is too small to check: shrunk by {spec.scale} it is under 8 pixels a side.")
    with runtime.stopwatch(device) as model_time:
        result = predict(net, source, spec.scale, tile, progress)
    baseline = bicubic(source, spec.scale)
    images = {"bicubic": baseline, "model": result.image}
    record = {
        "task": TASK_ID, "model": model, "checkpoint": checkpoint or spec.checkpoint, "device": runtime.describe(device),
        "half_precision": bool(net is not None and next(net.parameters()).dtype == torch.float16),
        "mode": mode, "scale": spec.scale, "input_size": list(loaded.original_size),
        "model_input_size": [source.shape[1], source.shape[0]], "output_size": [result.image.shape[1], result.image.shape[0]],
        "tile": result.tile, "tiles": result.tiles, "notes": loaded.notes,
        "ms": {"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1)},
    }
    if spec.blend_checkpoint is not None and checkpoint is None:
        record["denoise"] = denoise
    if original is not None:
        images = {"original": original, "low_resolution": source, **images}
        record["metrics"] = {"model": quality(original, result.image), "bicubic": quality(original, baseline)}
        gain = record["metrics"]["model"]["psnr_db"] - record["metrics"]["bicubic"]["psnr_db"]
        record["metrics"]["psnr_gain_db"] = round(gain, 3)
    elif loaded.alpha is not None:
        images["model"] = with_alpha(result.image, loaded.alpha)  # transparency survives the upscale
    w, h = record["output_size"]
    summary = (f"{model} on {record['device']}: {source.shape[1]}x{source.shape[0]} -> {w}x{h}, "
               f"{record['ms']['model']:.0f} ms" + (f" in {result.tiles} tiles" if result.tiles > 1 else ""))
    return TaskOutput(images, record, summary)


TASK = Task(
    id=TASK_ID,
    title="Super-resolution",
    models=tuple(MODELS),
    default_model=DEFAULT_MODEL,
    options=(
        Option("mode", "upscale", "upscale: enlarge the input; check: shrink a sharp photo, enlarge it back and "
               "measure PSNR/SSIM against it", choices=("upscale", "check")),
        Option("denoise", 0.5, "realesr-general-x4v3 only: 1 = full denoising, 0 = keep noise and grain",
               minimum=0.0, maximum=1.0),
        Option("tile", 0, "input pixels per tile side (0: the model's default); smaller uses less memory",
               minimum=0, maximum=4096),
    ),
    max_side=1024,
    run=run,
    preload=lambda model: load(model),
)
