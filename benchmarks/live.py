"""Live webcam at the speed of the model, measured end to end in a real browser.

    .venv/bin/python benchmarks/live.py [--seconds 20] [--only face-deid/retinaface-mnet ...] [--tabs face-deid,...]
                                        [--baseline REV] [--markdown benchmarks/RESULTS.md]

The app (all its tabs, or those of `--tabs` as a talk would serve them) is served in this process; headless Chromium
(/usr/bin/chromium, its fake camera) opens each row's tab, picks the model, ticks Live and presses Record, lets the
stream warm up (model load, first frames), then counts for `--seconds`:
- delivered frames/s: results that reached the page (the output image's changes, counted by this script's own
  observer), and the share of the camera's frames that this is;
- lag: from the moment the page captured a frame to the moment its result was decoded for display (each frame carries
  its number and capture time, and the server echoes them into the result: demos/_live.py);
- the tab's `Task.run()` frames/s on the very frame the stream last processed (same size, model and options, same
  torch threads), timed back to back in this process right after the stream: the pipeline's own speed, so the ratio
  delivered / pipeline is measured under the same machine load;
- the frames the page kept out at once (1, or 2 when a frame spends long outside the server: demos/_live.py).
`--baseline REV` serves the Live helper (demos/_live.py) of a git revision instead, for a before/after comparison
(its pages carry no stamps, so no lag is measured).

Rows: face de-identification (RetinaFace, and CenterFace where the tab offers it), the keypoint-detectors tab with
CenterFace, super-resolution with bicubic and the fastest real SR model whose weights are here, CycleGAN at 256 px
(random weights under the official file name: same speed). Weights come from $CVPG_HOME, else ../shared/weights.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
                 "--use-fake-ui-for-media-stream", "--disable-background-networking", "--no-first-run"]
FIRST_FRAME_TIMEOUT_MS = 180_000  # a first frame includes loading the model
WARM_UP_S = 3.0
SR_CANDIDATES = ("srgan-x2", "srgan-x4", "srgan-x8", "realesr-animevideov3", "realesr-general-x4v3")
SECTION = "## Live in a browser"
START, END = "<!-- live.py: start -->", "<!-- live.py: end -->"
# This script's own counters, independent of the app's: the output image's changes and the camera's frames.
COUNTERS_JS = """
window.cvpgBench = {shown: 0, camera: 0};
new MutationObserver((changes) => {
  for (const change of changes)
    if (change.target.tagName === "IMG" && change.target.closest('[id$="-live-output"]')) cvpgBench.shown += 1;
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["src"]});
setInterval(() => document.querySelectorAll('[id$="-camera"] video').forEach((video) => {
  if (video.cvpgBench || !video.requestVideoFrameCallback) return;
  video.cvpgBench = true;
  const count = () => { cvpgBench.camera += 1; video.requestVideoFrameCallback(count); };
  video.requestVideoFrameCallback(count);
}), 200);
"""
SNAPSHOT_JS = """() => ({t: performance.now(), shown: cvpgBench.shown, camera: cvpgBench.camera,
                        log: window.cvpgLive ? window.cvpgLive.log.length : 0})"""


@dataclass
class Row:
    tab: str
    model: str
    label: str


class RunRecorder:
    """Wraps a task's `run` to keep the last live call (its decoded frame and settings) and each call's time."""

    def __init__(self, task):
        self.task, self.plain, self.last, self.ms = task, task.run, None, []
        object.__setattr__(task, "run", self)  # Task is frozen; the live handler looks `run` up at each frame

    def __call__(self, loaded, **kwargs):
        started = time.perf_counter()
        out = self.plain(loaded, **kwargs)
        self.ms.append((time.perf_counter() - started) * 1000)
        self.last = (loaded, kwargs)
        return out

    def pipeline_fps(self, seconds: float) -> float:
        """Back-to-back runs of the last live call for `seconds`, in a worker thread with the live thread setting."""
        from demos import _live

        loaded, kwargs = self.last
        result = {}

        def loop():
            _live._use_live_threads()
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds or count < 3:
                self.plain(copy.copy(loaded), **kwargs)
                count += 1
            result["fps"] = count / (time.perf_counter() - started)

        worker = threading.Thread(target=loop)
        worker.start()
        worker.join()
        return result["fps"]


def weights_home() -> Path:
    """$CVPG_HOME (else ../shared/weights) plus a random CycleGAN horse2zebra generator under its official name."""
    import torch

    from models import cyclegan

    source = Path(os.environ.get("CVPG_HOME") or ROOT.parent / "shared" / "weights")
    home = Path(tempfile.mkdtemp(prefix="cvpg-live-weights-"))
    for item in source.iterdir() if source.is_dir() else ():
        (home / item.name).symlink_to(item.resolve())
    if not (home / "cyclegan_horse2zebra.pth").exists():
        torch.manual_seed(0)
        torch.save(cyclegan.build().state_dict(), home / "cyclegan_horse2zebra.pth")
    return home


def has_weights(task, model: str) -> bool:
    try:
        task.preload(model)
        return True
    except Exception:  # offline and not on this machine
        return False


def fastest_sr_model() -> str | None:
    """The SR model with weights here that runs fastest (timed on a frame a quarter of the tab's live size: the cost
    grows with the pixels, and the slow ones take seconds a frame here)."""
    import numpy as np

    from demos import _live, super_resolution
    from models import images
    from models.tasks import get_task

    _live._use_live_threads()  # as the stream runs them (two busy OpenMP threads can be ten times slower)
    task = get_task("super-resolution")
    side = getattr(super_resolution, "LIVE_MAX_SIDE", 160)
    frame = images.load(np.full((side * 3 // 8, side // 2, 3), 120, np.uint8))
    settings = {**task.defaults(), "mode": "upscale"}
    timings = {}
    for model in (name for name in SR_CANDIDATES if name in task.models and has_weights(task, name)):
        task.run(frame, model=model, **settings)
        started = time.perf_counter()
        task.run(frame, model=model, **settings)
        timings[model] = time.perf_counter() - started
        print(f"super-resolution/{model}: {1000 * timings[model]:.0f} ms at {frame.size}", file=sys.stderr)
    return min(timings, key=timings.get) if timings else None


def rows(only: list[str] | None) -> tuple[list[Row], list[str]]:
    from models.tasks import get_task

    notes = []
    wanted = [Row("face-deid", "retinaface-mnet", "Face de-identification, RetinaFace MobileNet")]
    if "centerface" in get_task("face-deid").models:
        wanted.append(Row("face-deid", "centerface", "Face de-identification, CenterFace"))
    else:
        notes.append("Face de-identification with CenterFace: not a model of the face-deid tab in this checkout.")
    wanted.append(Row("keypoint-detectors", "centerface", "CenterNet tab, CenterFace"))
    wanted.append(Row("super-resolution", "bicubic-x4", "Super-resolution, bicubic x4"))
    if not only or any(item.startswith("super-resolution/") for item in only):
        fastest = fastest_sr_model()
        if fastest:
            wanted.append(Row("super-resolution", fastest, f"Super-resolution, {fastest} (fastest real model here)"))
        else:
            notes.append("Super-resolution with a real model: no SR weights on this machine.")
    wanted.append(Row("cyclegan", "horse2zebra", "CycleGAN horse2zebra (random weights), 256 px"))
    return [row for row in wanted if not only or f"{row.tab}/{row.model}" in only], notes


def use_baseline(revision: str) -> None:
    """Serve Live through demos/_live.py as it was at `revision` (the tabs call `_live.wire_live` at build time)."""
    import demos
    from demos import _live

    source = subprocess.run(["git", "show", f"{revision}:demos/_live.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("demos._live_baseline", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = demos.__name__
    exec(compile(source, f"{revision}:demos/_live.py", "exec"), module.__dict__)
    _live.wire_live = module.wire_live


def choose(page, row: Row, label: str) -> None:
    widget = page.locator(f"#{row.tab}-model")
    radio = widget.get_by_role("radio", name=label, exact=True)
    if radio.count():
        radio.check()
        return
    widget.locator("input[role=combobox]").click()
    page.get_by_role("option", name=label, exact=True).click()


def model_label(demo, row: Row) -> str:
    for block in demo.blocks.values():
        if getattr(block, "elem_id", None) == f"{row.tab}-model":
            return next(label for label, value in block.choices if value == row.model)
    raise LookupError(f"no model widget #{row.tab}-model")


def select_tab(page, title: str) -> None:
    """Click the tab `title`, also when the tab bar moved it into its "More tabs" menu (nine tabs in 1280 px)."""
    tab = page.get_by_role("tab", name=title, exact=True)
    if not tab.is_visible():
        page.get_by_role("button", name="More tabs").first.click()
        page.locator(".overflow-dropdown").get_by_role("button", name=title, exact=True).click()
    else:
        tab.click()


def measure(browser, url: str, demo, row: Row, seconds: float) -> dict:
    from playwright.sync_api import expect

    from models.tasks import get_task

    recorder = RunRecorder(get_task(row.tab))
    context = browser.new_context(permissions=["camera"], viewport={"width": 1280, "height": 900})
    context.add_init_script(COUNTERS_JS)
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        page.goto(url)
        page.locator("#device-line").wait_for()
        select_tab(page, next(b.label for b in demo.blocks.values() if getattr(b, "elem_id", None) == f"tab-{row.tab}"))
        choose(page, row, model_label(demo, row))
        page.locator(f"#{row.tab}-live input[type=checkbox]").check()
        camera = page.locator(f"#{row.tab}-camera")
        camera.locator("button", has_text="Webcam").click()
        record = camera.get_by_role("button", name="capture photo")
        record.click()
        expect(page.locator(f"#{row.tab}-live-output img[src]:not([src=''])").first).to_be_visible(
            timeout=FIRST_FRAME_TIMEOUT_MS)
        time.sleep(WARM_UP_S)
        recorder.ms.clear()
        before = page.evaluate(SNAPSHOT_JS)
        time.sleep(seconds)
        after = page.evaluate(SNAPSHOT_JS)
        log = page.evaluate(f"window.cvpgLive ? window.cvpgLive.log.slice({before['log']}) : []")
        record.click()
    finally:
        context.close()
    in_stream_ms = list(recorder.ms)
    pipeline = recorder.pipeline_fps(max(5.0, seconds / 2))
    object.__setattr__(recorder.task, "run", recorder.plain)
    elapsed = (after["t"] - before["t"]) / 1000
    delivered = (after["shown"] - before["shown"]) / elapsed
    lags = sorted(entry["lag"] for entry in log)
    width, height = recorder.last[0].size
    return {"row": row, "frame": f"{width}x{height}", "pipeline": pipeline, "delivered": delivered,
            "camera": (after["camera"] - before["camera"]) / elapsed,
            "lag": statistics.median(lags) if lags else None,
            "lag90": lags[int(0.9 * (len(lags) - 1))] if lags else None,
            "in_stream_ms": statistics.median(in_stream_ms) if in_stream_ms else None,
            "in_flight": statistics.median(entry["inFlight"] for entry in log) if log else None,
            "load": os.getloadavg()[0]}


def _live_threads() -> int:
    from demos import _live

    return _live.live_threads()


def table(results: list[dict], notes: list[str], seconds: float, baseline: str | None, tabs: str | None) -> str:
    def number(value, digits=1):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [START,
             f"Measured {date.today().isoformat()} on {os.cpu_count()} CPU cores, browser and server on the same cores (load average "
             f"{min(r['load'] for r in results):.1f}-{max(r['load'] for r in results):.1f} during the rows), "
             f"headless Chromium with its fake camera, {seconds:.0f} s per row after a {WARM_UP_S:.0f} s warm-up, "
             f"{'tabs ' + tabs if tabs else 'the whole app'} served, {_live_threads()} torch thread(s) per live frame"
             + (f"; Live helper of revision {baseline}" if baseline else "") + ".", "",
             "| tab, model | frame | run() frames/s | delivered frames/s | delivered / run() | camera frames "
             "processed | lag median ms | lag p90 ms | run() ms in the stream | frames out |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        share = r["delivered"] / r["camera"] if r["camera"] else None
        lines.append(f"| {r['row'].label} | {r['frame']} | {number(r['pipeline'])} | {number(r['delivered'])} | "
                     f"{number(100 * r['delivered'] / r['pipeline'], 0)}% | "
                     f"{'-' if share is None else f'{100 * share:.0f}%'} | {number(r['lag'], 0)} | "
                     f"{number(r['lag90'], 0)} | {number(r['in_stream_ms'], 0)} | {number(r['in_flight'], 0)} |")
    lines += [""] + [f"- {note}" for note in notes] + [END]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace this script's table in `path` (between its markers, so notes written around it stay), or append the
    section at the end."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if START in old and END in old:
        head, rest = old.split(START, 1)
        path.write_text(head + text + rest.split(END, 1)[1])
    else:
        path.write_text(old.rstrip() + f"\n\n{SECTION}\n\n" + text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured streaming time per row")
    parser.add_argument("--only", nargs="*", metavar="TAB/MODEL", help="rows to measure (default: all)")
    parser.add_argument("--tabs", help="serve only these tabs (comma list, as `app.py --tabs`; default: the whole app)")
    parser.add_argument("--baseline", metavar="REV", help="serve the Live helper of this git revision")
    parser.add_argument("--markdown", help="also write the table as the last section of this file")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium package", file=sys.stderr)
        return 2
    os.environ["CVPG_HOME"] = str(weights_home())
    os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="cvpg-live-gradio-"))
    from models import weights

    weights.set_offline(True)
    if args.baseline:
        use_baseline(args.baseline)
    import app as cvpg_app
    from playwright.sync_api import sync_playwright

    selected, notes = rows(args.only)
    demo = cvpg_app.build_app(args.tabs.split(",") if args.tabs else None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, url, _ = cvpg_app.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    results = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            for row in selected:
                results.append(measure(browser, url, demo, row, args.seconds))
                print(f"measured {row.tab}/{row.model}: {results[-1]['delivered']:.1f} frames/s", file=sys.stderr)
            browser.close()
    finally:
        demo.close()
    text = table(results, notes, args.seconds, args.baseline, args.tabs)
    print(text)
    if args.markdown:
        write_section(Path(args.markdown), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
