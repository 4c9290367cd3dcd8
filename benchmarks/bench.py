"""Speed and memory of each tab's pipeline against its bare network, measured in one run on one device.

    python benchmarks/bench.py [--repeats 5] [--device auto] [--only super-resolution face-deid]
                               [--markdown benchmarks/RESULTS.md]

For every model: the bare forward on a ready tensor, `predict()` (uint8 array in, result out: conversion, tiling or
decoding) and the tab's whole `run()` (what the UI calls), as medians of repeated runs after one warm-up, and the peak
memory of a fresh process that measures only that model. Official weights are used where they are on this machine
($CVPG_HOME or the cache); otherwise random weights of the same architecture (same speed), and the table says so.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import cases  # noqa: E402
from benchmarks.cases import Case  # noqa: E402


def tab_models(tab: str) -> list[str]:
    """The models a tab's benchmark measures: its case module's list, or every model of the tab."""
    module = _cases_module(tab)
    if module is not None:
        return module.models()
    from models import tasks

    return list(tasks.get_task(tab).models)


def build_case(tab: str, model_name: str) -> Case:
    module = _cases_module(tab)
    if module is not None:
        return module.case(model_name)
    from models import tasks

    return cases.generic(tasks.get_task(tab), model_name)


def _cases_module(tab: str):
    from models import tasks

    try:
        return importlib.import_module(f"benchmarks.cases.{tasks.module_name(tab)}")
    except ModuleNotFoundError:
        return None


def measure_one(task: str, model_name: str, repeats: int) -> dict:
    """Runs in its own process, so its peak memory is its own."""
    import torch

    from models import runtime, weights

    weights.set_offline(True)
    device = runtime.device()
    baseline = _peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    case = build_case(task, model_name)

    def timed(fn) -> float:
        fn()  # warm-up: first-call allocations and kernel selection
        samples = []
        for _ in range(repeats):
            with runtime.stopwatch(device) as clock:
                fn()
            samples.append(clock["ms"])
        return statistics.median(samples)

    row = {"task": task, "model": model_name, "weights": case.weights, "device": runtime.describe(device),
           "input": "x".join(map(str, case.input_size)), "threads": torch.get_num_threads(),
           "forward_ms": timed(case.forward) if case.forward else None,
           "predict_ms": timed(case.predict) if case.predict else None,
           "run_ms": timed(case.run) if case.run else None}
    row["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    row["peak_rss_added_mb"] = round(_peak_rss_mb() - baseline, 1)
    if device.type == "cuda":
        row["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return row


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if platform.system() == "Linux" else peak / 2**20


def table(rows: list[dict], repeats: int) -> str:
    cuda = "peak_cuda_mb" in rows[0]
    lines = [
        f"Medians of {repeats} runs after a warm-up; device: {rows[0]['device']}, torch threads: {rows[0]['threads']}, "
        f"{platform.machine()}, measured {time.strftime('%Y-%m-%d')}.",
        "",
        "| task | model | weights | input | forward ms | predict ms | run ms | predict / forward | run / forward | "
        "run frames/s | peak RSS MB (added) |" + (" peak CUDA MB |" if cuda else ""),
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if cuda else ""),
    ]
    for row in rows:
        forward, predict, run = row["forward_ms"], row["predict_ms"], row["run_ms"]
        ms = lambda value: f"{value:.1f}" if value else "-"
        ratio = lambda value: f"{value / forward:.2f}" if value and forward else "-"
        line = (f"| {row['task']} | {row['model']} | {row['weights']} | {row['input']} | {ms(forward)} | "
                f"{ms(predict)} | {ms(run)} | {ratio(predict)} | {ratio(run)} | "
                f"{f'{1000 / run:.1f}' if run else '-'} | {row['peak_rss_mb']:.0f} ({row['peak_rss_added_mb']:.0f}) |")
        lines.append(line + (f" {row['peak_cuda_mb']:.0f} |" if cuda else ""))
    lines += ["", "forward: the bare network on a ready tensor. predict: uint8 array in, result out (super-resolution: "
              "conversion, tiles, clamping; face-deid: preprocessing, network, decoding, NMS). run: the tab's whole "
              "pipeline as the UI calls it (super-resolution adds the bicubic baseline; face-deid adds the blur, as a "
              "live frame; landmarks: Keypoint R-CNN's whole detector on 640x480, FAN per face crop (predict = crop, "
              "forward, decode); segmentation: Mask R-CNN forward at the model's own resize (800/1333) vs predict/run at the "
              "tab's working size 800, YOLACT at its 550x550, Mask2Former at its 384x384; keypoint detectors: 640x480 at working size 512; style: fast style and AdaIN at 512 px, Gatys predict = one optimisation step (Adam, "
              "with the style's Gram targets) at 256 px; translation: pix2pix resizes to 256x256 and back, CycleGAN pads to a multiple of 4). "
              "Super-resolution inputs are x4 (x2) upscaled. Peak RSS is the whole process (Python, "
              "torch, the model); 'added' is what loading and running the model added. A detector with random weights "
              "gets only its forward time: its random heads report thousands of faces, so decoding and hiding them means nothing."]
    return "\n".join(lines)


SECTION_START, SECTION_END = "<!-- bench.py: start -->", "<!-- bench.py: end -->"


def write_section(path: Path, text: str) -> None:
    """Replace this script's table in `path`, keeping the sections other scripts write there."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"{SECTION_START}\n{text}\n{SECTION_END}"
    if SECTION_START in old and SECTION_END in old:
        head, rest = old.split(SECTION_START, 1)
        new = head + block + rest.split(SECTION_END, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    path.write_text(new)


def merge_section(path: Path, rows: list[dict], repeats: int) -> str:
    """The table already in `path` with these rows measured anew: a row of the same task and model is replaced, a new
    one added after the last row, and the header says which rows are from this run. Returns the merged text."""
    old = path.read_text()
    if SECTION_START not in old:
        return table(rows, repeats)
    lines = old.split(SECTION_START, 1)[1].split(SECTION_END, 1)[0].strip("\n").splitlines()
    key = lambda line: tuple(cell.strip() for cell in line.split("|")[1:3])  # noqa: E731 (task, model)
    is_row = lambda line: line.startswith("| ") and not line.startswith(("| task", "|---"))  # noqa: E731
    fresh = {key(line): line for line in table(rows, repeats).splitlines() if is_row(line)}
    merged = [fresh.pop(key(line), line) if is_row(line) else line for line in lines]
    for row_key, line in fresh.items():  # a new model goes after the last row of its task (or of the table)
        rows_at = [i for i, old_line in enumerate(merged) if is_row(old_line)]
        same_task = [i for i in rows_at if key(merged[i])[0] == row_key[0]]
        merged.insert((same_task or rows_at)[-1] + 1, line)
    names = ", ".join(f"{row['task']}/{row['model']}" for row in rows)
    merged.insert(1, f"\nRe-measured {time.strftime('%Y-%m-%d')} (medians of {repeats} runs, device "
                     f"{rows[0]['device']}, torch threads {rows[0]['threads']}): {names}.")
    return "\n".join(merged)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    from models import tasks

    parser.add_argument("--only", nargs="*", choices=list(tasks.TABS), help="tabs to measure (default: all)")
    parser.add_argument("--models", nargs="*", help="only these models (default: every model of the chosen tabs)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--merge", action="store_true", help="with --markdown: replace or add only the measured rows "
                        "in the table already there")
    parser.add_argument("--one", nargs=2, metavar=("TASK", "MODEL"), help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()

    from models import runtime

    runtime.set_device_preference(args.device)
    if args.one:
        print(json.dumps(measure_one(*args.one, args.repeats)))
        return 0
    rows = []
    for task in args.only or list(tasks.TABS):
        for model_name in [m for m in tab_models(task) if not args.models or m in args.models]:
            command = [sys.executable, __file__, "--one", task, model_name, "--repeats", str(args.repeats),
                       "--device", args.device]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
            if done.returncode != 0:
                print(f"{task}/{model_name}: failed\n{done.stderr}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"measured {task}/{model_name}", file=sys.stderr)
    if not rows:
        print("nothing was measured", file=sys.stderr)
        return 1
    text = table(rows, args.repeats)
    print(text)
    if args.markdown:
        path = Path(args.markdown)
        write_section(path, merge_section(path, rows, args.repeats) if args.merge else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
