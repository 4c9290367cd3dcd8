"""The Ray engine of `python app.py batch`: one model instance per worker, on all cores and GPUs, then a cluster.

Ray places the workers and brings back the ones that die; this module only says what each worker does. A worker is
an actor that loads the tab's model once (`ModelWorker`); the driver hands each free worker the next photo, whole
video or video frame range, and writes every result itself (atomically, through `outputs`), so the output folder
needs to exist only where the command runs. A worker that dies is restarted by Ray and the input it held is retried
once (`max_task_retries=1`); an input that fails again is listed with the reason.

A video of a tab with `batch.VideoHooks` goes in frame ranges: the workers analyse their ranges (face detection),
the driver plans the whole clip from all the analyses (face-deid's temporal hold, across the seams), the workers
render their ranges from the plan (hiding the faces), and the driver writes the frames in order. Ray itself is
imported only when a batch runs.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import outputs
from batch import BatchError, Job, Outcome, SplitVideo, join_ranges, split_video, video_hooks
from models import video

ROOT = Path(__file__).resolve().parent
# Ray looks up this machine's outward address unless told it runs alone; a local runtime then stays on 127.0.0.1.
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
FORWARDED_ENV_PREFIXES = ("CVPG_", "HF_", "TORCH_HOME", "XDG_CACHE_HOME")
PER_WORKER_QUEUE = 2  # inputs handed to a worker at once: the next one waits in its queue while it works
JOIN_THREADS = 2  # videos written at once by this process (OpenCV's encoder lets go of the GIL)
# Not uploaded to a cluster's workers (the code is; the environment and the checkpoints are the nodes' own).
UPLOAD_EXCLUDES = [".venv", ".git", "tests", "benchmarks", "docs", "assets", "*.pth", "*.onnx", "__pycache__"]


class Failure:
    """What a worker sends back for an input that failed: the reason, as predict would print it."""

    def __init__(self, reason: str):
        self.reason = reason


class ModelWorker:
    """One model instance on one worker process: loads the tab's model once, then runs inputs as they come."""

    def __init__(self, job: Job, threads: int, env: dict[str, str], hub_dir: str | None):
        os.environ.update(env)  # before the models are imported: where the checkpoints are
        import torch

        from models import checkpoints, runtime, tasks

        torch.set_num_threads(threads)
        if hub_dir:
            torch.hub.set_dir(hub_dir)
        checkpoints.set_offline(job.offline)
        runtime.set_device_preference(job.device)
        self.job = job
        self.task = tasks.get_task(job.task_id)
        if job.checkpoint is None:  # a user checkpoint loads (and is cached) on the first input instead
            self.task.preload(job.model)
        self.device = runtime.describe(runtime.device())

    def ready(self) -> tuple[str, int]:
        return self.device, os.getpid()

    def image(self, options: dict, source: str, data: bytes | None = None):
        with _LocalCopy(source, data) as path:
            try:
                return outputs.run_image(self.task, source, self.job.model, self.job.checkpoint, options,
                                         load_from=path)
            except Exception as error:  # noqa: BLE001 - one input fails alone; the worker stays up for the rest
                return Failure(_reason(error))

    def video(self, options: dict, source: str, data: bytes | None = None):
        """A whole video (short, or a tab that cannot split): run into a local file, send back its bytes."""
        started = time.perf_counter()
        with _LocalCopy(source, data) as path, tempfile.TemporaryDirectory(prefix="cvpg-video-") as folder:
            target = outputs.video_path(self.task, Path(folder), source)
            try:
                record = outputs.run_video(self.task, source, target, self.job.model, self.job.checkpoint, options,
                                           read_from=path)
            except Exception as error:  # noqa: BLE001
                return Failure(_reason(error))
            return target.read_bytes(), record, outputs.elapsed_ms(started)

    def analyse(self, options: dict, source: str, start: int, stop: int | None, data: bytes | None = None) -> list:
        """What each frame of [start, stop) holds (face-deid: the faces found), for the driver's plan."""
        analyse = video_hooks(self.task).analyse(self.job.model, self.job.checkpoint, **options)
        with _LocalCopy(source, data) as path:
            frames = video.read_frames(path or source, start, None if stop is None else stop - start)
            return [analyse(rgb) for rgb in frames]

    def render(self, options: dict, source: str, start: int, plans: list, data: bytes | None = None):
        """Frames start.. of a video rendered from their plans (face-deid: the faces to hide, hold included)."""
        render = video_hooks(self.task).render(self.job.model, self.job.checkpoint, **options)
        with _LocalCopy(source, data) as path:
            frames = video.read_frames(path or source, start, len(plans))
            pairs = [render(rgb, plan) for rgb, plan in zip(frames, plans)]
        return [image for image, _ in pairs], [extra for _, extra in pairs], self.device


def run(job: Job, task, sources: list[str], workers: int, address: str | None, say) -> tuple[list[Outcome], dict]:
    """Run `sources` on Ray (a local runtime, the one already started in this process, or the cluster at
    `address`); returns one Outcome per source, in order, and what the engine was (workers, devices, start-up)."""
    started = time.perf_counter()
    ray, started_here = _connect(address, say)
    pool: list = []
    try:
        pool, details = _start_workers(ray, job, workers, address is not None, say)
        details = {**details, "startup_s": round(time.perf_counter() - started, 2)}
        return _Dispatcher(ray, job, task, pool, ship=address is not None, say=say).run(sources), details
    finally:
        for worker in pool:  # their cores and GPUs go back to the runtime now, not when Ray collects them
            ray.kill(worker)
        if started_here:
            ray.shutdown()


def _connect(address: str | None, say):
    if address is None:
        os.environ.setdefault(LOOPBACK_SWITCH, "0")  # read when ray is first imported
    import ray

    if ray.is_initialized():
        say(f"using the Ray runtime already started in this process (Ray {ray.__version__})")
        return ray, False
    # On a cluster the code goes to the workers with the job; on this machine they import it from here.
    code = {"working_dir": str(ROOT), "excludes": UPLOAD_EXCLUDES} if address is not None else None
    try:
        ray.init(address=address, include_dashboard=False, runtime_env=code)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise BatchError(f"could not start or reach Ray at {address or 'this machine'}: {error}") from None
    where = f"the Ray cluster at {address}" if address else "a local Ray runtime on this machine (127.0.0.1)"
    say(f"running on {where} (Ray {ray.__version__})")
    return ray, True


def _forwarded_env() -> dict[str, str]:
    """Where checkpoints live and whether to stay offline: workers see what this process sees. (Passed to each
    worker rather than as a Ray runtime_env, which would make Ray start fresh worker processes for it.)"""
    return {name: value for name, value in os.environ.items() if name.startswith(FORWARDED_ENV_PREFIXES)}


def _start_workers(ray, job: Job, workers: int, remote: bool, say) -> tuple[list, dict]:
    """`workers` model instances (0: one per GPU, else one per core), each with its share of the cores and GPUs;
    they end when this batch drops them."""
    resources = ray.cluster_resources()
    cpus = resources.get("CPU", 1.0)
    gpus = resources.get("GPU", 0.0) if job.device in ("auto", "cuda") else 0.0
    workers = workers or int(gpus) or max(1, int(cpus))
    one_node = sum(1 for node in ray.nodes() if node.get("Alive")) == 1
    # On one machine the cores are shared out (1 worker on 8 cores runs 8 threads); on a cluster a worker must fit
    # on a node, so it takes one core and the cluster scales by workers.
    cpus_each = max(1, int(cpus) // workers) if one_node and workers <= cpus else min(1.0, cpus / workers)
    gpus_each = min(1.0, gpus / workers) if gpus else 0
    hub_dir = None if remote else _hub_dir()
    actor = ray.remote(ModelWorker).options(num_cpus=cpus_each, num_gpus=gpus_each, max_restarts=-1,
                                            max_task_retries=1)
    env = {} if remote else _forwarded_env()  # a cluster's nodes keep their own checkpoint folders
    pool = [actor.remote(job, max(1, int(cpus_each)), env, hub_dir) for _ in range(workers)]
    say(f"starting {workers} worker{'s' if workers != 1 else ''} ({cpus_each:g} CPU"
        + (f", {gpus_each:g} GPU" if gpus_each else "") + " each); each loads the model once")
    waiting = [worker.ready.remote() for worker in pool]
    while len(ray.wait(waiting, num_returns=len(waiting), timeout=60)[0]) < len(waiting):
        say(f"still waiting for workers: loading the model, or for free resources (free now: "
            f"{ray.available_resources()})")
    try:
        devices = ray.get(waiting)
    except ray.exceptions.RayError as error:
        raise BatchError(f"the workers could not load {job.task_id}/{job.model}: {_reason(error)}") from None
    devices = sorted({device for device, _ in devices})
    say("workers ready on " + ", ".join(devices))
    return pool, {"ray": ray.__version__, "workers": workers, "cpus_per_worker": cpus_each,
                  "gpus_per_worker": gpus_each, "devices": devices}


def _hub_dir() -> str | None:
    return sys.modules["torch"].hub.get_dir() if "torch" in sys.modules else None


class _Dispatcher:
    """Hands the next piece of work to the next free worker, writes what comes back, joins video ranges."""

    def __init__(self, ray, job: Job, task, pool: list, ship: bool, say):
        self.ray, self.job, self.task, self.ship, self.say = ray, job, task, ship, say
        self.free = deque(worker for _ in range(PER_WORKER_QUEUE) for worker in pool)
        self.workers = len(pool)
        self.in_flight: dict = {}  # object ref -> (piece of work, worker)
        self.outcomes: dict[str, Outcome] = {}
        self.videos: dict[str, SplitVideo] = {}
        self.joiner = ThreadPoolExecutor(max_workers=JOIN_THREADS, thread_name_prefix="join")
        self.joins: list = []

    def run(self, sources: list[str]) -> list[Outcome]:
        self.pending = deque(piece for source in sources for piece in self._pieces(source))
        try:
            while self.pending or self.in_flight:
                while self.pending and self.free:
                    piece = self.pending.popleft()
                    if piece[0] != "analyse" or not self.videos[piece[1]].failed:  # a failed video's: not sent
                        self._submit(piece, self.free.popleft())
                if not self.in_flight:
                    continue
                (done,), _ = self.ray.wait(list(self.in_flight), num_returns=1)
                piece, worker = self.in_flight.pop(done)
                self.free.append(worker)
                self._finish(piece, done)
            for join in self.joins:
                self._record(join.result())
        finally:
            self.joiner.shutdown(wait=True)
        return [self.outcomes[source] for source in sources]

    def _pieces(self, source: str) -> list[tuple]:
        if not outputs.is_video(self.task, source):
            return [("image", source)]
        split = split_video(self.task, self.job, source, self.workers)
        if isinstance(split, Outcome):  # unreadable: it fails here with the message predict would give
            self._record(split)
            return []
        if split is None:
            return [("video", source)]
        self.videos[source] = split
        return [("analyse", source, index) for index in range(len(split.ranges))]

    def _data(self, source: str):
        """On a cluster the input travels with the work (the workers' nodes need not see this machine's files)."""
        if not self.ship:
            return None
        split = self.videos.get(source)
        if split is None:
            return self.ray.put(Path(source).read_bytes())
        if split.data is None:
            split.data = self.ray.put(Path(source).read_bytes())  # once for all the video's ranges
        return split.data

    def _submit(self, piece: tuple, worker) -> None:
        kind, source = piece[:2]
        options, data = self.job.options, self._data(source)
        if kind == "analyse":
            ref = worker.analyse.remote(options, source, *self.videos[source].ranges[piece[2]], data)
        elif kind == "render":
            start, stop = self.videos[source].ranges[piece[2]]
            ref = worker.render.remote(options, source, start, self.videos[source].plans[start:stop], data)
        else:
            ref = getattr(worker, kind).remote(options, source, data)
        self.in_flight[ref] = (piece, worker)

    def _finish(self, piece: tuple, ref) -> None:
        kind, source = piece[:2]
        if kind in ("analyse", "render"):
            self._video_step(kind, source, piece[2], ref)
            return
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            result = Failure(_reason(error))
        self._record(self._write(kind, source, result))

    def _write(self, kind: str, source: str, result) -> Outcome:
        if isinstance(result, Failure):
            return Outcome(source, "failed", kind, reason=result.reason)
        outdir = Path(self.job.outdir)
        if kind == "image":
            path = outputs.write_image_result(outdir, source, result, self.job.options)
            return Outcome(source, "done", kind, output=str(path))
        data, record, total_ms = result
        target = outputs.video_path(self.task, outdir, source)
        outputs.write_bytes(target, data)
        path = outputs.write_video_record(target, source, outputs.named_output(record, target), self.job.options,
                                          total_ms)
        return Outcome(source, "done", kind, frames=record.get("frames", 0), output=str(path))

    def _video_step(self, kind: str, source: str, index: int, ref) -> None:
        """A range analysed or rendered: when all are, plan the clip and render it, or join it."""
        split = self.videos[source]
        if kind == "analyse":
            if split.failed:
                return  # the video has failed already; this range's result goes unused
            try:
                split.analyses[index] = self.ray.get(ref)
            except self.ray.exceptions.RayError as error:
                split.failed = _reason(error)
            if not split.failed and len(split.analyses) < len(split.ranges):
                return
            split.failed = split.failed or _plan(split, self.job.options)
            if split.failed:
                split.data = None
                self._record(Outcome(source, "failed", "video", reason=split.failed))
                return
            # rendering next, ahead of what waits: a video's frames leave the workers' memory sooner
            self.pending.extendleft(("render", source, i) for i in reversed(range(len(split.ranges))))
            return
        split.rendered[index] = ref
        if len(split.rendered) == len(split.ranges):
            split.data = None
            self.joins.append(self.joiner.submit(self._join, source, split))

    def _join(self, source: str, split: SplitVideo) -> Outcome:
        def ranges():
            for index in range(len(split.ranges)):
                frames, extras, split.device = self.ray.get(split.rendered.pop(index))  # one range in memory at once
                yield frames, extras

        try:
            return join_ranges(self.task, self.job, source, split, ranges())
        except Exception as error:  # noqa: BLE001 - a range that failed fails its video alone
            return Outcome(source, "failed", "video", reason=_reason(error))

    def _record(self, outcome: Outcome) -> None:
        self.outcomes[outcome.input] = outcome
        self.say(f"{outcome.input}: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))


def _plan(split: SplitVideo, options: dict) -> str:
    """The clip's plan from every range's analyses, with each range's exact frames; the reason when it fails."""
    counts = [len(split.analyses[index]) for index in range(len(split.ranges))]
    if any(count != stop - start for count, (start, stop) in zip(counts, split.ranges) if stop is not None):
        return "a part of the video could not be decoded"
    starts = [start for start, _ in split.ranges]
    split.ranges = list(zip(starts, [start + count for start, count in zip(starts, counts)]))
    try:
        analyses = [analysis for index in range(len(counts)) for analysis in split.analyses.pop(index)]
        split.plans = split.hooks.plan(analyses, **options)
    except Exception as error:  # noqa: BLE001 - the video fails alone
        return _reason(error)
    return ""


def _reason(error: BaseException) -> str:
    ray = sys.modules.get("ray")
    if ray is not None and isinstance(error, ray.exceptions.RayActorError):
        return f"the worker running it died twice ({type(error).__name__})"
    if ray is not None and isinstance(error, ray.exceptions.RayTaskError):
        error = error.cause or error
    if isinstance(error, outputs.input_errors()):
        return str(error)
    return f"{type(error).__name__}: {error}"


class _LocalCopy:
    """The input as a local file: None (use the path itself) when nothing was shipped, or the shipped bytes written
    under the input's own file name, so that error messages name it as predict does."""

    def __init__(self, source: str, data: bytes | None):
        self.source, self.data, self.folder = source, data, None

    def __enter__(self) -> str | None:
        if self.data is None:
            return None
        self.folder = tempfile.mkdtemp(prefix="cvpg-input-")
        path = Path(self.folder) / Path(self.source).name
        path.write_bytes(self.data)
        return str(path)

    def __exit__(self, *exc) -> None:
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
