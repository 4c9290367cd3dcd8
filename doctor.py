"""The talk checklist: which tabs will work on this machine, offline, and how fast.

    python app.py doctor [--tabs face-deid,super-resolution,keypoint-detectors:centerface] [--timing chosen|all|none]

One screen: per tab and model, whether its checkpoints are here and verified (SHA-256), their size, the device and
precision the model will run on, a one-shot timing on a small photo (load, then one run), and for everything missing
the exact command that fetches it. With `--tabs`, it exits non-zero when a chosen tab would fail offline.

The doctor never downloads: it looks at $CVPG_HOME, torch hub's cache and the Hugging Face cache as the app would
offline. The same tab selection (`--tabs`) drives `python app.py download --tabs` (what the tabs need) and the talk
mode `python app.py --offline --preload --tabs ...` (only those tabs, their models loaded and warmed by `warm_up`).
A selection is a comma list of tab ids; `tab:model` picks the model a talk will use instead of the tab's default, and
may repeat (`super-resolution:srgan-x4,super-resolution:srgan-x2`).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from models import checkpoints, tasks

Selection = dict  # tab id -> the models named for it (a tuple), or None: the tab's default model
TIMINGS = ("chosen", "all", "none")
WARM_UP_SIDE = 128  # the small photo's longest side: enough for every model, quick on a CPU
WARM_UP_OPTIONS = {"steps": 1}  # many-step methods (Gatys) warm up with one step, not a whole optimisation


def parse_tabs(text: str | None) -> Selection | None:
    """`--tabs` text as {tab: named models or None}, in the order given; None when no tabs were chosen."""
    if not text or not text.strip():
        return None
    selection: Selection = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        tab, _, model = entry.partition(":")
        task = tasks.get_task(tab.strip())  # OptionError listing the valid tabs
        named = selection.get(task.id) or ()
        if model.strip():
            selection[task.id] = tuple(dict.fromkeys((*named, task.check_model(model.strip()))))
        else:
            selection.setdefault(task.id, None)
    return selection


def chosen_models(task: tasks.Task, named: tuple[str, ...] | None) -> tuple[str, ...]:
    """The models a talk runs on a tab: the ones named with `tab:model`, else the tab's default."""
    return named or (task.default_model,)


def needed_checkpoints(tab: str, model: str) -> tuple[str, ...]:
    """The catalogue names of the checkpoints `model` of `tab` loads (none for bicubic), its families' own data."""
    tasks.get_task(tab)  # imports the tab's families, which register their checkpoints
    if tab == "super-resolution":
        from models import sr

        spec = sr.MODELS[model]
        return tuple(name for name in (spec.checkpoint, spec.blend_checkpoint) if name)  # blend: denoise < 1
    if tab == "style":
        from models import adain, fast_style, gatys

        return {"adain": (adain.ENCODER.name, adain.DECODER.name), "gatys": (gatys.CHECKPOINT.name,)}.get(
            model, (fast_style.ARCHIVE.name,))
    known = checkpoints.catalogue()
    names = [name for name in (model, f"{tab}-{model}") if name in known][:1]  # pix2pix, cyclegan: tab-model
    if tab == "landmarks":
        from models import fan

        if model == fan.MODEL:  # FAN finds its faces with the tab's RetinaFace first
            names.append(tasks.get_task(tab).option("face_detector").default)
    if tab == "face-deid" and names:
        from models import face_verify

        verifier = face_verify.VERIFIER[model]  # `verify`, on by default, runs the other detector on the result
        names += [verifier] if verifier in known else []
    if not names:
        raise KeyError(f"no catalogue entry for {tab} model {model!r}: teach doctor.needed_checkpoints its name")
    return tuple(names)


@dataclass(frozen=True)
class CheckpointState:
    name: str
    status: str  # "verified" | "unverified" | "missing" | "bad hash"
    bytes: int | None  # on disk when here, else the catalogue's size
    detail: str = ""


@dataclass
class ModelReport:
    tab: str
    model: str
    chosen: bool
    states: list[CheckpointState]
    timing: str = ""  # "load 0.3 s, run 41 ms", or why the timing run failed
    failed: bool = False  # present, but the timing run raised
    precision: str = ""

    @property
    def ready(self) -> bool:
        return not self.failed and all(state.status in ("verified", "unverified") for state in self.states)

    @property
    def status(self) -> str:
        if not self.states:
            return "no weights"
        for word in ("bad hash", "missing", "unverified"):
            if any(state.status == word for state in self.states):
                return word
        return "verified"

    @property
    def missing(self) -> list[str]:
        return [state.name for state in self.states if state.status == "missing"]


@dataclass
class TabReport:
    task: tasks.Task
    models: list[ModelReport] = field(default_factory=list)

    @property
    def status(self) -> str:
        """ready: every chosen model works offline; partly ready: another model would; missing: none would."""
        if all(report.ready for report in self.models if report.chosen):
            return "ready"
        usable = any(report.ready and report.states for report in self.models)  # bicubic alone is no model
        return "partly ready" if usable else "missing"


def check_checkpoint(name: str) -> CheckpointState:
    """Is checkpoint `name` on this machine, and does it match its hash? Looks only: nothing is written or moved."""
    from models import weights

    entry = checkpoints.get(name)
    if entry.kind == "huggingface":
        try:
            folder = weights.fetch(entry)  # offline (run() makes sure): finds a local copy or raises
        except weights.MissingWeightsError:
            return CheckpointState(name, "missing", entry.bytes)
        size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        return CheckpointState(name, "unverified", size, f"Hugging Face copy in {folder}")
    path = weights.cached_path(entry)
    if path is None:
        return CheckpointState(name, "missing", entry.bytes)
    size = path.stat().st_size
    recorded = path.with_name(path.name + ".sha256")  # what weights records beside a first download
    if entry.sha256 is None and not recorded.is_file():
        return CheckpointState(name, "unverified", size, f"{path} (no published hash: its first load records one)")
    try:
        weights.verify(entry, path)
    except weights.ChecksumError as error:
        return CheckpointState(name, "bad hash", size, str(error))
    return CheckpointState(name, "verified", size, str(path))


@dataclass(frozen=True)
class Timing:
    load_ms: float
    run_ms: float | None  # None: the model was loaded but not run (ZeroGPU's main process has no real GPU)
    half_precision: bool | None  # from the run's record, when the tab records it

    def text(self) -> str:
        ran = f", run {self.run_ms:.0f} ms on a {WARM_UP_SIDE} px photo" if self.run_ms is not None else ""
        return f"load {self.load_ms / 1000:.2f} s{ran}"


def warm_up(task: tasks.Task, model: str, run: bool = True) -> Timing:
    """Load `model` into the shared cache and run it once on a small photo, so the first click is as fast as the
    tenth (cuDNN, allocator and lazy imports are warm too); return how long each part took."""
    import assets
    from models import images, runtime

    dev = runtime.device()
    with runtime.stopwatch(dev) as load_time:
        task.preload(model)
    if not run:
        return Timing(load_time["ms"], None, None)
    loaded = images.load(assets.skimage_photo("astronaut", WARM_UP_SIDE), max_side=task.max_side)
    options = {**task.defaults(), **{k: v for k, v in WARM_UP_OPTIONS.items() if k in task.defaults()}}
    with runtime.stopwatch(dev) as run_time:
        out = task.run(loaded, model=model, **options)
    half = out.record.get("half_precision")
    return Timing(load_time["ms"], run_time["ms"], None if half is None else bool(half))


def examine(selection: Selection | None, timing: str = "chosen") -> list[TabReport]:
    """Every model of the chosen tabs (all tabs when none are chosen): checkpoints, then the timing runs."""
    from models import runtime

    dev = runtime.device()
    reports = []
    for tab, named in (selection or {tab: None for tab in tasks.TABS}).items():
        task = tasks.get_task(tab)
        report = TabReport(task)
        chosen = chosen_models(task, named)
        for model in task.models:
            states = [check_checkpoint(name) for name in needed_checkpoints(tab, model)]
            model_report = ModelReport(tab, model, model in chosen, states,
                                       precision="fp16" if runtime.half_precision(dev) else "fp32")
            if model_report.ready and (timing == "all" or (timing == "chosen" and model_report.chosen)):
                _time(task, model_report)
            report.models.append(model_report)
        reports.append(report)
    return reports


def _time(task: tasks.Task, report: ModelReport) -> None:
    import gpu

    try:  # on a ZeroGPU Space the doctor's process has no real GPU: it times the load only
        measured = warm_up(task, report.model, run=not gpu.on_zero_gpu())
    except Exception as error:  # noqa: BLE001 (a checkpoint that is here but does not load or run: say why)
        report.failed = True
        report.timing = f"FAILED: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        return
    report.timing = measured.text()
    if measured.half_precision is not None:
        report.precision = "fp16" if measured.half_precision else "fp32"


def fix_command(report: ModelReport) -> str:
    if report.status == "bad hash":
        return next(state.detail for state in report.states if state.status == "bad hash")
    if report.failed:
        return ""
    return f"python app.py download {' '.join(report.missing)}" if report.missing else ""


def tab_selector(report: TabReport, models: list[ModelReport]) -> str:
    """`tab` when every model is meant, else `tab:model,tab:model` (the `--tabs` text for these models)."""
    if len(models) == len(report.models):
        return report.task.id
    return ",".join(f"{report.task.id}:{model.model}" for model in models)


def render(reports: list[TabReport], offline: bool) -> list[str]:
    from models import hub, runtime

    dev = runtime.device()
    home = checkpoints.home_dir()
    lines = [
        "CV Playground doctor",
        f"  device    {runtime.describe(dev)}, {'fp16 where the model allows' if runtime.half_precision(dev) else 'fp32'}"
        + (" (CVPG_FP32 is set)" if dev.type == "cuda" and os.environ.get("CVPG_FP32") else ""),
        f"  weights   {'$CVPG_HOME ' + str(home) + ', then ' if home else ''}{checkpoints.cache_dir()}; "
        f"Hugging Face cache {hub.cache_dir()}",
        f"  network   {'offline: nothing will be downloaded' if offline else 'allowed: a missing checkpoint downloads on first use'}",
        "  * = the model a talk runs on that tab (its default, or one chosen with --tabs tab:model)",
    ]
    width = max(len(model.model) for report in reports for model in report.models)
    for report in reports:
        lines.append("")
        lines.append(f"{report.task.id} ({report.task.title}): {report.status.upper()}")
        for model in report.models:
            sizes = [state.bytes for state in model.states]
            size_text = ("" if not sizes else "unknown" if None in sizes else f"{sum(sizes) / 1e6:.1f} MB").rjust(10)
            where = f"{dev.type} {model.precision}" if model.ready else ""
            tail = model.timing or (f"fix: {fix_command(model)}" if fix_command(model) else "")
            lines.append(f"  {'*' if model.chosen else ' '} {model.model.ljust(width)}  {model.status:<10} {size_text}"
                         f"  {where:<9} {tail}".rstrip())
        usable = [model for model in report.models if model.ready and model.states]
        if report.status == "partly ready":
            lines.append(f"    ready here: {', '.join(m.model for m in usable)}; for a talk on it: --tabs "
                         f"{tab_selector(report, usable)}")
        if sum(1 for model in report.models if model.missing) > 1:  # what is here already is only verified
            lines.append(f"    fetch them all: python app.py download --tabs {report.task.id}")
    return lines


def summary(reports: list[TabReport], chosen: bool) -> tuple[list[str], int]:
    """The closing lines, and the exit code: 1 when tabs were chosen and one of them would fail offline."""
    ready = [report.task.id for report in reports if report.status == "ready"]
    failing = [report for report in reports if report.status != "ready"]
    lines = ["", f"Ready offline: {', '.join(ready) or 'none'}."]
    if failing:
        needs = [f"{r.task.id}:{m.model}" for r in failing for m in r.models if m.chosen and not m.ready]
        lines.append(f"Not ready: {', '.join(needs)}.")
        missing = [r for r in failing if any(m.chosen and m.missing for m in r.models)]
        if missing:
            selector = ",".join(tab_selector(r, [m for m in r.models if m.chosen]) for r in missing)
            lines.append(f"Fix (on a machine with a network; then copy the files into $CVPG_HOME if this one has "
                         f"none): python app.py download --tabs {selector}")
    return lines, (1 if chosen and failing else 0)


def run(args) -> int:
    """`python app.py doctor`: print the report; exit 1 when a tab chosen with --tabs would fail offline."""
    import gpu  # noqa: F401 (first: on a ZeroGPU Space, `spaces` must patch torch before CUDA is touched)
    from models import runtime

    offline = bool(getattr(args, "offline", False)) or checkpoints.is_offline()
    checkpoints.set_offline(True)  # the doctor only looks: a missing checkpoint must not start a download
    try:
        runtime.set_device_preference(getattr(args, "device", "auto"))
        selection = parse_tabs(getattr(args, "tabs", None))
    except (ValueError, tasks.OptionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    timing = getattr(args, "timing", "chosen")
    reports = examine(selection, timing)
    closing, code = summary(reports, selection is not None)
    print("\n".join(render(reports, offline) + closing))
    return code
