"""Where models run and how many stay loaded: device choice, one shared instance per (model, device), timing."""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import cancel

_DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
_preference = "auto"


def set_device_preference(preference: str) -> None:
    global _preference
    if preference not in _DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(_DEVICE_CHOICES)}; got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here.")
    if preference == "mps" and not _mps_available():
        raise ValueError("--device mps was asked for, but this PyTorch has no usable Apple MPS device.")
    _preference = preference


def device() -> torch.device:
    """The device every model uses: the preference, or CUDA, then MPS, then CPU."""
    if _preference != "auto":
        return torch.device(_preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def half_precision(dev: torch.device) -> bool:
    """fp16 only on CUDA: CPU half is slow or unsupported, and MPS half is not reliable for every op."""
    return dev.type == "cuda" and os.environ.get("CVPG_FP32", "") == ""


def describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return dev.type


class ModelCache:
    """One loaded instance per key, shared by every user; least recently used models are dropped past `capacity`.

    Each key has its own lock, so two users asking for the same model wait for one load, while other models load
    in parallel.
    """

    def __init__(self, capacity: int = 6):
        self.capacity = capacity
        self._models: OrderedDict[tuple, object] = OrderedDict()
        self._guard = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}

    def get(self, key: tuple, loader: Callable[[], object]):
        with self._guard:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._models:
                    return self._models[key]
            model = loader()
            with self._guard:
                self._models[key] = model
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            return model

    def __contains__(self, key: tuple) -> bool:
        with self._guard:
            return key in self._models

    def clear(self) -> None:
        with self._guard:
            self._models.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


MODELS = ModelCache(int(os.environ.get("CVPG_MAX_MODELS", "6")))


def prepare(net: torch.nn.Module, dev: torch.device, half: bool = True) -> torch.nn.Module:
    """Ready a network for inference: eval mode, no gradients, on `dev`; channels-last and fp16 on CUDA.

    `half=False` keeps fp32 for networks that are not stable in half precision.
    """
    net.eval().requires_grad_(False).to(dev)
    cancel.watch(net)  # a server job's Stop, hang-up or time limit takes effect between layers, for every model
    if dev.type == "cuda":
        net.to(memory_format=torch.channels_last)  # faster convolutions on tensor cores
    if half and half_precision(dev):
        net.half()
    return net


def model_key(family: str, name: str, dev: torch.device, checkpoint_file=None, *extra) -> tuple:
    """The MODELS key of a network: family, model, weights (a user's file by its content hash), device, extras."""
    from . import weights  # local: weights imports nothing from here, keep it that way for the layer order

    content = weights.sha256_of(Path(checkpoint_file)) if checkpoint_file is not None else None
    return (family, name, content, str(dev), *extra)


def cached_model(family: str, name: str, dev: torch.device | None, checkpoint_file, loader: Callable[[], object],
                 *extra) -> object:
    """The shared instance of a network, loaded once by `loader()` (which prepares it for `dev`)."""
    dev = dev or device()
    return MODELS.get(model_key(family, name, dev, checkpoint_file, *extra), loader)


def use_threads(count: int) -> None:
    """torch's intra-op threads for the calling thread, set only when they differ (setting them is not free)."""
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as a float32 numpy array on the CPU (fp16 CUDA outputs included)."""
    return tensor.detach().float().cpu().numpy()


@contextmanager
def stopwatch(dev: torch.device | None = None) -> Iterator[dict]:
    """Measure wall time in milliseconds; waits for queued GPU work so the number is the real one."""
    result = {"ms": 0.0}
    _sync(dev)
    start = time.perf_counter()
    try:
        yield result
    finally:
        _sync(dev)
        result["ms"] = (time.perf_counter() - start) * 1000.0


def _sync(dev: torch.device | None) -> None:
    if dev is not None and dev.type == "cuda":
        torch.cuda.synchronize(dev)


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
