"""Gatys et al. 2016: optimise the pixels themselves against VGG-19 content and style losses.

`gatys_steps()` is a generator that reports every few steps, so a UI can stream the image and the loss curves and stop
early; every report carries the best image seen so far. The VGG-19 is torchvision's ImageNet checkpoint (features
only), fetched through the weights manager so the offline rule and the hash checks hold.
"""
from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VGG19_Weights

from . import cancel, runtime, weights
from .images import check_rgb, fit_within
from .style_colors import match_colors
from .style_tensors import check_min_side, first_parameter, to_tensor, to_uint8
from .vgg_features import VGGFeatures, gram_matrix, vgg19_layers

WORKING_SIDE = 256  # the default longest side: every step is a VGG forward and backward pass
MIN_SIDE = 32  # VGG pools four times before relu5_1 and needs a few feature pixels left

# torchvision's own entry: the URL, and with it the file name that carries the first hex digits of its SHA-256.
_VGG19 = VGG19_Weights.IMAGENET1K_V1  # only the URL: the file goes through our weights manager (offline rule)
VGG19_FILE = _VGG19.url.rsplit("/", 1)[-1]
VGG19_HASH_PREFIX = re.fullmatch(r".*-([0-9a-f]{8,})\.pth", VGG19_FILE).group(1)
CHECKPOINT = weights.Checkpoint(
    name="vgg19-imagenet", task="style", url=_VGG19.url, filename=VGG19_FILE, sha256=None, bytes=None,
    license="BSD-3-Clause (torchvision; ImageNet-trained)",
    source="https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg19.html",
    notes=f"torchvision VGG19_Weights.IMAGENET1K_V1 ({_VGG19.meta.get('_file_size', '?')} MB); only features.* "
    "is used. "
    "torchvision publishes the first 8 hex digits of the SHA-256 in the file name; they are checked on load",
    # The full SHA-256 is the first download's; the published prefix is checked on every load (`load`).
    hash_origin="first-download",
)
weights.register(CHECKPOINT)
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
        weights.strict_load(features, features_state, f"torchvision's VGG-19 features ({VGG19_FILE})")
    return VGGFeatures(features, VGG19_LAYERS, imagenet_normalize=True)


def check_hash_prefix(path: Path) -> None:
    """torchvision names its files `<name>-<first 8+ hex digits of the SHA-256>.pth`; hold the file to that."""
    actual = weights.sha256_of(path)
    if not actual.startswith(VGG19_HASH_PREFIX):
        raise weights.ChecksumError(f"{path} does not match torchvision's published hash prefix {VGG19_HASH_PREFIX} "
                                    f"(SHA-256 {actual}). Delete it and download it again from {_VGG19.url}")


def load(device: torch.device | None = None, progress: weights.ProgressCallback | None = None) -> VGGFeatures:
    """torchvision's VGG-19 features with the official weights, one shared instance per device, in float32 (the
    optimisation's gradients need it)."""
    device = device or runtime.device()

    def build() -> VGGFeatures:
        path = weights.fetch(CHECKPOINT, progress)
        check_hash_prefix(path)
        return runtime.prepare(gatys_vgg(weights.load_state_dict(path)), device, half=False)

    return runtime.cached_model("gatys", "vgg19", device, None, build)


# --- The optimisation, as a generator ---------------------------------------------------------------------------------

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
                learning_rate: float | None = None, init: str = "content", max_side: int = WORKING_SIDE,
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
    check_rgb(content, "Gatys")
    check_rgb(style, "Gatys's style image")
    content_layers, style_layers = parse_layers(content_layers), parse_layers(style_layers)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise'; got {init!r}")
    if steps < 0:
        raise ValueError(f"steps must be 0 or more; got {steps}")
    started = time.perf_counter()
    vgg = vgg if vgg is not None else load(progress=progress)
    device = first_parameter(vgg).device
    if max_side:
        content, style = fit_within(content, max_side)[0], fit_within(style, max_side)[0]
    check_min_side(content, MIN_SIDE, "gatys")
    check_min_side(style, MIN_SIDE, "gatys", "style image")
    if preserve_color:
        style = match_colors(style, content)

    with _autograd(False):
        content_t = to_tensor(content, device, torch.float32, 1.0)
        content_targets = {name: value.detach() for name, value in vgg(content_t, content_layers).items()}
        style_targets = {name: gram_matrix(value).detach()
                         for name, value in vgg(to_tensor(style, device, torch.float32, 1.0), style_layers).items()}
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
        cancel.check(step, steps, "step")
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
                step, steps, evaluated["content"], evaluated["style"], total, to_uint8(evaluated["image"], 1.0),
                to_uint8(best["image"], 1.0), best["step"], best["loss"], list(history),
                time.perf_counter() - started, done=done, stopped=stopping and step < steps, diverged=diverged)
            yield report
            if done:
                return report
        with _autograd(False):
            x.clamp_(0.0, 1.0)  # keep pixels displayable; the optimiser does not know the box
    raise AssertionError("unreachable: the loop returns at step == steps")

