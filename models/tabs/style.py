"""The style transfer tab: fast neural style, AdaIN and Gatys behind one Task.

`run()` is the one-shot pipeline (the UI's button for fast styles and AdaIN, and `python app.py predict style`);
`stream()` is Gatys step by step: it yields a TaskOutput every few optimiser steps (the current image, the loss
history in the record) and its last one, when the steps run out or `should_stop()` says so, shows the best image
so far. The families are models/fast_style.py, models/adain.py and models/gatys.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

# in this order, the style checkpoints register (and `python app.py models` lists them) as they always have
from .. import fast_style, gatys, adain  # noqa: I001
from .. import runtime, weights
from ..images import LoadedImage, fit_within, with_alpha
from ..style_colors import match_colors
from ..style_images import BUILTIN_STYLES, DEFAULT_STYLE, resolve_style
from ..style_tensors import check_min_side, first_parameter
from ..tasks import Option, Task, TaskOutput
from ..vgg_features import feature_extractor, gram_image

TASK_ID = "style"
FAST_STYLES = fast_style.FAST_STYLES
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
# Working size (longest side, px) when `max_side` is 0. On a GPU, each method's reference setting: pytorch/examples
# stylises the photo as it is (up to the tab's limit), AdaIN's test.py works at 512, the PyTorch Gatys tutorial at
# 512. On a CPU a lighter one for the one-pass networks' cost and Gatys' hundreds of VGG passes (the tutorial itself
# drops to 128 there). The least each method can work with follows.
GPU_WORKING_SIDE = {"fast": 2048, "adain": adain.WORKING_SIDE, "gatys": 512}
CPU_WORKING_SIDE = {"fast": fast_style.WORKING_SIDE, "adain": adain.WORKING_SIDE, "gatys": gatys.WORKING_SIDE}
MIN_SIDE = {"fast": fast_style.MIN_SIDE, "adain": adain.MIN_SIDE, "gatys": gatys.MIN_SIDE}
STREAM_EVERY = 5  # optimiser steps between two of stream()'s reports
LOSS_NAMES = ("content", "style", "total")


def _default_side_note(kind: str, on_gpu: bool) -> str:
    if GPU_WORKING_SIDE[kind] == CPU_WORKING_SIDE[kind]:
        return ", the method's default"
    return ", the GPU default" if on_gpu else f", the CPU default; {GPU_WORKING_SIDE[kind]} px on a GPU"


def model_kind(model_name: str) -> str:
    if model_name in FAST_STYLES:
        return "fast"
    if model_name in ("adain", "gatys"):
        return model_name
    raise ValueError(f"unknown style model {model_name!r}; valid: {', '.join(MODEL_NAMES)}")


def load(model_name: str, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> torch.nn.Module:
    """TransformerNet (fast styles), AdaIN, or VGGFeatures (gatys) with official weights, cached per device.

    `checkpoint_file`: a user's TransformerNet trained with pytorch/examples (any fast-style model name), or a user's
    AdaIN decoder trained with naoto0804/pytorch-AdaIN (model "adain").
    """
    kind = model_kind(model_name)
    if kind == "fast":
        return fast_style.load(model_name, device, checkpoint_file, progress)
    if kind == "adain":
        return adain.load(device, checkpoint_file, progress)
    if checkpoint_file is not None:
        raise ValueError("gatys optimises the image itself against VGG-19; it takes no checkpoint.")
    return gatys.load(device, progress)


def _checkpoint_label(model: str) -> str:
    kind = model_kind(model)
    if kind == "fast":
        return f"{fast_style.ARCHIVE.name}/{model}.pth"
    return "adain-vgg-normalised + adain-decoder" if kind == "adain" else "vgg19-imagenet"


@dataclass
class _Prepared:
    """What every method starts from: the network, the content (and style) at the working size, the record so far."""

    net: torch.nn.Module
    content: np.ndarray
    style: np.ndarray | None  # adain/gatys: scaled, recoloured when preserving colour
    record: dict
    images: dict[str, np.ndarray]
    notes: list[str]
    load_ms: float


def _prepare(loaded: LoadedImage, model: str, checkpoint: str | None, progress, style, preserve_color: bool,
             max_side: int, gram_layer: str) -> _Prepared:
    kind = model_kind(model)
    device = runtime.device()
    on_gpu = device.type != "cpu"
    side = max_side or (GPU_WORKING_SIDE if on_gpu else CPU_WORKING_SIDE)[kind]
    content, scaled_from = fit_within(loaded.rgb, side)
    check_min_side(content, MIN_SIDE[kind], kind)
    notes = list(loaded.notes)
    if scaled_from is not None:
        notes.append(f"stylised at {content.shape[1]}x{content.shape[0]} (working size {side} px"
                     f"{'' if max_side else _default_side_note(kind, on_gpu)})")
    style_rgb, style_label = resolve_style(style) if kind != "fast" else (None, None)  # a bad file fails first
    with runtime.stopwatch(device) as load_time:
        net = load(model, device, checkpoint, progress)
    record = {"task": TASK_ID, "model": model, "checkpoint": checkpoint or _checkpoint_label(model),
              "device": runtime.describe(device), "half_precision": first_parameter(net).dtype == torch.float16,
              "input_size": list(loaded.original_size), "working_size": [content.shape[1], content.shape[0]]}
    if kind == "fast":
        record["preserve_color"] = preserve_color
    else:
        style_rgb = fit_within(style_rgb, side)[0]
        if preserve_color:
            style_rgb = match_colors(style_rgb, content)
        check_min_side(style_rgb, MIN_SIDE[kind], kind, "style image")
        record.update(style=style_label, style_size=[style_rgb.shape[1], style_rgb.shape[0]],
                      preserve_color=preserve_color, gram_layer=gram_layer)
    return _Prepared(net, content, style_rgb, record, {"content": content}, notes, load_time["ms"])


def _gram_view(prepared: _Prepared, gram_layer: str) -> dict[str, np.ndarray]:
    """The style as used and its Gram matrix picture (the teaching view of adain and gatys)."""
    return {"style": prepared.style, "gram": gram_image(feature_extractor(prepared.net), prepared.style, gram_layer)}


def _gatys_record(report: gatys.GatysProgress, content_weight, style_weight, content_layers, style_layers, optimizer,
                  init) -> dict:
    return {"content_weight": content_weight, "style_weight": style_weight,
            "content_layers": list(gatys.parse_layers(content_layers)),
            "style_layers": list(gatys.parse_layers(style_layers)), "optimizer": optimizer, "init": init,
            **report.to_record()}


def run(loaded: LoadedImage, model: str = DEFAULT_MODEL, checkpoint: str | None = None,
        progress: weights.ProgressCallback | None = None, style="", alpha: float = 1.0,
        preserve_color: bool = False, steps: int = 100, content_weight: float = 1.0, style_weight: float = 1e5,
        content_layers: str = ",".join(gatys.DEFAULT_CONTENT_LAYERS),
        style_layers: str = ",".join(gatys.DEFAULT_STYLE_LAYERS), optimizer: str = "lbfgs", init: str = "content",
        max_side: int = 0, gram_layer: str = "relu2_1") -> TaskOutput:
    """Stylise one image: a fast-style model, AdaIN with `style`, or `steps` of Gatys optimisation with `style`.

    Images: "stylized" (working size, the input's transparency re-attached), "content" (the input at working size,
    for a before/after slider) and, for adain/gatys, "style" (as used: scaled, recoloured when preserving colour)
    and "gram" (the style's Gram matrix at `gram_layer`).
    """
    kind = model_kind(model)
    device = runtime.device()
    prepared = _prepare(loaded, model, checkpoint, progress, style, preserve_color, max_side, gram_layer)
    net, content, record, result_images = prepared.net, prepared.content, prepared.record, prepared.images
    detail = ""
    with runtime.stopwatch(device) as model_time:
        if kind == "fast":
            stylised = fast_style.predict(net, content, preserve_color=preserve_color)
        elif kind == "adain":
            stylised = adain.stylize_adain(net, content, prepared.style, alpha)
            record["alpha"] = alpha
            detail = f", alpha {alpha:g}"
        else:
            final = None
            for final in gatys.gatys_steps(
                    content, prepared.style, net, steps=steps, content_weight=content_weight,
                    style_weight=style_weight, content_layers=content_layers, style_layers=style_layers,
                    optimizer=optimizer, init=init, max_side=0, every=max(steps, 1), progress=progress):
                pass
            stylised = final.best_image if final.diverged else final.image
            record["gatys"] = _gatys_record(final, content_weight, style_weight, content_layers, style_layers,
                                            optimizer, init)
            first, last = final.history[0][3], final.history[-1][3]
            detail = f", {final.step} steps, loss {first:.3g} -> {last:.3g}"
    if kind != "fast":
        result_images.update(_gram_view(prepared, gram_layer))
    result_images["stylized"] = with_alpha(stylised, loaded.alpha)  # resized to the working size
    record.update(notes=prepared.notes, ms={"load": round(prepared.load_ms, 1), "model": round(model_time["ms"], 1)})
    summary = (f"{model} on {record['device']}: {content.shape[1]}x{content.shape[0]}, "
               f"{model_time['ms']:.0f} ms{detail}")
    return TaskOutput(result_images, record, summary)


def stream(loaded: LoadedImage, model: str = "gatys", checkpoint: str | None = None,
           progress: weights.ProgressCallback | None = None, should_stop: Callable[[], bool] | None = None,
           **options) -> Iterator[TaskOutput]:
    """Gatys as it goes: a TaskOutput every STREAM_EVERY steps, with `run()`'s images and record.

    Each report's "stylized" is the current image; the last report's (steps done, `should_stop()` true, or a
    diverged loss) is the best image so far, which is what a Stop keeps. The record's "gatys" holds the loss history
    of every step so far and "done". Closing the generator stops it as well. One-shot models yield `run()` once.
    """
    if model_kind(model) != "gatys":
        yield run(loaded, model, checkpoint, progress, **options)
        return
    values = TASK.defaults() | options
    prepared = _prepare(loaded, model, checkpoint, progress, values["style"], values["preserve_color"],
                        values["max_side"], values["gram_layer"])
    view = _gram_view(prepared, values["gram_layer"])
    reports = gatys.gatys_steps(
        prepared.content, prepared.style, prepared.net, steps=values["steps"],
        content_weight=values["content_weight"], style_weight=values["style_weight"],
        content_layers=values["content_layers"], style_layers=values["style_layers"], optimizer=values["optimizer"],
        init=values["init"], max_side=0, every=STREAM_EVERY, should_stop=should_stop, progress=progress)
    for report in reports:
        shown = report.best_image if report.done else report.image
        gatys_record = _gatys_record(report, values["content_weight"], values["style_weight"],
                                     values["content_layers"], values["style_layers"], values["optimizer"],
                                     values["init"])
        record = {**prepared.record, "gatys": {**gatys_record, "done": report.done}, "notes": prepared.notes,
                  "ms": {"load": round(prepared.load_ms, 1), "model": round(report.seconds * 1000, 1)}}
        summary = (f"gatys on {record['device']}: step {report.step} of {report.steps}, loss "
                   f"{report.total_loss:.3g}" + (f", best at step {report.best_step}" if report.done else ""))
        yield TaskOutput({**prepared.images, **view, "stylized": with_alpha(shown, loaded.alpha)}, record, summary)


def loss_plot_rows(history: list[dict]) -> list[tuple[int, str, float]]:
    """A record's Gatys loss history as a plot's long table: (step, loss name, log10 of the loss) per step and loss.

    The losses fall over orders of magnitude, so a log scale shows the whole curve; 1e-12 keeps log10 finite."""
    return [(entry["step"], name, math.log10(max(entry[name], 1e-12))) for entry in history for name in LOSS_NAMES]


_GRAM_LAYERS = tuple(f"{kind}{block}_1" for block in range(1, 5) for kind in ("conv", "relu"))

TASK = Task(
    id=TASK_ID,
    title="Style transfer",
    models=MODEL_NAMES,
    default_model=DEFAULT_MODEL,
    options=(
        Option("style", "", "adain/gatys: style image file, or a built-in pattern "
               f"({', '.join(BUILTIN_STYLES)}); empty: {DEFAULT_STYLE}", label="Style image (AdaIN, Gatys)"),
        Option("alpha", 1.0, "adain: style strength (0 = the content through the decoder, 1 = full style)",
               minimum=0.0, maximum=1.0, label="Style strength alpha (AdaIN)", step=0.05),
        Option("preserve_color", False, "keep the content's colours (adain/gatys: recolour the style image first; "
               "fast styles: keep the content's chroma)", label="Keep the content's colours"),
        Option("steps", 100, "gatys: optimiser steps", minimum=1, maximum=2000, label="Steps"),
        Option("content_weight", 1.0, "gatys: weight of the content (feature) loss", minimum=0.0,
               label="Content weight"),
        Option("style_weight", 1e5, "gatys: weight of the style (Gram matrix) loss", minimum=0.0,
               label="Style weight"),
        Option("content_layers", ",".join(gatys.DEFAULT_CONTENT_LAYERS), "gatys: VGG-19 layers for the content loss",
               label="Content layers (VGG-19)"),
        Option("style_layers", ",".join(gatys.DEFAULT_STYLE_LAYERS), "gatys: VGG-19 layers for the style loss",
               label="Style layers (VGG-19)"),
        Option("optimizer", "lbfgs", "gatys: optimiser of the pixels", choices=gatys.OPTIMIZERS, label="Optimiser"),
        Option("init", "content", "gatys: start from the content image or from noise", choices=("content", "noise"),
               label="Start from"),
        Option("max_side", 0, "working size, longest side in px (0: each method's default; on a GPU fast styles "
               f"{GPU_WORKING_SIDE['fast']}, adain 512, gatys 512; on a CPU {CPU_WORKING_SIDE['fast']}, "
               f"{CPU_WORKING_SIDE['adain']}, {CPU_WORKING_SIDE['gatys']})",
               minimum=0, maximum=2048, label="Working size (0 = the method's default)", step=32),
        Option("gram_layer", "relu2_1", "adain/gatys: layer of the Gram matrix picture of the style",
               choices=_GRAM_LAYERS, label="VGG layer of the Gram matrix view"),
    ),
    max_side=2048,
    run=run,
    preload=lambda model: load(model),
    stream=stream,
)
