"""Image-to-image translation: pix2pix (paired, U-Net) and CycleGAN (unpaired, ResNet), with the cycle made visible.

The official generators of junyanz/pytorch-CycleGAN-and-pix2pix load into `translation_archs`. Images go in as RGB in
[-1, 1] and come out of a tanh. Two tasks live here, `PIX2PIX_TASK` and `CYCLEGAN_TASK`, sharing loading, the
conversions and the video path.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import draw, runtime, video, weights
from .images import LoadedImage, fit_within
from .tasks import Option, Task, TaskOutput
from .translation_archs import ResnetGenerator, UnetGenerator

PIX2PIX_MODELS = ("facades_label2photo", "edges2shoes", "sat2map", "map2sat", "day2night")
CYCLEGAN_MODELS = (
    "horse2zebra", "zebra2horse", "summer2winter_yosemite", "winter2summer_yosemite", "monet2photo", "style_monet",
    "style_cezanne", "style_ukiyoe", "style_vangogh", "apple2orange", "orange2apple", "map2sat", "sat2map",
    "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label", "facades_label2photo",
    "iphone2dslr_flower",
)
# CycleGAN models trained together as the two directions of one pair: X -> Y -> X is the cycle.
_PAIRS = [("horse2zebra", "zebra2horse"), ("summer2winter_yosemite", "winter2summer_yosemite"),
          ("monet2photo", "style_monet"), ("apple2orange", "orange2apple"), ("map2sat", "sat2map"),
          ("cityscapes_photo2label", "cityscapes_label2photo"), ("facades_photo2label", "facades_label2photo")]
REVERSE = {**dict(_PAIRS), **{backward: forward for forward, backward in _PAIRS}}
_URLS = {"pix2pix": "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{}.pth",
         "cyclegan": "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{}.pth"}
_SOURCE = "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix"
PIX2PIX_SIDE = 256  # unet_256 has eight stride-2 levels

# The CMP Facade classes as the facades_label2photo model sees them: MATLAB's jet(12) colormap over the class index
# (background ... shop). UNCONFIRMED against the dataset's label PNGs: the tab's painter snaps to these colours.
FACADE_PALETTE = (
    ("background", (0, 0, 170)), ("facade", (0, 0, 255)), ("window", (0, 85, 255)), ("door", (0, 170, 255)),
    ("cornice", (0, 255, 255)), ("sill", (85, 255, 170)), ("balcony", (170, 255, 85)), ("blind", (255, 255, 0)),
    ("deco", (255, 170, 0)), ("molding", (255, 85, 0)), ("pillar", (255, 0, 0)), ("shop", (170, 0, 0)),
)


def checkpoint_name(family: str, model: str) -> str:
    return f"{family}-{model}"


CHECKPOINTS = {
    checkpoint.name: checkpoint
    for family, names in (("pix2pix", PIX2PIX_MODELS), ("cyclegan", CYCLEGAN_MODELS))
    for checkpoint in [
        weights.Checkpoint(
            name=checkpoint_name(family, name), task=family, url=_URLS[family].format(name), filename=f"{family}_{name}.pth", sha256=None, bytes=None,
            license="BSD (pytorch-CycleGAN-and-pix2pix)", source=_SOURCE,
            notes=("unet_256, batch norm, dropout" if family == "pix2pix" else "resnet_9blocks, instance norm, no dropout")
            + "; plain state dict. No published SHA-256 or size: the first download's hash is recorded and enforced "
            "(served over plain http by the authors' university server)",
        )
        for name in names
    ]
}
weights.register(*CHECKPOINTS.values())
_mode_lock = threading.Lock()  # pix2pix switches dropout/BatchNorm modes per call on a shared network


def build(family: str) -> torch.nn.Module:
    return UnetGenerator() if family == "pix2pix" else ResnetGenerator()


def load(family: str, model: str, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> torch.nn.Module:
    """The generator `family`/`model` with its official weights (or a user's file in the reference format)."""
    device = device or runtime.device()
    content = weights.sha256_of(Path(checkpoint_file)) if checkpoint_file else None

    def loader():
        path = checkpoint_file or weights.fetch(checkpoint_name(family, model), progress)
        net = build(family)
        try:
            net.load_state_dict(_convert_state_dict(net, weights.load_state_dict(path)), strict=True)
        except RuntimeError as error:
            raise weights.WeightsError(
                f"This checkpoint is not a {family} generator in the reference format: {str(error).splitlines()[0]}"
            ) from None
        net.eval().requires_grad_(False).to(device)
        return net.half() if runtime.half_precision(device) else net

    return runtime.MODELS.get(("translation", family, model, content, str(device)), loader)


def _convert_state_dict(net: torch.nn.Module, state: dict) -> dict:
    """The reference's `__patch_instance_norm_state_dict`: checkpoints saved before PyTorch 0.4 carry
    running_mean/running_var/num_batches_tracked for InstanceNorm layers, which have no such buffers now."""
    state = {key.removeprefix("module."): value for key, value in state.items()}
    expected = net.state_dict()
    legacy = (".running_mean", ".running_var", ".num_batches_tracked")
    instance_norms = {name for name, module in net.named_modules() if isinstance(module, torch.nn.InstanceNorm2d)}
    return {key: value for key, value in state.items()
            if key in expected or not (key.endswith(legacy) and key.rsplit(".", 1)[0] in instance_norms)}


# --- conversions -------------------------------------------------------------------------------------------------

def to_tensor(rgb: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> (1, 3, H, W) in [-1, 1], as the reference's Normalize((0.5,)*3, (0.5,)*3)."""
    x = torch.tensor(rgb, device=device).permute(2, 0, 1).unsqueeze(0).to(dtype)
    return x / 127.5 - 1.0


def to_image(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tanh output -> uint8 RGB, (x + 1) / 2 * 255 rounded."""
    return ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to a multiple; returns the padded tensor and the original (H, W) to crop back to."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"  # reflect needs the pad smaller than the side
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (h, w)


def _resize(rgb: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    if rgb.shape[1::-1] == size:
        return rgb
    shrinking = size[0] < rgb.shape[1]
    interpolation = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return cv2.resize(rgb, size, interpolation=interpolation)


# --- inputs people make in the browser ----------------------------------------------------------------------------

def flatten_on_white(rgba: np.ndarray) -> np.ndarray:
    """A sketchpad or painter canvas (RGBA, transparent where nothing was drawn) over white."""
    if rgba.ndim == 3 and rgba.shape[2] == 4:
        alpha = rgba[..., 3:4].astype(np.float32) / 255
        return np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return rgba[..., :3] if rgba.ndim == 3 else np.repeat(rgba[..., None], 3, axis=2)


def sketch_to_edges(canvas: np.ndarray) -> np.ndarray:
    """edges2shoes input from a sketch: strokes black, everything else white, 256x256, pure 0/255 values."""
    rgb = _resize(flatten_on_white(canvas), (PIX2PIX_SIDE, PIX2PIX_SIDE))
    dark = rgb.astype(np.float32).mean(axis=2) < 128
    return np.where(dark[..., None], 0, 255).astype(np.uint8).repeat(3, axis=2)


def edges_from_photo(rgb: np.ndarray) -> np.ndarray:
    """Black Canny edges on white, at most 256 px a side with the photo's aspect: a stand-in for the HED edges
    edges2shoes was trained on. Edges come from all three channels, so colour boundaries of equal grey show too."""
    small, _ = fit_within(rgb, PIX2PIX_SIDE)
    edges = np.zeros(small.shape[:2], bool)
    for channel in range(3):
        edges |= _canny(small[..., channel])
    return np.where(edges[..., None], 0, 255).astype(np.uint8).repeat(3, axis=2)


def _canny(gray: np.ndarray) -> np.ndarray:
    median = float(np.median(gray))
    return cv2.Canny(cv2.GaussianBlur(np.ascontiguousarray(gray), (3, 3), 0), int(max(0, 0.66 * median)),
                     int(min(255, 1.33 * median))) > 0


def snap_to_palette(canvas: np.ndarray, palette=FACADE_PALETTE) -> np.ndarray:
    """A painted label map as the facades model expects it: 256x256, every pixel exactly one class colour.

    Unpainted (white or transparent) pixels become the first class (background)."""
    rgb = _resize(flatten_on_white(canvas), (PIX2PIX_SIDE, PIX2PIX_SIDE), nearest=True).astype(np.int32)
    colours = np.array([colour for _, colour in palette], np.int32)
    distances = ((rgb[:, :, None, :] - colours[None, None]) ** 2).sum(axis=3)
    labels = distances.argmin(axis=2)
    labels[(rgb >= 250).all(axis=2)] = 0
    return colours[labels].astype(np.uint8)


# --- running the generators -----------------------------------------------------------------------------------------

def translate_pix2pix(net: torch.nn.Module, rgb: np.ndarray, noise: bool = False, seed: int = 0,
                      image_statistics: bool = True) -> np.ndarray:
    """Run unet_256 at 256x256 and bring the result back to the input's size (its aspect ratio).

    image_statistics: BatchNorm normalises with this image's statistics, as the reference test script does by default;
    False uses the running averages (the reference's --eval). noise: dropout stays on (the model's only noise), seeded.
    """
    device, dtype = _placement(net)
    x = to_tensor(_resize(rgb, (PIX2PIX_SIDE, PIX2PIX_SIDE)), device, dtype)
    with _mode_lock, torch.inference_mode(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                # train mode + no running-stat tracking = normalise with this batch's statistics, update nothing
                module.train(image_statistics)
                module.track_running_stats = not image_statistics
            elif isinstance(module, torch.nn.Dropout):
                module.train(noise)
        out = to_image(net(x))
    return _resize(out, (rgb.shape[1], rgb.shape[0]))


def translate_cyclegan(net: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    """Any size: reflect-pad to a multiple of 4 (two stride-2 levels), translate, crop back."""
    device, dtype = _placement(net)
    x, (h, w) = pad_to_multiple(to_tensor(rgb, device, dtype), 4)
    with torch.inference_mode():
        return to_image(net(x)[..., :h, :w])


def _placement(net: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    parameter = next(net.parameters())
    return parameter.device, parameter.dtype


@dataclass
class Cycle:
    translated: np.ndarray  # Y = G(X)
    reconstructed: np.ndarray  # X' = F(G(X))
    error: np.ndarray  # per-pixel |X - X'| averaged over channels, in the networks' [-1, 1] units (H, W) float32
    mean_error: float  # the cycle-consistency loss (L1) of this image, as CycleGAN trains it


def cycle(forward: torch.nn.Module, backward: torch.nn.Module, rgb: np.ndarray) -> Cycle:
    translated = translate_cyclegan(forward, rgb)
    reconstructed = translate_cyclegan(backward, translated)
    error = np.abs(rgb.astype(np.float32) - reconstructed.astype(np.float32)).mean(axis=2) / 127.5
    return Cycle(translated, reconstructed, error, float(error.mean()))


def error_heatmap(error: np.ndarray, vmax: float = 1.0) -> np.ndarray:
    """The |X - X'| map as a colour image (inferno: dark = reconstructed exactly, bright = lost)."""
    return draw.colorize(error / vmax)


# --- the two tabs' pipelines ----------------------------------------------------------------------------------------

PREPARE = ("none", "edges", "labels")


def prepare_input(rgb: np.ndarray, prepare: str) -> np.ndarray:
    """What the user's image becomes before pix2pix sees it: as is, Canny edges, or snapped facade labels."""
    if prepare == "edges":
        return edges_from_photo(rgb)
    if prepare == "labels":
        return snap_to_palette(rgb)
    return rgb


def run_pix2pix(loaded: LoadedImage, model: str = "edges2shoes", checkpoint: str | None = None, progress=None,
                prepare: str = "none", noise: bool = False, seed: int = 0, statistics: str = "image") -> TaskOutput:
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = load("pix2pix", model, device, checkpoint, progress)
    source = prepare_input(loaded.rgb, prepare)
    with runtime.stopwatch(device) as model_time:
        out = translate_pix2pix(net, source, noise, seed, statistics == "image")
    record = _record("pix2pix", model, checkpoint, loaded, load_time, model_time,
                     prepare=prepare, noise=noise, seed=seed if noise else None, statistics=statistics)
    summary = (f"pix2pix {model} on {record['device']}: {source.shape[1]}x{source.shape[0]} via 256x256, "
               f"{model_time['ms']:.0f} ms" + (f", noise seed {seed}" if noise else ""))
    return TaskOutput({"input": source, "output": out}, record, summary)


def run_cyclegan(loaded: LoadedImage, model: str = "horse2zebra", checkpoint: str | None = None, progress=None,
                 show_cycle: bool = True, working_side: int = 512) -> TaskOutput:
    device = runtime.device()
    rgb, scaled_from = fit_within(loaded.rgb, working_side) if working_side else (loaded.rgb, None)
    with runtime.stopwatch(device) as load_time:
        net = load("cyclegan", model, device, checkpoint, progress)
        backward = None
        if show_cycle and model in REVERSE and checkpoint is None:
            backward = load("cyclegan", REVERSE[model], device, None, progress)
    with runtime.stopwatch(device) as model_time:
        if backward is not None:
            result = cycle(net, backward, rgb)
            translated = result.translated
        else:
            translated = translate_cyclegan(net, rgb)
    notes = loaded.notes + ([f"working size {rgb.shape[1]}x{rgb.shape[0]}"] if scaled_from else [])
    images = {"input": rgb, "output": translated}
    record = _record("cyclegan", model, checkpoint, loaded, load_time, model_time, working_size=list(rgb.shape[1::-1]),
                     notes=notes)
    summary = f"CycleGAN {model} on {record['device']}: {rgb.shape[1]}x{rgb.shape[0]}, {model_time['ms']:.0f} ms"
    if backward is not None:
        images.update(reconstructed=result.reconstructed, cycle_error=error_heatmap(result.error))
        record["cycle"] = {"reverse_model": REVERSE[model], "mean_abs_error": round(result.mean_error, 5),
                           "units": "|X - F(G(X))| in the networks' [-1, 1] range, averaged over pixels and channels"}
        summary += f" (with the cycle through {REVERSE[model]}: mean |X - X'| = {result.mean_error:.3f})"
    return TaskOutput(images, record, summary)


def _record(family, model, checkpoint, loaded, load_time, model_time, **extra) -> dict:
    device = runtime.device()
    return {"task": family, "model": model, "checkpoint": checkpoint or checkpoint_name(family, model),
            "device": runtime.describe(device), "input_size": list(loaded.original_size), "notes": loaded.notes,
            "ms": {"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1)}, **extra}


def run_video(family: str, source: str | Path, target: str | Path, model: str, checkpoint: str | None = None,
              progress=None, **options) -> dict:
    """The lecture's video translation: every frame through the generator, without temporal smoothing."""
    run = run_pix2pix if family == "pix2pix" else run_cyclegan
    if family == "cyclegan":
        options = {**options, "show_cycle": False}

    def translate(rgb):
        return run(LoadedImage(rgb, original_size=(rgb.shape[1], rgb.shape[0])), model, checkpoint, **options).images["output"]

    info, _ = video.map_frames(source, target, translate, progress)
    return {"task": family, "model": model, "device": runtime.describe(runtime.device()), "fps": info.fps,
            "frames": info.frames, "size": [info.width, info.height], "audio": "dropped", "output": str(target)}


PIX2PIX_TASK = Task(
    id="pix2pix",
    title="Pix2Pix",
    models=PIX2PIX_MODELS,
    default_model="edges2shoes",
    options=(
        Option("prepare", "none", "turn the input into what the model expects first: Canny edges (edges2shoes) or "
               "facade label colours (facades_label2photo)", choices=PREPARE),
        Option("noise", False, "keep dropout on (the generator's only noise source), seeded"),
        Option("seed", 0, "seed of the dropout noise", minimum=0, maximum=2**31 - 1),
        Option("statistics", "image", "BatchNorm statistics: this image's (reference default) or running averages",
               choices=("image", "running")),
    ),
    max_side=1024,
    run=run_pix2pix,
    preload=lambda model: load("pix2pix", model),
    run_video=lambda *args, **kwargs: run_video("pix2pix", *args, **kwargs),
    video_suffixes=video.VIDEO_SUFFIXES,
)

CYCLEGAN_TASK = Task(
    id="cyclegan",
    title="CycleGAN",
    models=CYCLEGAN_MODELS,
    default_model="horse2zebra",
    options=(
        Option("show_cycle", True, "also run the reverse model (where one exists): X -> Y -> X'"),
        Option("working_side", 512, "translate at most this many pixels a side (0: the input's size)", minimum=0,
               maximum=2048),
    ),
    max_side=2048,
    run=run_cyclegan,
    preload=lambda model: load("cyclegan", model),
    run_video=lambda *args, **kwargs: run_video("cyclegan", *args, **kwargs),
    video_suffixes=video.VIDEO_SUFFIXES,
)
