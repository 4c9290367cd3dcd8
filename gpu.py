"""ZeroGPU on Hugging Face Spaces: the GPU exists only inside functions decorated with `spaces.GPU`.

`gpu_call(duration)` is that decorator, and `on_gpu(task_id, fn, kind)` gives the serving side a tab's model call
(`Task.run`, `run_video`, `stream`, or a live frame's `run`) wrapped with the duration that fits the tab. Off a
ZeroGPU Space both hand back the very function they were given (`spaces.GPU` is inert there, and without the
`spaces` package nothing is wrapped at all), so nothing changes on a laptop, a GPU server or in the tests.

On a ZeroGPU Space (the Space sets SPACES_ZERO_GPU=true, the variable the `spaces` package itself reads):
- import this module before anything touches CUDA: `spaces` patches torch so that models loaded at start-up
  (`--preload`) go to CUDA "virtually" and really move onto the GPU inside each decorated call;
- the call runs in a worker process, so its arguments are pickled: callbacks that cannot be (a progress lambda, a
  Stop flag's bound method) are replaced by None, so those runs show no progress bar and Gatys' Stop waits for the
  last step (Gradio's own cancel still works);
- `spaces` reports its decorated functions when Gradio launches: `register(tab_ids)` makes them in advance
  (app.build_app calls it), later `on_gpu` calls return the same wrappers.
"""
from __future__ import annotations

import functools
import inspect
import logging
import pickle
from typing import Callable

try:
    import spaces
    from spaces.config import Config as _SpacesConfig
except ImportError:  # requirements.txt pins it; without it the app simply never runs on ZeroGPU
    spaces = None
    _SpacesConfig = None

log = logging.getLogger(__name__)

KINDS = ("run", "live", "video", "stream")
# Seconds of GPU a still image may take, model load included (a shorter request gets a GPU sooner on ZeroGPU).
RUN_SECONDS = {"instance": 40, "panoptic": 60, "landmarks": 60, "keypoint-detectors": 40, "super-resolution": 60,
               "pix2pix": 30, "cyclegan": 30, "style": 40, "face-deid": 30}
DEFAULT_RUN_SECONDS = 60  # spaces' own default, for a tab added later
LIVE_SECONDS = 10  # one webcam frame: each asks for a GPU slot of its own, so it must be short
VIDEO_BASE_SECONDS, VIDEO_SECONDS_PER_FRAME = 30, 0.08  # a clip: decoding, the model per frame, VP8 encoding
STREAM_BASE_SECONDS, STREAM_SECONDS_PER_STEP = 20, 0.15  # Gatys: the loss network's load, then each optimiser step
MAX_SECONDS = 300  # longer requests would exceed a free account's daily ZeroGPU quota up front

_wrapped: dict[tuple[str, str, Callable], Callable] = {}


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space, judged as the `spaces` package judges it (SPACES_ZERO_GPU=1/t/true)."""
    return _SpacesConfig is not None and bool(_SpacesConfig.zero_gpu)


def gpu_call(duration: int | Callable[..., int]) -> Callable[[Callable], Callable]:
    """`spaces.GPU(duration=...)`: on ZeroGPU the function gets a GPU for up to `duration` seconds (or what
    `duration(*args, **kwargs)` says); elsewhere the function is returned unchanged."""
    def decorate(fn: Callable) -> Callable:
        return fn if spaces is None else spaces.GPU(duration=duration)(fn)

    return decorate


def on_gpu(task_id: str, fn: Callable, kind: str = "run") -> Callable:
    """`fn` (a tab's run, run_video or stream) as it must be called on this machine: unchanged off ZeroGPU, under
    `spaces.GPU` with the tab's duration on it. `kind`: "run" (a still image), "live" (one webcam frame), "video"
    (run_video) or "stream" (Gatys' stream)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    key = (task_id, kind, fn)
    if key not in _wrapped:
        duration = duration_for(task_id, kind)
        _wrapped[key] = _across_processes(fn, duration) if on_zero_gpu() else gpu_call(duration)(fn)
    return _wrapped[key]


def register(tab_ids) -> None:
    """Make every GPU wrapper the chosen tabs will use now, before Gradio launches (ZeroGPU counts them then)."""
    from models import tasks

    for tab_id in tab_ids:
        task = tasks.get_task(tab_id)
        on_gpu(tab_id, task.run, "run")
        on_gpu(tab_id, task.run, "live")
        if task.run_video is not None:
            on_gpu(tab_id, task.run_video, "video")
        if task.stream is not None:
            on_gpu(tab_id, task.stream, "stream")


def duration_for(task_id: str, kind: str) -> int | Callable[..., int]:
    """The GPU seconds to ask for: a number, or for videos and streams a function of the call's own arguments."""
    run_seconds = RUN_SECONDS.get(task_id, DEFAULT_RUN_SECONDS)
    if kind == "live":
        return LIVE_SECONDS
    if kind == "video":
        return _video_seconds
    if kind == "stream":
        return functools.partial(_stream_seconds, run_seconds)
    return run_seconds


def _video_seconds(source, *args, **kwargs) -> int:
    from models import video

    try:
        frames = video.probe(source).frames
    except Exception:  # noqa: BLE001 (an unreadable clip fails inside the call, with the tab's own message)
        return VIDEO_BASE_SECONDS
    return _capped(VIDEO_BASE_SECONDS + VIDEO_SECONDS_PER_FRAME * frames)


def _stream_seconds(run_seconds: int, *args, **kwargs) -> int:
    steps = kwargs.get("steps")  # Gatys' optimiser steps; a one-shot model streams a single run
    return run_seconds if steps is None else _capped(STREAM_BASE_SECONDS + STREAM_SECONDS_PER_STEP * int(steps))


def _capped(seconds: float) -> int:
    return int(min(MAX_SECONDS, max(1, round(seconds))))


def _across_processes(fn: Callable, duration) -> Callable:
    """`fn` under spaces.GPU, called with only what can be pickled into the ZeroGPU worker.

    A fresh inner function per (tab, kind): spaces keeps one wrapper per function object, so the same `Task.run`
    under two durations (a still image, a live frame) needs two function objects.
    """
    if inspect.isgeneratorfunction(fn):
        def inner_stream(*args, **kwargs):
            yield from fn(*args, **kwargs)

        gpu_stream = gpu_call(duration)(functools.wraps(fn)(inner_stream))

        @functools.wraps(fn)
        def stream(*args, **kwargs):
            yield from gpu_stream(*args, **_picklable(kwargs))

        return stream

    def inner(*args, **kwargs):
        return fn(*args, **kwargs)

    gpu_fn = gpu_call(duration)(functools.wraps(fn)(inner))

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return gpu_fn(*args, **_picklable(kwargs))

    return call


def _picklable(kwargs: dict) -> dict:
    """Keyword arguments with every callable that cannot cross into the worker process replaced by None."""
    kept = {}
    for name, value in kwargs.items():
        if callable(value):
            try:
                pickle.dumps(value)
            except Exception:  # noqa: BLE001 (lambdas, closures, bound methods of locks all fail differently)
                log.info("ZeroGPU: %s cannot cross into the GPU worker; the call runs without it", name)
                value = None
        kept[name] = value
    return kept
