"""Benchmark cases: for a tab, `benchmarks/cases/<tab module>.py` may name the models to measure (`MODELS`) and build
each one's three levels (`case(model) -> Case`). A tab without such a file is still measured: its `run()` on a photo
with the tab's defaults (bench.py derives the list of tabs from models.tasks.TABS)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

RANDOM = "random (official file not on this machine)"


@dataclass
class Case:
    """One benchmark row: the network, its weights' origin, its input size, and the three levels to time."""

    net: object  # the loaded network, or None (bicubic)
    weights: str
    input_size: tuple[int, int]
    forward: Callable[[], object] | None
    predict: Callable[[], object] | None  # None: not meaningful (e.g. with random weights)
    run: Callable[[], object] | None


def photo(width: int, height: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def official_or_random(load: Callable, build: Callable, cache_key: tuple):
    """Official weights if present; else a random network, cached under the official key so `run` uses it too."""
    from models import runtime, weights

    try:
        return load(), "official"
    except weights.WeightsError:
        net = runtime.prepare(build(), runtime.device())
        runtime.MODELS.get(cache_key, lambda: net)
        return net, RANDOM


def forward_of(net, *inputs) -> Callable[[], object]:
    """The bare network on ready tensors, as inference runs it."""
    import torch

    def forward():
        with torch.inference_mode():
            return net(*inputs)

    return forward


def generic(task, model: str, size: tuple[int, int] = (640, 480)) -> Case:
    """Any tab: only its whole `run()` on a photo with the tab's defaults."""
    from models import images

    loaded = images.load(photo(*size))
    return Case(None, "as the tab loads it", size, None, None,
                lambda: task.run(loaded, model=model, **task.defaults()))
