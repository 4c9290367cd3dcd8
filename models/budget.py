"""Work budgets: how much one server request may ask of this machine, so that nobody waits minutes behind another.

Three limits, all for the device the models run on:
- time: a job computes for at most `MAX_RUN_S` seconds (env CVPG_MAX_RUN_S, default 120). `models.cancel` stops it
  between steps, and earlier when its first steps show it cannot finish in time (how video length is bounded);
- work: before a run, the input's megapixels x the model's cost are compared with what this device computes in a
  share of that time (its speed is measured once, with one convolution). A larger input is scaled down to fit and
  the note says so;
- steps: a job can only stop between steps, and one forward pass of a super-resolution network through a whole
  photo takes minutes on a slow CPU (its last layers run at the output size). Where a model works in tiles, the
  tiles are made small enough to take about `STEP_S` seconds each, so a Stop or a hang-up takes effect that soon.
Only models that can take minutes at their tab's size limit have a cost here; the tab's `max_side` and the time limit
bound the others. The command line and batch runs have no budget: there the person chose to wait.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import torch

from . import runtime

MAX_RUN_S = float(os.environ.get("CVPG_MAX_RUN_S", "120"))
SHARE = 0.5  # a run is planned for half the limit: estimates are rough, and two jobs may share the device
MIN_SIDE = 32
STEP_S = 3.0  # seconds a tile should take, so that a stopped job ends about this soon
MAX_TILE = 256  # tiles are only ever made smaller than this: a fast device keeps the model's own tile size
MIN_TILE = 64  # smaller tiles spend most of their time on the context pixels around them


@dataclass(frozen=True)
class Cost:
    """A model's work per input megapixel, in billions of multiply-accumulates of the probe convolution (measured:
    seconds per megapixel x the probe's GMAC/s on the same CPU, so slow layers such as SRGAN's 9x9 output
    convolution at full output size count as what they cost, not as their MACs)."""

    gmac_per_mp: float
    check_scale: int = 1  # in the tab's "check" mode the model sees the input shrunk by this factor a side
    tile_option: str | None = None  # the tab's option that sets the tile side (0: the model's own)


# Super-resolution runs its whole network at the input size and more (x2 to x8 upsampling): the one tab whose
# models take minutes on a CPU at the tab's 1024 px. Measured on a 2-core CPU, 128x128 inputs.
COSTS: dict[tuple[str, str], Cost] = {
    ("super-resolution", model): Cost(gmac_per_mp, scale, "tile")
    for model, gmac_per_mp, scale in (("srgan-x2", 1_800, 2), ("srgan-x4", 6_100, 4), ("srgan-x8", 27_000, 8),
                                      ("realesrgan-x4plus", 30_000, 4), ("realesrgan-x4plus-anime-6b", 9_200, 4),
                                      ("realesr-general-x4v3", 1_800, 4), ("realesr-animevideov3", 1_000, 4))
}


@dataclass(frozen=True)
class Fit:
    max_side: int | None  # the input's longest side that fits the budget (None: as it is)
    estimate_s: float  # what the input as given would take
    planned_s: float  # what the budget plans for
    options: dict  # option values the budget sets (a smaller tile), when the person left them on auto


def estimate_s(task_id: str, model: str, size: tuple[int, int], options: dict | None = None,
               device: torch.device | None = None) -> float | None:
    """Seconds `model` would compute on an input of `size` (width, height) here; None when it has no cost."""
    cost = COSTS.get((task_id, model))
    if cost is None:
        return None
    pixels = size[0] * size[1] / (cost.check_scale ** 2 if (options or {}).get("mode") == "check" else 1)
    return pixels / 1e6 * cost.gmac_per_mp / device_speed(device or runtime.device())


def fit(task_id: str, model: str, size: tuple[int, int], options: dict | None = None,
        device: torch.device | None = None) -> Fit | None:
    """How to run an input within the budget: how far to scale it down, which options to set; None: as it is."""
    options = options or {}
    device = device or runtime.device()
    seconds = estimate_s(task_id, model, size, options, device)
    if seconds is None:
        return None
    cost, planned = COSTS[(task_id, model)], MAX_RUN_S * SHARE
    side = max(MIN_SIDE, int(max(size) * math.sqrt(planned / seconds))) if seconds > planned else None
    changed = {}
    if cost.tile_option and not options.get(cost.tile_option):
        tile = int(math.sqrt(STEP_S * device_speed(device) / cost.gmac_per_mp * 1e6))
        if tile < MAX_TILE and tile < max(size) / (cost.check_scale if options.get("mode") == "check" else 1):
            changed[cost.tile_option] = max(MIN_TILE, tile // 16 * 16)
    return Fit(side, seconds, planned, changed) if side or changed else None


@functools.lru_cache(maxsize=None)
def device_speed(device: torch.device) -> float:
    """GMAC/s of one 64-channel 3x3 convolution on `device` in its model precision (best of three, measured once)."""
    dtype = torch.float16 if runtime.half_precision(device) else torch.float32
    side = 128 if device.type == "cpu" else 512
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device=device, dtype=dtype)
    x = torch.zeros(1, 64, side, side, device=device, dtype=dtype)
    best = math.inf
    with torch.inference_mode():
        for attempt in range(4):  # the first is a warm-up
            with runtime.stopwatch(device) as took:
                conv(x)
            if attempt:
                best = min(best, took["ms"] / 1000)
    return 64 * 64 * 9 * side * side / 1e9 / max(best, 1e-6)


def reason(fitted: Fit, model: str, device: torch.device | None = None) -> str:
    """Why an input was scaled down, for people."""
    where = runtime.describe(device or runtime.device())
    return (f"{model} would have computed for about {fitted.estimate_s:.0f} s on this server's {where}, and a run "
            f"may take at most {MAX_RUN_S:.0f} s (planned: {fitted.planned_s:.0f} s)")
