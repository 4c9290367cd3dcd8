"""The super-resolution tab: a model against bicubic on one image, and a PSNR/SSIM check against a sharp original.

`run()` is the tab's whole pipeline (used by the UI and by `python app.py predict super-resolution`), including the
"check against the original" mode: shrink a sharp photo by the scale, super-resolve it, and measure model and bicubic
against the original. The models themselves are `models/sr.py`.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .. import runtime, sr, weights
from ..images import LoadedImage, with_alpha
from ..tasks import Option, Task, TaskOutput

TASK_ID = sr.TASK_ID


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
    return cropped, sr.bicubic(cropped, 1.0 / scale)


def run(loaded: LoadedImage, model: str = sr.DEFAULT_MODEL, checkpoint: str | None = None,
        progress: weights.ProgressCallback | None = None, mode: str = "upscale", denoise: float = 0.5,
        tile: int = 0) -> TaskOutput:
    """The tab's pipeline. mode "upscale": bicubic vs model on the input; "check": shrink, upscale, measure."""
    spec = sr.MODELS[model]
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = sr.load(model, device, checkpoint, denoise, progress)
    tile = tile or spec.default_tile
    source = loaded.rgb
    original = None
    if mode == "check":
        original, source = shrink_for_check(source, spec.scale)
        if min(source.shape[:2]) < 8:
            raise ValueError(f"The photo is too small to check: shrunk by {spec.scale} it is under 8 pixels a side.")
    with runtime.stopwatch(device) as model_time:
        result = sr.predict(net, source, spec.scale, tile, progress)
    baseline = sr.bicubic(source, spec.scale)
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
    models=tuple(sr.MODELS),
    default_model=sr.DEFAULT_MODEL,
    options=(
        Option("mode", "upscale", "upscale: enlarge the input; check: shrink a sharp photo, enlarge it back and "
               "measure PSNR/SSIM against it", choices=("upscale", "check")),
        Option("denoise", 0.5, "realesr-general-x4v3 only: 1 = full denoising, 0 = keep noise and grain",
               minimum=0.0, maximum=1.0, label="Denoise strength", step=0.05),
        Option("tile", 0, "input pixels per tile side (0: the model's default); smaller uses less memory",
               minimum=0, maximum=4096, label="Tile size (input px, 0 = auto)"),
    ),
    max_side=1024,
    run=run,
    preload=lambda model: sr.load(model),
)
