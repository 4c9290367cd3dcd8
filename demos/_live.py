"""Live webcam for any tab: frames stream through the tab's Task with the current widget values.

One helper wires every tab, so frame handling (decode, un-mirror, run, frames/s) exists once.
"""
from __future__ import annotations

import time
from typing import Callable

import gradio as gr

from models.tasks import Task, TaskOutput

from . import _ui

LIVE_MAX_SIDE = 640  # webcam frames are scaled to at most this before the tab's own limit


class LiveMeter:
    """Frames per second over the last frames of one viewer's stream (kept in gr.State)."""

    def __init__(self):
        self.stamps: list[float] = []

    def tick(self) -> float:
        now = time.perf_counter()
        self.stamps = [stamp for stamp in self.stamps if now - stamp < 3.0] + [now]
        if len(self.stamps) < 2:
            return 0.0
        return (len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0])


def wire_live(task: Task, panel: _ui.InputPanel, view: _ui.LiveView, model: gr.components.Component, options: dict,
              output: str | Callable[[TaskOutput], object], still_outputs: list, max_side: int = LIVE_MAX_SIDE,
              **overrides) -> None:
    """Stream webcam frames through `task.run` with the model and option widgets' current values.

    `output` names the image of the TaskOutput to show (or picks it); `overrides` fix options for live frames (e.g.
    no detection drawing). While Live is on, the still-image input and `still_outputs` make room for the camera.
    """
    meter = gr.State(None)  # a LiveMeter per viewer, made on the first frame (a callable default would be public API)
    pick = output if callable(output) else (lambda out: out.images[output])

    def toggle(on):
        return [gr.update(visible=not on), gr.update(visible=on), gr.update(visible=on), gr.update(visible=on)] + [
            gr.update(visible=not on) for _ in still_outputs]

    panel.live.change(toggle, panel.live, [panel.image, panel.camera, view.output, view.status, *still_outputs],
                      queue=False, api_visibility="private")

    @_ui.friendly_errors
    def on_frame(frame, mirror, state, model_name, **values):
        if frame is None:
            return gr.skip(), gr.skip(), state
        state = state or LiveMeter()
        loaded = _ui.load_input(frame, max_side, mirror_back=not mirror)
        settings = {**task.defaults(), **task.check_options(**values), **overrides}
        out = task.run(loaded, model=task.check_model(model_name), **settings)
        fps = state.tick()
        return pick(out), f"**{out.summary}** · {fps:.1f} frames/s" if fps else f"**{out.summary}**", state

    panel.camera.stream(
        on_frame, [panel.camera, panel.mirror, meter, model], [view.output, view.status, meter],
        inputs_kwargs=options, stream_every=_ui.LIVE_STREAM_EVERY, time_limit=_ui.LIVE_TIME_LIMIT,
        concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT, concurrency_id=_ui.MODEL_CONCURRENCY_ID,
        show_progress="hidden", api_visibility="private",
    )
