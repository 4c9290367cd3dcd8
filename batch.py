"""`python app.py batch TASK FOLDER_OR_GLOB -o OUTDIR`: a tab over a folder of photos and videos.

The same outputs as `predict` (written through `outputs`: the same files under the same names), plus
`batch-summary.json` with the counts, every failure and its reason, and the throughput. An input whose outputs are
already complete, from a run with the same model and options, is skipped: rerunning a killed batch resumes where it
stopped. With Ray installed (requirements-scale.txt) the work is spread over every core and GPU of this machine, or
over a cluster (`batch_ray`); without it, or with --local, it runs here in one process, one input after another.

A video of a tab that offers its video work in steps (`VideoHooks`: analyse each frame, plan the clip, render each
frame) is split into frame ranges analysed and rendered in parallel and joined back in order; the plan in between
sees the whole clip, so face-deid's temporal hold links faces across the seams as one pass does. Never imports Ray.
"""
from __future__ import annotations

import glob
import importlib
import importlib.util
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import outputs

SUMMARY_NAME = "batch-summary.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MIN_RANGE = 16  # frames; shorter ranges cost more in start-up than they gain


def add_arguments(parser) -> None:
    """The batch command's own flags (the tab, inputs, output, model and options are app.run_arguments)."""
    parser.add_argument("--workers", type=int, default=0,
                        help="model instances (default: one per GPU, else one per CPU core)")
    parser.add_argument("--address", help="join this Ray cluster instead of starting a runtime here: auto on one of "
                        "its nodes, or ray://HEAD:10001 (needs ray[client])")
    parser.add_argument("--local", action="store_true", help="run here in one process even where Ray is installed")
    parser.add_argument("--range-frames", type=int, default=0,
                        help="video frames per parallel range (default: from the length and the workers)")


@dataclass(frozen=True)
class Job:
    """What every worker needs to run the tab exactly as `predict` would."""

    task_id: str
    model: str
    checkpoint: str | None
    options: dict
    outdir: str
    device: str = "auto"
    offline: bool = False
    range_frames: int = 0  # frames per video range (0: from the video's length and the number of workers)


class BatchError(RuntimeError):
    """The batch cannot run at all (no worker could load the model, no cluster at the address)."""


@dataclass
class Outcome:
    """What became of one input."""

    input: str
    status: str  # done, skipped or failed
    kind: str  # image or video
    frames: int = 0
    reason: str = ""
    output: str = ""


def main(args, ray_engine: Callable | None = None) -> int:
    """The sub-command. `ray_engine` is `batch_ray.run` (app.py passes it; this module never imports Ray)."""
    from models import checkpoints, tasks

    try:
        task = tasks.get_task(args.task)
        model = task.check_model(args.model or task.default_model)
        options = task.parse_options(args.set)
        if args.workers < 0 or args.range_frames < 0:
            raise tasks.OptionError("--workers and --range-frames cannot be negative")
    except tasks.OptionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sources, outcomes = collect_inputs(args.inputs, task)
    if not sources and not outcomes:
        print(f"error: no photos or videos in {' '.join(args.inputs)}", file=sys.stderr)
        return 2
    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    job = Job(task.id, model, args.checkpoint, options, str(outdir), getattr(args, "device", "auto"),
              checkpoints.is_offline(), args.range_frames)
    todo = []
    for source in sources:
        if outputs.is_complete(task, outdir, source, model, options):
            record = outputs.json_path(outdir, source)
            outcomes.append(Outcome(source, "skipped", _kind(task, source), output=str(record)))
        else:
            todo.append(source)
    if len(todo) < len(sources):
        print(f"{len(sources) - len(todo)} of {len(sources)} inputs already have complete outputs: skipped")
    started = time.perf_counter()
    engine = _engine(args, ray_engine)
    if todo and engine["kind"] == "ray":
        try:
            done, details = ray_engine(job, task, todo, args.workers, args.address, print)
        except BatchError as error:  # no worker could start: every input fails with the reason
            done, details = [Outcome(s, "failed", _kind(task, s), reason=str(error)) for s in todo], {}
        engine.update(details)
    elif todo:
        done, details = run_local(job, task, todo, print)
        engine.update(details)
    else:
        done = []
    rank = {source: index for index, source in enumerate(sources)}
    outcomes = sorted([*outcomes, *done], key=lambda outcome: rank.get(outcome.input, len(rank)))
    summary = summarize(job, outcomes, engine, time.perf_counter() - started)
    path = outputs.write_json(outdir / SUMMARY_NAME, summary)
    for failure in summary["failures"]:
        print(f"error: {failure['input']}: {failure['reason']}", file=sys.stderr)
    rate = summary["throughput"]
    print(f"{summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed in "
          f"{summary['seconds']:.1f} s ({rate['images_per_s']:.2f} images/s, {rate['video_frames_per_s']:.1f} video "
          f"frames/s) -> {path}")
    return 1 if summary["failed"] else 0


def _engine(args, ray_engine) -> dict:
    if args.local:
        return {"kind": "local", "note": "one process, one input after another (--local)"}
    if ray_engine is None or not ray_installed():
        note = "Ray is not installed: one process, one input after another (pip install -r requirements-scale.txt)"
        print(note)
        return {"kind": "local", "note": note}
    return {"kind": "ray", "address": args.address or "local"}


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def _kind(task, source) -> str:
    return "video" if outputs.is_video(task, source) else "image"


def collect_inputs(patterns: list[str], task) -> tuple[list[str], list[Outcome]]:
    """The files to run: a folder's photos and videos (not its sub-folders or hidden files), a file, or what a glob
    matches (`**` goes into sub-folders). Inputs whose outputs would share a name with an earlier one's fail."""
    suffixes = IMAGE_SUFFIXES + tuple(task.video_suffixes)
    sources, failed, stems = [], [], {}
    for pattern in patterns:
        folder = Path(pattern)
        if folder.is_dir():
            found = [str(p) for p in sorted(folder.iterdir())
                     if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")]
        elif folder.is_file():
            found = [pattern]
        else:
            found = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not found:
                failed.append(Outcome(pattern, "failed", "image", reason="no such file, folder or matching files"))
        for source in found:
            stem = Path(source).stem
            if stem in stems:
                if Path(stems[stem]).resolve() != Path(source).resolve():
                    failed.append(Outcome(source, "failed", _kind(task, source),
                                          reason=f"its outputs would overwrite those of {stems[stem]} (same name)"))
                continue
            stems[stem] = source
            sources.append(source)
    return sources, failed


def run_local(job: Job, task, sources: list[str], say) -> tuple[list[Outcome], dict]:
    """The inputs one after another in this process, as predict runs them; the model is loaded first, so that the
    throughput compares with Ray's (whose workers load theirs before the clock starts)."""
    from models import runtime

    runtime.set_device_preference(job.device)
    started = time.perf_counter()
    try:
        if job.checkpoint is None:
            task.preload(job.model)
    except outputs.input_errors():
        pass  # the first input fails with the same error, and says it
    details = {"startup_s": round(time.perf_counter() - started, 2)}
    outdir, done = Path(job.outdir), []
    for source in sources:
        started = time.perf_counter()
        kind = _kind(task, source)
        try:
            if kind == "video":
                target = outputs.video_path(task, outdir, source)
                record = outputs.run_video(task, source, target, job.model, job.checkpoint, job.options)
                path = outputs.write_video_record(target, source, record, job.options, outputs.elapsed_ms(started))
                outcome = Outcome(source, "done", kind, frames=record.get("frames", 0), output=str(path))
            else:
                result = outputs.run_image(task, source, job.model, job.checkpoint, job.options)
                path = outputs.write_image_result(outdir, source, result, job.options)
                outcome = Outcome(source, "done", kind, output=str(path))
        except outputs.input_errors() as error:
            outcome = Outcome(source, "failed", kind, reason=str(error))
        say(f"{source}: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))
        done.append(outcome)
    return done, details


def summarize(job: Job, outcomes: list[Outcome], engine: dict, seconds: float) -> dict:
    """Counts, failures with reasons and throughput. The rates are over the work done in this run (skipped inputs
    do not count) and over the seconds after the workers were ready when the engine says when that was."""
    counts = Counter(outcome.status for outcome in outcomes)
    done = [outcome for outcome in outcomes if outcome.status == "done"]
    images = sum(outcome.kind == "image" for outcome in done)
    frames = sum(outcome.frames for outcome in done if outcome.kind == "video")
    working = max(seconds - engine.get("startup_s", 0.0), 1e-9)
    return {
        "task": job.task_id, "model": job.model, "checkpoint": job.checkpoint, "options": job.options,
        "engine": engine, "inputs": len(outcomes), "done": counts["done"], "skipped": counts["skipped"],
        "failed": counts["failed"],
        "failures": [{"input": o.input, "reason": o.reason} for o in outcomes if o.status == "failed"],
        "seconds": round(seconds, 2),
        "throughput": {"images": images, "images_per_s": round(images / working, 3), "video_frames": frames,
                       "video_frames_per_s": round(frames / working, 2), "seconds": round(working, 2)},
        "results": [asdict(outcome) for outcome in outcomes],
    }


# Video frame ranges -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoHooks:
    """A tab's video work in the three steps that let a batch split a clip into frame ranges: `analyse` every frame
    alone (in parallel, by range), `plan` the whole clip from all the frames' results (on the driver, cheap: a
    temporal hold links faces across frames there, so it sees across the seams of the ranges exactly as one pass
    does), `render` every frame from its plan (in parallel, by range). `record` is the tab's record of the clip."""

    analyse: Callable[..., Callable]  # analyse(model, checkpoint, **options) -> (rgb -> what the frame holds)
    plan: Callable[..., list]  # plan(analyses, **options) -> one plan per frame
    render: Callable[..., Callable]  # render(model, checkpoint, **options) -> ((rgb, plan) -> (image, extra))
    record: Callable[..., dict]  # record(video_info, extras, model, target, **options) -> what run_video returns


@dataclass
class SplitVideo:
    """A video on its way through the ranges: analyses per range, then the plans, then the rendered ranges."""

    ranges: list[tuple[int, int | None]]
    hooks: VideoHooks
    started: float
    analyses: dict = field(default_factory=dict)  # range index -> that range's analyses
    plans: list | None = None
    rendered: dict = field(default_factory=dict)  # range index -> the object ref of its frames
    device: str = ""
    failed: str = ""
    data: object = None  # the shipped file, while its ranges run


def video_hooks(task) -> VideoHooks | None:
    """The tab module's `analyse_frame`, `plan_frames`, `render_frame` and `video_record` (None: it cannot split)."""
    from models import tasks

    module = importlib.import_module(f"models.tabs.{tasks.module_name(task.id)}")
    names = ("analyse_frame", "plan_frames", "render_frame", "video_record")
    if all(hasattr(module, name) for name in names):
        return VideoHooks(*(getattr(module, name) for name in names))
    return None


def split_video(task, job: Job, source: str, workers: int) -> SplitVideo | Outcome | None:
    """The video's frame ranges, None to run it whole (short, or the tab cannot split), or its failure."""
    hooks = video_hooks(task)
    if hooks is None:
        return None
    from models import video

    try:
        info = video.probe(source)
    except video.VideoError as error:
        return Outcome(source, "failed", "video", reason=str(error))
    ranges = plan_ranges(info.frames, workers, job.range_frames)
    return SplitVideo(ranges, hooks, time.perf_counter()) if len(ranges) > 1 else None


def plan_ranges(frames: int, workers: int, range_frames: int = 0) -> list[tuple[int, int | None]]:
    """[start, stop) ranges covering `frames` frames, the last one open (container frame counts can be off). By
    default two ranges per worker, none under MIN_RANGE frames."""
    if not range_frames:
        range_frames = math.ceil(frames / max(min(2 * workers, frames // MIN_RANGE), 1))
    starts = list(range(0, frames, max(range_frames, 1))) or [0]
    return list(zip(starts, [*starts[1:], None]))


def join_ranges(task, job: Job, source: str, split: SplitVideo, ranges: Iterable[tuple[list, list]]) -> Outcome:
    """Write the rendered ranges' frames in order through the same writer as a whole run (`video.map_frames`, which
    decodes the source once more: the frame counts must agree), then the tab's record."""
    from models import video

    target = outputs.video_path(task, Path(job.outdir), source)
    frames = (pair for images, extras in ranges for pair in zip(images, extras))
    mismatch = video.VideoError(f"{Path(source).name}: the workers decoded a different number of frames than this "
                                "machine; its ranges were not joined")

    def next_frame(_decoded):
        pair = next(frames, None)
        if pair is None:
            raise mismatch
        return pair

    with outputs.partial(target) as temporary:
        info, extras = video.map_frames(source, temporary, next_frame)
        if next(frames, None) is not None:
            raise mismatch
    record = split.hooks.record(info, extras, job.model, target, **job.options)
    if "device" in record and split.device:
        record["device"] = split.device  # where the frames were processed, not this machine
    path = outputs.write_video_record(target, source, record, job.options, outputs.elapsed_ms(split.started))
    return Outcome(source, "done", "video", frames=info.frames, output=str(path))
