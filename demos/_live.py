"""Live webcam for any tab: frames stream through the tab's Task with the current widget values.

One helper wires every tab, so frame handling (decode, un-mirror, run, frames/s) exists once. What keeps a stream at
the speed of the model (benchmarks/live.py measures it in a real browser):
- the page sends a frame only while fewer than it wants are out: one, or two when a frame spends long outside the
  server (sent, returned, encoded by the page) so that the server finds the next one waiting (Gradio keeps a single
  waiting frame per stream: a newer one replaces it). Gradio's own check for that ("pending") never engages for a
  stream's input, so every tick captured, encoded and sent a frame, most of them to be thrown away;
- the camera is asked for the size the tab works at, so nothing larger is captured, encoded, sent and decoded;
- a live frame runs with one torch thread less than the machine has cores: the browser, the page's JPEG encoding
  and the server's own work need a core, and OpenMP threads that wait for a descheduled partner cost more than they
  bring (on two busy cores a 2-thread RetinaFace took 3.5 s a frame, a 1-thread one 0.25 s);
- results go back inline as JPEG data URLs: Gradio 6 writes every streamed image to a file in its cache that the page
  then downloads, a file and a request per frame;
- each frame carries its number and capture time (a JPEG comment the server echoes into the result), so the page
  shows the real frames/s and lag on the result, and says so plainly when the camera is denied or lost.
"""
from __future__ import annotations

import base64
import io
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import gradio as gr

import gpu
import numpy as np
from gradio.data_classes import Base64ImageData
from PIL import Image

from models import runtime
from models.tasks import Task, TaskOutput

from . import _ui

LIVE_MAX_SIDE = 640  # webcam frames are scaled to at most this before the tab's own limit
LIVE_SEND_EVERY = 0.02  # s: how often the page may send; it sends only while fewer frames than it wants are out
LIVE_MAX_IN_FLIGHT = 2  # one frame processing, one waiting: Gradio keeps one waiting frame, a newer one replaces it
LIVE_JPEG_QUALITY = 80
LIVE_STATUS_EVERY = 0.5  # s between updates of the text line under the result (the numbers on it are per frame)
STAMP = b"CVPG"  # the JPEG comment on a frame: "CVPG <number> <capture ms> <sent alone: 0|1>" (see _LIVE_JS)
_ONE_AT_A_TIME = threading.Lock()  # two viewers' frames alternate instead of splitting the cores between them


def live_threads() -> int:
    """Torch threads for a live frame: all cores but one (CVPG_LIVE_THREADS overrides)."""
    if os.environ.get("CVPG_LIVE_THREADS"):
        return max(1, int(os.environ["CVPG_LIVE_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


def _use_live_threads() -> None:
    # torch applies set_num_threads to the calling thread (others pick it up once, when they first compute), so it is
    # checked in the worker thread that runs the frame.
    runtime.use_threads(live_threads())


def camera_size(max_side: int) -> tuple[int, int]:
    """The 4:3 camera size a tab that works at `max_side` px asks for (larger frames would only be scaled down)."""
    width = min(max_side, LIVE_MAX_SIDE)
    return width, width * 3 // 4


def frame_stamp(frame) -> bytes | None:
    """The page's stamp on a webcam frame: the payload of the JPEG comment right after the start marker, or None."""
    if isinstance(frame, (bytes, bytearray)) and frame[2:4] == b"\xff\xfe":
        length = int.from_bytes(frame[4:6], "big")
        payload = bytes(frame[6:4 + length])
        return payload if payload.startswith(STAMP) else None
    return None


def jpeg_data_url(image: np.ndarray, comment: bytes | None = None) -> str:
    """The result as an inline JPEG (RGB; an alpha channel is dropped) with `comment` in it."""
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, "JPEG", quality=LIVE_JPEG_QUALITY,
                                                      **({"comment": comment} if comment else {}))
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class LiveImage(gr.Image):
    """gr.Image that takes a JPEG data URL as it is. Gradio's docs say a streaming output image goes back as base64;
    6.31 instead saves each one to its cache and sends a link the page must download (a file and a request per frame,
    and gigabytes of JPEGs in the cache after a talk)."""

    is_template = True  # rendered by the frontend's ordinary Image component

    def postprocess(self, value):
        if isinstance(value, str) and value.startswith("data:image/"):
            return Base64ImageData(url=value)
        return super().postprocess(value)


@dataclass
class LiveSession:
    """One viewer's stream (kept in gr.State): frames/s over the last seconds, the checked settings, the last line."""

    stamps: list[float] = field(default_factory=list)
    settings_key: str | None = None
    settings: dict = field(default_factory=dict)
    status_at: float = 0.0

    def tick(self) -> float:
        now = time.perf_counter()
        self.stamps = [stamp for stamp in self.stamps if now - stamp < 3.0] + [now]
        if len(self.stamps) < 2:
            return 0.0
        return (len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0])

    def checked(self, task: Task, model_name: str, values: dict, overrides: dict) -> tuple[str, dict]:
        """The model and options, checked once per change of the widgets rather than once per frame."""
        key = repr((model_name, sorted(values.items())))
        if key != self.settings_key:
            self.settings = {"model": task.check_model(model_name),
                             **task.defaults(), **task.check_options(**values), **overrides}
            self.settings_key = key
        settings = dict(self.settings)
        return settings.pop("model"), settings

    def status_due(self) -> bool:
        now = time.perf_counter()
        if now - self.status_at < LIVE_STATUS_EVERY:
            return False
        self.status_at = now
        return True


def wire_live(task: Task, panel: _ui.InputPanel, view: _ui.LiveView, model: gr.components.Component, options: dict,
              output: str | Callable[[TaskOutput], object], still_outputs: list, max_side: int = LIVE_MAX_SIDE,
              **overrides) -> None:
    """Stream webcam frames through `task.run` with the model and option widgets' current values.

    `output` names the image of the TaskOutput to show (or picks it); `overrides` fix options for live frames (e.g.
    no detection drawing). While Live is on, the still-image input and `still_outputs` make room for the camera.
    """
    session = gr.State(None)  # a LiveSession per viewer, made on the first frame (a callable default would be public)
    pick = output if callable(output) else (lambda out: out.images[output])
    width, height = camera_size(max_side)
    panel.camera.webcam_options = gr.WebcamOptions(
        mirror=panel.camera.webcam_options.mirror,
        constraints={"video": {"width": {"ideal": width}, "height": {"ideal": height}}})
    view.output.__class__ = LiveImage  # made by _ui.live_view; Gradio re-creates it from its class on updates
    # The page's side: pacing and numbering the frames, the meter and the messages on the result.
    gr.HTML("", js_on_load=_LIVE_JS, visible="hidden", camera=panel.camera.elem_id, output=view.output.elem_id,
            max_in_flight=LIVE_MAX_IN_FLIGHT, apply_default_css=False)

    def toggle(on):
        return [gr.update(visible=not on), gr.update(visible=on), gr.update(visible=on), gr.update(visible=on)] + [
            gr.update(visible=not on) for _ in still_outputs]

    panel.live.change(toggle, panel.live, [panel.image, panel.camera, view.output, view.status, *still_outputs],
                      queue=False, api_visibility="private")

    @_ui.friendly_errors
    def on_frame(frame, mirror, state, model_name, **values):
        if frame is None:
            return gr.skip(), gr.skip(), state
        started = time.perf_counter()
        stamp = frame_stamp(frame)
        state = state or LiveSession()
        name, settings = state.checked(task, model_name, values, overrides)
        loaded = _ui.load_input(frame, max_side, mirror_back=not mirror)
        with _ONE_AT_A_TIME:
            _use_live_threads()
            out = gpu.on_gpu(task.id, task.run, "live")(loaded, model=name, **settings)
        fps = state.tick()
        server_ms = (time.perf_counter() - started) * 1000
        image = jpeg_data_url(pick(out), stamp and b"%s %.0f" % (stamp, server_ms))
        if not state.status_due():
            return image, gr.skip(), state
        return image, f"**{out.summary}** · {fps:.1f} frames/s" if fps else f"**{out.summary}**", state

    panel.camera.stream(
        on_frame, [panel.camera, panel.mirror, session, model], [view.output, view.status, session],
        inputs_kwargs=options, stream_every=LIVE_SEND_EVERY, time_limit=_ui.LIVE_TIME_LIMIT,
        concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT, concurrency_id=_ui.MODEL_CONCURRENCY_ID,
        show_progress="hidden", api_visibility="private",
    )


# The page's side of Live, run once per tab by a hidden gr.HTML: it numbers and paces the frames, shows frames/s
# and lag on the result, and replaces a frozen result with a message when the camera is denied or lost.
_LIVE_JS = r"""
const live = window.cvpgLive || (window.cvpgLive = (() => {
  const live = {seq: 0, sent: new Map(), echoed: 0, lastSent: 0, streamStart: 0, inFlight: 1, maxInFlight: 2,
                draining: false, timeoutMs: 3000, outputs: new Map(), videos: new Set(), log: [], problem: null};
  const DENIED = "Camera access was denied. Allow the camera for this page (the camera icon in the address bar), " +
                 "then untick and tick Live.";
  const LOST = "The camera stopped sending pictures (unplugged, or taken by another app). Reconnect it, then " +
               "untick and tick Live.";
  // Each webcam frame carries its number, capture time and whether it went alone (no other frame out, so it never
  // waited in the server) in a JPEG comment; the server echoes it into the result with its own milliseconds.
  const encode = HTMLCanvasElement.prototype.toDataURL;
  HTMLCanvasElement.prototype.toDataURL = function (type, quality) {
    const now = performance.now(), url = encode.call(this, type, quality);
    if (type !== "image/jpeg" || !capturing(this)) return url;
    try {
      const comma = url.indexOf(",") + 1, bytes = atob(url.slice(comma));
      const alone = live.sent.size === 0, note = `CVPG ${++live.seq} ${now.toFixed(1)} ${+alone}`;
      const size = note.length + 2;
      if (now - live.lastSent > 4000) live.streamStart = now;
      if (alone) live.draining = false;
      live.sent.set(live.seq, now);
      live.lastSent = now;
      return url.slice(0, comma) + btoa(bytes.slice(0, 2) + "\xff\xfe" + String.fromCharCode(size >> 8, size & 255) +
                                        note + bytes.slice(2));
    } catch (error) {
      return url;
    }
  };
  // Gradio's webcam skips a tick while its video has no width: it gets none while enough frames are out.
  const widthOf = Object.getOwnPropertyDescriptor(HTMLVideoElement.prototype, "videoWidth").get;
  const capturing = (canvas) => !canvas.isConnected && [...live.videos].some((video) => video.isConnected &&
    widthOf.call(video) === canvas.width && video.videoHeight === canvas.height);  // a live camera's frame
  live.room = () => {
    const now = performance.now();
    for (const [seq, at] of live.sent) if (seq <= live.echoed || now - at > live.timeoutMs) live.sent.delete(seq);
    return !live.problem && live.sent.size < (live.draining ? 1 : live.inFlight);
  };
  const gate = (video) => {
    if (video.cvpgGated) return;
    video.cvpgGated = true;
    Object.defineProperty(video, "videoWidth", {configurable: true,
                                                get() { return live.room() ? widthOf.call(this) : 0; }});
    live.videos.add(video);
  };
  const media = navigator.mediaDevices;
  if (media && media.getUserMedia) {
    const open = media.getUserMedia.bind(media);
    media.getUserMedia = async (constraints) => {
      try {
        const stream = await open(constraints);
        live.problem = null;
        for (const track of stream.getVideoTracks()) {  // "ended": unplugged; "mute": no pictures for a while
          track.addEventListener("ended", () => { live.problem = LOST; });
          track.addEventListener("mute", () => { live.problem = LOST; });
          track.addEventListener("unmute", () => { if (live.problem === LOST) live.problem = null; });
        }
        return stream;
      } catch (error) {
        live.problem = error && error.name === "NotAllowedError" ? DENIED : `No camera could be opened ` +
          `(${error && error.name}): check that one is connected and free, then untick and tick Live.`;
        throw error;
      }
    };
  }
  const stampOf = (src) => {
    if (!src || !src.startsWith("data:image/jpeg;base64,")) return null;
    const match = /CVPG (\d+) ([\d.]+) ([01]) (\d+)/.exec(atob(src.slice(23, 23 + 512)));
    return match && {seq: +match[1], captured: +match[2], alone: match[3] === "1", serverMs: +match[4]};
  };
  const seen = (outputId, view, img) => {
    view.src = img.src;
    const stamp = stampOf(img.src);
    if (!stamp) return;
    live.echoed = Math.max(live.echoed, stamp.seq);
    const arrived = performance.now();
    // Two frames out (one processed, one waiting) keep the server busy when a frame spends long outside it (sent,
    // returned, encoded by the page); one frame alone halves the lag of a slow model. A second frame is worth it
    // when it saves more than a fifth of a frame time. The time outside is measured on frames sent alone: every 30
    // frames one goes alone, as the time outside can change.
    if (stamp.alone) view.outside = view.outside.slice(-4).concat([arrived - stamp.captured - stamp.serverMs]);
    view.inside = view.inside.slice(-8).concat([stamp.serverMs]);
    const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];
    live.inFlight = median(view.outside) > 0.2 * Math.max(1, median(view.inside)) ? live.maxInFlight : 1;
    if (live.inFlight > 1 && ++view.sinceAlone >= 30) {
      view.sinceAlone = 0;
      live.draining = true;
    }
    img.decode().catch(() => {}).then(() => requestAnimationFrame(() => {
      const at = performance.now();
      const entry = {output: outputId, ...stamp, arrived, shown: at, lag: at - stamp.captured, inFlight: live.inFlight};
      live.log.push(entry);
      if (live.log.length > 5000) live.log.splice(0, 1000);
      view.shown = view.shown.filter((old) => at - old.shown < 2000).concat([entry]);
      const first = view.shown[0], lags = view.shown.slice(-9).map((e) => e.lag).sort((a, b) => a - b);
      const fps = view.shown.length > 1 ? (view.shown.length - 1) * 1000 / (at - first.shown) : 0;
      view.meter.textContent = `${fps.toFixed(1)} frames/s · lag ${Math.round(lags[lags.length >> 1])} ms`;
    }));
  };
  const attach = (outputId, view, out) => {
    view.node = out;
    out.classList.add("cvpg-live-view");
    view.meter = Object.assign(document.createElement("div"), {className: "cvpg-live-meter"});
    view.message = Object.assign(document.createElement("div"), {className: "cvpg-live-message"});
    out.append(view.meter, view.message);
    new MutationObserver(() => {
      const img = out.querySelector("img");
      if (img && img.src !== view.src) seen(outputId, view, img);
    }).observe(out, {subtree: true, childList: true, attributes: true, attributeFilter: ["src"]});
  };
  const problem = (view, now) => {
    if (live.problem) return live.problem;
    if (now - live.lastSent > 4000) return "";  // not streaming (Stop pressed): the last result stays, unmarked
    const last = view.shown[view.shown.length - 1];
    const waited = now - Math.max(last ? last.shown : 0, live.streamStart);
    if (waited < Math.max(4000, 3 * (last ? last.lag : 0))) return "";  // a slow model's pace is no stall
    return view.shown.length || view.src ? `No new result for ${Math.round(waited / 1000)} s: the server is busy.`
                                         : "Waiting for the first result (the model may still be loading)…";
  };
  setInterval(() => {
    const now = performance.now();
    for (const [outputId, view] of live.outputs) {
      document.getElementById(view.cameraId)?.querySelectorAll("video").forEach(gate);
      const out = document.getElementById(outputId);
      if (!out) continue;
      if (view.node !== out) attach(outputId, view, out);
      const text = out.offsetParent === null ? "" : problem(view, now);
      view.message.textContent = text;
      out.classList.toggle("cvpg-live-problem", Boolean(text));
    }
  }, 250);
  const style = document.createElement("style");
  style.textContent = `
    .row:has(> .column > .cvpg-live-view) > .column:has(> .cvpg-live-view) { flex-grow: 3 !important; }
    .cvpg-live-view, .cvpg-live-view .image-container, .cvpg-live-view .image-container > button {
      height: auto !important; }
    .cvpg-live-view { position: relative; }
    .cvpg-live-view .image-frame { width: 100% !important; height: auto !important; }
    .cvpg-live-view img { width: 100% !important; height: auto !important; max-height: 78vh; object-fit: contain; }
    .cvpg-live-meter { position: absolute; left: 8px; bottom: 8px; z-index: 5; pointer-events: none; padding: 1px 6px;
      border-radius: 4px; font: 12px/1.5 ui-monospace, monospace; color: #fff; background: rgba(0, 0, 0, .55); }
    .cvpg-live-meter:empty, .cvpg-live-message:empty { display: none; }
    .cvpg-live-message { position: absolute; inset: 0; z-index: 6; display: flex; align-items: center;
      justify-content: center; padding: 1.5rem; text-align: center; font-size: 1.15rem; color: #fff;
      background: rgba(20, 20, 20, .82); }`;
  document.head.append(style);
  return live;
})());
live.maxInFlight = props.max_in_flight;
if (!live.outputs.has(props.output)) {
  live.outputs.set(props.output, {cameraId: props.camera, shown: [], outside: [], inside: [], sinceAlone: 0, src: ""});
}
"""
