"""What Pix2Pix and CycleGAN share: the official generator files, loading them, tensors in [-1, 1], the video loop.

Both families come from junyanz/pytorch-CycleGAN-and-pix2pix: the authors' university server hosts one plain state
dict per model under a URL pattern, and every generator maps [-1, 1] RGB to [-1, 1] RGB through a tanh. The families
are models/pix2pix.py (paired, U-Net) and models/cyclegan.py (unpaired, ResNet, with the cycle made visible); their
tabs are models/tabs/pix2pix.py and models/tabs/cyclegan.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import runtime, video, weights
from .images import LoadedImage
from .tasks import TaskOutput

SOURCE = "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix"
LICENSE = "BSD (pytorch-CycleGAN-and-pix2pix)"


def checkpoint_name(family: str, model: str) -> str:
    return f"{family}-{model}"


def catalogue(family: str, models: tuple[str, ...], url_pattern: str, architecture: str) -> dict[str, weights.Checkpoint]:
    """The official generators of one family (`url_pattern` has a {} for the model's name), registered for download."""
    checkpoints = {
        checkpoint_name(family, name): weights.Checkpoint(
            name=checkpoint_name(family, name), task=family, url=url_pattern.format(name), filename=f"{family}_{name}.pth",
            sha256=None, bytes=None, license=LICENSE, source=SOURCE,
            notes=architecture + "; plain state dict. No published SHA-256 or size: the first download's hash is "
            "recorded and enforced (served over plain http by the authors' university server)",
        )
        for name in models
    }
    weights.register(*checkpoints.values())
    return checkpoints


def load_generator(family: str, model: str, build: Callable[[], torch.nn.Module], device: torch.device | None = None,
                   checkpoint_file: str | None = None, progress: weights.ProgressCallback | None = None) -> torch.nn.Module:
    """The generator `family`/`model` with its official weights (or a user's file in the reference format), shared."""
    device = device or runtime.device()

    def loader():
        path = checkpoint_file or weights.fetch(checkpoint_name(family, model), progress)
        net = build()
        state = _drop_legacy_instance_norm_keys(net, weights.unwrap(weights.load_state_dict(path)))
        weights.strict_load(net, state, f"a {family} generator",
                            f"a state dict saved by the reference code; this file is not a {family} generator")
        return runtime.prepare(net, device)

    return runtime.cached_model(family, model, device, checkpoint_file, loader)


def _drop_legacy_instance_norm_keys(net: torch.nn.Module, state: dict) -> dict:
    """The reference's `__patch_instance_norm_state_dict`: checkpoints saved before PyTorch 0.4 carry
    running_mean/running_var/num_batches_tracked for InstanceNorm layers, which have no such buffers now."""
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


def placement(net: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where a generator's weights are, and in what precision: its inputs must match."""
    parameter = next(net.parameters())
    return parameter.device, parameter.dtype


# --- what both tabs report -----------------------------------------------------------------------------------------

def run_record(family: str, model: str, checkpoint: str | None, loaded: LoadedImage, load_time: dict,
               model_time: dict, **extra) -> dict:
    """The JSON-ready record of one translation: model, weights, device, sizes, milliseconds, the tab's extras."""
    device = runtime.device()
    return {"task": family, "model": model, "checkpoint": checkpoint or checkpoint_name(family, model),
            "device": runtime.describe(device), "input_size": list(loaded.original_size), "notes": loaded.notes,
            "ms": {"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1)}, **extra}


def run_output(family: str, title: str, model: str, checkpoint: str | None, loaded: LoadedImage,
               pictures: dict[str, np.ndarray], times: tuple[dict, dict], size_note: str = "", **extra) -> TaskOutput:
    """What a translation tab's run() returns: its pictures ("input" is what the generator saw), the record and the
    summary line "<title> <model> on <device>: <w>x<h><size_note>, <ms> ms", to which the tab may add."""
    load_time, model_time = times
    record = run_record(family, model, checkpoint, loaded, load_time, model_time, **extra)
    height, width = pictures["input"].shape[:2]
    summary = f"{title} {model} on {record['device']}: {width}x{height}{size_note}, {model_time['ms']:.0f} ms"
    return TaskOutput(pictures, record, summary)


def video_runner(family: str, run: Callable[..., TaskOutput], **fixed_options) -> Callable[..., dict]:
    """A tab's run_video: every frame through the tab's `run` (the caller's options, `fixed_options` over them)."""

    def run_video(source: str | Path, target: str | Path, model: str, checkpoint: str | None = None, progress=None,
                  **options) -> dict:
        """The lecture's video translation: every frame through the generator, without temporal smoothing."""
        options = {**options, **fixed_options}

        def translate(rgb):
            loaded = LoadedImage(rgb, original_size=(rgb.shape[1], rgb.shape[0]))
            return run(loaded, model, checkpoint, **options).images["output"]

        info, _ = video.map_frames(source, target, translate, progress)
        return {"task": family, "model": model, "device": runtime.describe(runtime.device()), "fps": info.fps,
                "frames": info.frames, "size": [info.width, info.height], "audio": "dropped", "output": str(target)}

    return run_video
