"""Widgets and wiring every tab shares: the input panel (upload, webcam, clipboard, Live), errors, result lines.

Nothing here computes on tensors: a handler loads the input with `models.images`, calls the tab's `Task.run`, and
formats what comes back.
"""
from __future__ import annotations

import atexit
import functools
import inspect
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr

import gpu
from models import budget, cancel, images, weights
from models.tasks import OptionError, Task

LIVE_STREAM_EVERY = 0.1  # seconds between captured frames (frames are dropped, not queued, while one is running)
LIVE_TIME_LIMIT = 60  # seconds one viewer may hold a worker before rejoining the queue
MODEL_CONCURRENCY_ID = "models"  # every model tab shares one pool of workers
MODEL_CONCURRENCY_LIMIT = 2
_WEBCAM = gr.WebcamOptions(mirror=True, constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}})
# Result files for download buttons and videos: one folder per server process, swept of files older than
# KEEP_OUTPUTS_S on every write and removed at exit (Gradio copies what it serves into its own cache, which
# build_app's `delete_cache` sweeps).
KEEP_OUTPUTS_S = int(os.environ.get("CVPG_KEEP_OUTPUTS_S", "3600"))
_OUTPUT_DIR = Path(tempfile.gettempdir()) / f"cvpg-outputs-{os.getpid()}"
atexit.register(shutil.rmtree, _OUTPUT_DIR, True)
log = logging.getLogger("cvpg")

# Failures a person can act on: their message is shown as it is.
USER_ERRORS = (images.ImageInputError, weights.WeightsError, OptionError, ValueError, MemoryError)


class ImageInput(gr.Image):
    """gr.Image that hands the handler the raw upload (a path, or the bytes of a webcam frame) undecoded.

    gr.Image would open the file with PIL itself before our code runs, so a damaged upload would fail with a generic
    error; here every decode happens in `models.images.load`, which explains what is wrong.
    """

    is_template = True  # rendered by the frontend's ordinary Image component

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            import base64

            return base64.b64decode(payload.url.split(",", 1)[1])
        return str(payload.path)


@dataclass
class InputPanel:
    image: gr.Image
    live: gr.Checkbox
    mirror: gr.Checkbox
    camera: gr.Image  # the streaming webcam, shown while Live is on


@dataclass
class LiveView:
    output: gr.Image
    status: gr.Markdown


def input_panel(tab_id: str, max_side: int) -> InputPanel:
    """Upload/webcam/clipboard input plus the Live toggle; call inside the tab's input column."""
    image = ImageInput(
        sources=["upload", "webcam", "clipboard"], type="filepath", image_mode=None, label="Input image",
        webcam_options=_WEBCAM, elem_id=f"{tab_id}-input", height=360,
    )
    gr.Markdown(f"Upload a photo, take a webcam snapshot or paste one. Larger than {max_side} px a side is scaled down.",
                elem_classes=["cvpg-hint"])
    with gr.Row():
        live = gr.Checkbox(label="Live (webcam stream)", value=False, elem_id=f"{tab_id}-live")
        mirror = gr.Checkbox(label="Mirror (selfie view)", value=True, elem_id=f"{tab_id}-mirror")
    camera = ImageInput(
        sources=["webcam"], streaming=True, type="filepath", image_mode=None, label="Webcam (live)",
        webcam_options=_WEBCAM, visible=False, elem_id=f"{tab_id}-camera", height=360,
    )
    return InputPanel(image, live, mirror, camera)


def live_view(tab_id: str) -> LiveView:
    """Where live results appear; call inside the tab's output column."""
    output = gr.Image(label="Live result", streaming=True, visible=False, elem_id=f"{tab_id}-live-output",
                      format="jpeg", height=480)
    status = gr.Markdown(visible=False, elem_id=f"{tab_id}-live-status")
    return LiveView(output, status)


_SERVER_PATH = re.compile(r"(?<![\w:/])/(?:[\w.+-]+/)+([\w.+-]+)")


def for_people(message: str) -> str:
    """A message without the server's folders: a path is shortened to its file name (people fix files, not paths)."""
    return _SERVER_PATH.sub(lambda match: match.group(1), message)


def friendly_errors(handler: Callable) -> Callable:
    """Turn any failure into a gr.Error a person understands; the server keeps serving everyone else.

    The handler runs as a cancellable job (`job_token`): the model loops stop between steps once nobody waits for the
    result (the client left or pressed Stop) or the run overruns its time budget.
    Gradio injects gr.Progress / gr.Request only into parameters before a `*values` catch-all, so handlers that take
    `*values` list those first: `def handler(progress=gr.Progress(), image=None, *values)`.
    """

    def translate(error: Exception) -> gr.Error:
        name = handler.__name__
        if isinstance(error, cancel.Cancelled):
            log.info("%s stopped: %s", name, error)  # one line: on purpose, not a bug
            failure = gr.Error(for_people(str(error)), print_exception=False)
        elif isinstance(error, USER_ERRORS):
            log.info("%s refused the input: %s", name, error)  # one line, paths kept for whoever runs the server
            failure = gr.Error(for_people(str(error)), print_exception=False)
        else:
            log.error("handler %s failed:\n%s", name, traceback.format_exc())  # a bug: log it whole
            failure = gr.Error(f"Something went wrong inside the model ({type(error).__name__}: "
                               f"{for_people(str(error))}).", print_exception=False)
        traceback.clear_frames(error.__traceback__)  # the run's tensors live on in its frames: let them go now
        return failure

    if inspect.isgeneratorfunction(handler):  # streaming handlers stay generators, so Gradio streams them
        @functools.wraps(handler)
        def streaming(*args, **kwargs):
            token = job_token()
            steps = handler(*args, **kwargs)
            try:
                while True:
                    with cancel.job(token):  # each step may run in another worker thread: enter the job each time
                        try:
                            item = next(steps)
                        except StopIteration:
                            return
                    yield item
            except gr.Error:
                raise
            except Exception as error:
                failure = translate(error)
            finally:
                steps.close()  # Gradio closed us (Stop, client gone): close the handler's loop too
            cancel.release_memory()  # outside the except: the failed run's buffers are free by now
            raise failure from None

        return streaming

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            with cancel.job(job_token()):
                return handler(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:
            failure = translate(error)
        cancel.release_memory()  # outside the except: the failed run's buffers are free by now
        raise failure from None

    return wrapper


def job_token() -> cancel.Token:
    """A cancellation token for the queue event this thread runs, limited to `budget.MAX_RUN_S` of computing.

    Gradio cannot stop a running (non-generator) function. But it drops the event from `event_ids_to_events` when it
    is cancelled (a Stop's `cancels`, the /cancel route) and marks it not `alive` when its client's stream closes
    (`Queue.clean_events`): the token polls both, so the model loops stop at their next step.
    """
    from gradio.context import LocalContext

    event_id, blocks = LocalContext.event_id.get(None), LocalContext.blocks.get(None)
    events = getattr(getattr(blocks, "_queue", None), "event_ids_to_events", None)
    if not event_id or events is None:  # not run by the queue (a direct call): only the time limit applies
        return cancel.Token(budget.MAX_RUN_S)

    def abandoned() -> bool:
        event = events.get(event_id)
        return event is None or not event.alive

    return cancel.Token(budget.MAX_RUN_S, abandoned)


def load_input(source, max_side: int, mirror_back: bool = False) -> images.LoadedImage:
    """Decode an upload or a frame; `mirror_back` undoes the browser's selfie mirroring of webcam frames."""
    loaded = images.load(source, max_side=max_side)
    return images.mirrored(loaded) if mirror_back else loaded


def run_task(task: Task, image, model: str, options: dict, checkpoint=None, progress=None,
             max_side: int | None = None, **overrides):
    """Decode the input, check model and options against the task's declarations, run it: (loaded, TaskOutput).

    An input that would compute for longer than the work budget allows on this device is scaled down first, and the
    result's notes say so (`models.budget`)."""
    loaded = load_input(image, max_side or task.max_side)
    values = {**task.defaults(), **task.check_options(**options), **overrides}
    model = task.check_model(model)
    fitted = budget.fit(task.id, model, loaded.size, values)
    if fitted is not None and fitted.max_side is not None:
        width, height = loaded.original_size
        loaded = load_input(image, fitted.max_side)
        loaded.notes = [note for note in loaded.notes if not note.startswith("scaled down")]
        loaded.notes.append(f"scaled down from {width}x{height} to {loaded.size[0]}x{loaded.size[1]}: "
                            + budget.reason(fitted, model))
    values.update(fitted.options if fitted is not None else {})  # smaller steps, so a Stop takes effect soon
    out = gpu.on_gpu(task.id, task.run)(loaded, model=model, checkpoint=checkpoint,  # ZeroGPU: under spaces.GPU
                                        progress=progress_callback(progress) if progress is not None else None,
                                        **values)
    return loaded, out


def bind(event: Callable, handler: Callable, inputs: list, options: dict, outputs: list, api_name: str, **extra):
    """Wire `handler(*inputs, **options)` to `event` as the public endpoint `api_name`: the option widgets are passed
    by keyword, so API callers name parameters exactly as the command line's `--set` keys."""
    return event(handler, inputs, outputs, inputs_kwargs=options, api_name=api_name,
                 concurrency_id=MODEL_CONCURRENCY_ID, concurrency_limit=MODEL_CONCURRENCY_LIMIT, **extra)


def record_view(tab_id: str) -> gr.JSON:
    """The run's numbers as data (what `predict` writes beside the images, and what API callers get)."""
    with gr.Accordion("Numbers (JSON record)", open=False):
        return gr.JSON(label="Record", elem_id=f"{tab_id}-record")


def progress_callback(progress: gr.Progress) -> Callable[[float, str], None]:
    return lambda fraction, text: progress(fraction, desc=text)


def save_png(array: "np.ndarray", stem: str) -> str:
    """Write a full-size result for the download button (PNG: lossless)."""
    _sweep_from_now_on()
    _OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=_OUTPUT_DIR, prefix=f"{stem}-", suffix=".png", delete=False)
    handle.close()
    images.save_png(array, handle.name)
    return handle.name


_sweeper_guard = threading.Lock()
_sweeper: list[threading.Thread] = []


def _sweep_from_now_on() -> None:
    """Sweep now, and every quarter of KEEP_OUTPUTS_S from the first result on, writes or not: files left by the last
    requests of a busy hour must not wait for the next request."""
    sweep_outputs()
    with _sweeper_guard:
        if not _sweeper:
            def sweep_regularly():
                while True:
                    time.sleep(max(5.0, KEEP_OUTPUTS_S / 4))
                    sweep_outputs()

            _sweeper.append(threading.Thread(target=sweep_regularly, name="cvpg-sweep-outputs", daemon=True))
            _sweeper[0].start()


def sweep_outputs(max_age_s: float | None = None) -> int:
    """Delete result files older than `max_age_s` (default KEEP_OUTPUTS_S); returns how many were deleted."""
    limit = time.time() - (KEEP_OUTPUTS_S if max_age_s is None else max_age_s)
    deleted = 0
    for path in _OUTPUT_DIR.rglob("*") if _OUTPUT_DIR.is_dir() else ():
        try:
            if path.is_file() and path.stat().st_mtime < limit:
                path.unlink()
                deleted += 1
        except OSError:  # another request's file vanished first: nothing to do
            continue
    return deleted


def result_line(summary: str, notes: list[str]) -> str:
    text = f"**{summary}**"
    if notes:
        text += "  \nInput: " + "; ".join(notes) + "."
    return text


@dataclass
class VideoSection:
    video_in: gr.Video
    run: gr.Button
    video_out: gr.Video
    status: gr.Markdown


def video_section(tab_id: str, what: str) -> VideoSection:
    """An accordion to process a video file frame by frame with the tab's current settings."""
    from models import video

    with gr.Accordion("Video file", open=False):
        gr.Markdown(f"Every frame is {what} with the settings above; the result keeps the frame rate and size. "
                    f"**Audio is dropped.** Up to {video.MAX_SECONDS} s and 1920x1080.")
        video_in = gr.Video(label="Video (MP4, WebM, MOV)", sources=["upload"], elem_id=f"{tab_id}-video-in")
        run = gr.Button("Process video", elem_id=f"{tab_id}-video-run")
        video_out = gr.Video(label="Result (WebM, no audio)", elem_id=f"{tab_id}-video-out")
        status = gr.Markdown(elem_id=f"{tab_id}-video-status")
    return VideoSection(video_in, run, video_out, status)


def video_target(stem: str) -> str:
    """A fresh path for a processed video (WebM)."""
    _sweep_from_now_on()
    folder = _OUTPUT_DIR / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.NamedTemporaryFile(dir=folder, prefix=f"{stem}-", suffix=".webm", delete=False).name


def video_summary(record: dict, detail: str = "") -> str:
    return (f"**{record['frames']} frames at {record['fps']:.1f} fps, {record['size'][0]}x{record['size'][1]}**"
            f"{detail}, on {record['device']}. Audio dropped.")
