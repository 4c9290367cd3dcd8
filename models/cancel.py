"""Cooperative cancellation: long loops ask `check()` between steps whether their job should go on.

A server job (demos/_ui.py) runs inside `job(token)`; the model loops (super-resolution tiles, video frames, Gatys
steps) call `check(done, total, unit)` between steps. Outside a job (the command line, batch runs, tests) `check()`
does nothing: only the server's jobs are ever stopped, because only there does one person's run delay another's.

A token stops its job, by raising `Cancelled` at the next check, when
- nobody waits for the result any more: it was cancelled (the client left or pressed Stop), which the server's
  `abandoned()` probe tells;
- the job has computed for longer than its limit (time spent loading a model before the first step is not counted:
  a first download is shared by everyone after it);
- the steps done so far show that the rest would overrun the limit: a 3000-frame video at 0.4 s a frame is refused
  after a second or two, with the numbers, instead of after two minutes.
"""
from __future__ import annotations

import contextvars
import ctypes
import ctypes.util
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

MIN_ESTIMATE_S = 1.0  # a projection waits until this much of the loop is measured: first steps are often slower
_ADVICE = {
    "frame": "Trim the video, or lower the working resolution.",
    "tile": "Try a smaller image or a lighter model.",
    "step": "Choose fewer steps or a smaller working size.",
    None: "Try a smaller input or a lighter model.",
}


class Cancelled(Exception):
    """A job stopped on purpose. `reason`: "abandoned" (nobody waits for it) or "time" (over its limit)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class Token:
    """One job's stop signal: `cancel()` it, give it a time limit, or an `abandoned()` probe polled at each check."""

    def __init__(self, limit_s: float | None = None, abandoned: Callable[[], bool] | None = None):
        self.limit_s = limit_s
        self.abandoned = abandoned
        self._stopped: str | None = None
        self._clock: float | None = None  # when the first step began
        self._loop: tuple[int, int, float] | None = None  # (total, done, time) when the measured loop began

    def cancel(self, message: str = "Stopped.") -> None:
        self._stopped = message

    @property
    def cancelled(self) -> bool:
        return self._stopped is not None

    def check(self, done: int | None = None, total: int | None = None, unit: str = "step") -> None:
        if self._stopped is None and self.abandoned is not None and self.abandoned():
            self._stopped = "Stopped: nobody is waiting for this result any more."
        if self._stopped is not None:
            raise Cancelled(self._stopped, "abandoned")
        now = time.monotonic()
        self._clock = now if self._clock is None else self._clock
        if self.limit_s is None:
            return
        spent = now - self._clock
        looping = done is not None and bool(total)
        advice = _ADVICE.get(unit if looping else None, _ADVICE[None])
        if spent > self.limit_s:
            where = f", {done} of {total} {unit}s done" if looping else ""
            raise Cancelled(f"Stopped after {spent:.0f} s{where}: a run may compute for at most {self.limit_s:.0f} s "
                            f"on this server. {advice}", "time")
        if not looping:
            return
        if self._loop is None or self._loop[0] != total or done < self._loop[1]:  # a new loop: measure from here
            self._loop = (total, done, now)
            return
        _, first, began = self._loop
        if done > first and now - began >= MIN_ESTIMATE_S:
            per_step = (now - began) / (done - first)
            if spent + per_step * (total - done) > self.limit_s:
                fit = max(int(self.limit_s / per_step), 1)
                raise Cancelled(
                    f"Stopped after {spent:.0f} s, {done} of {total} {unit}s done: at {per_step:.2g} s a {unit}, all "
                    f"{total} would take about {per_step * total:.0f} s, and a run may compute for at most "
                    f"{self.limit_s:.0f} s on this server (about {fit} {unit}s). {advice}", "time")


_current: contextvars.ContextVar[Token | None] = contextvars.ContextVar("cvpg_job", default=None)


@contextmanager
def job(token: Token) -> Iterator[Token]:
    """Make `token` the current job's for the code inside (this thread or task only)."""
    reset = _current.set(token)
    try:
        yield token
    finally:
        _current.reset(reset)


def current() -> Token | None:
    return _current.get()


def check(done: int | None = None, total: int | None = None, unit: str = "step") -> None:
    """Between two steps of a long loop: raise `Cancelled` if the current job should stop (no job: nothing)."""
    token = _current.get()
    if token is not None:
        token.check(done, total, unit)


def watch(net) -> None:
    """Also check between the layers of `net` (a torch module): a forward pre-hook on each of its modules, so one
    long forward pass (a whole photo through a super-resolution network on a CPU) stops within a layer's time.

    The hooks stay on the shared, cached model and cost about a microsecond a layer; each call checks the job of the
    thread that runs it, and does nothing outside a job. Watching a module twice adds nothing."""
    if getattr(net, "_cvpg_watched", False):
        return
    for module in net.modules():
        module.register_forward_pre_hook(_check_between_layers)
    net._cvpg_watched = True


def _check_between_layers(module, args) -> None:
    check()


def release_memory() -> None:
    """After a big or stopped job: hand freed memory back to the system (the CUDA cache; glibc's free heap pages,
    which it otherwise keeps for the process, so the server's memory would stay at its highest point)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass
