"""Speed and memory of each tab's pipeline against its bare network, measured in one run on one device.

    python benchmarks/bench.py [--repeats 5] [--size 128] [--device auto] [--markdown benchmarks/RESULTS.md]

For every super-resolution model: the bare forward on a ready tensor, `predict()` (array in, array out: conversion,
tiling, clamping) and the tab's whole `run()` (plus the bicubic baseline and the record), as medians of repeated runs
after one warm-up, and the peak memory of a fresh process that runs that model. Official weights are used where they
are on this machine ($CVPG_HOME or the cache); otherwise random weights of the same architecture (the speed is the same)
and the table says so.
"""
from __future__ import annotations

import argparse
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


def measure_one(model_name: str, size: int, repeats: int) -> dict:
    """Runs in its own process, so its peak memory is its own."""
    import numpy as np
    import torch

    from models import images, runtime, super_resolution as sr, weights

    weights.set_offline(True)
    device = runtime.device()
    baseline_rss = _peak_rss_mb()
    spec = sr.MODELS[model_name]
    try:
        net = sr.load(model_name, device)
        source = "official"
    except weights.WeightsError:
        net = sr._ready(sr.build(model_name), device) if spec.arch != "bicubic" else None
        source = "random (official file not on this machine)"
    if spec.arch == "bicubic":
        source = "none"
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    loaded = images.load(photo)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def timed(fn) -> float:
        fn()  # warm-up: first-call allocations and kernel selection
        samples = []
        for _ in range(repeats):
            with runtime.stopwatch(device) as clock:
                fn()
            samples.append(clock["ms"])
        return statistics.median(samples)

    row = {"model": model_name, "weights": source, "device": runtime.describe(device), "size": size,
           "scale": spec.scale, "threads": torch.get_num_threads()}
    if net is not None:
        dtype = next(net.parameters()).dtype
        tensor = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].to(device, dtype).div(255)

        def bare():
            with torch.inference_mode():
                net(tensor)

        row["forward_ms"] = timed(bare)
        row["half"] = dtype == torch.float16
    row["predict_ms"] = timed(lambda: sr.predict(net, photo, spec.scale, tile=spec.default_tile))
    row["run_ms"] = timed(lambda: sr.run(loaded, model_name) if source != "random (official file not on this machine)"
                          else _run_with(net, loaded, model_name))
    row["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    row["peak_rss_added_mb"] = round(_peak_rss_mb() - baseline_rss, 1)
    if device.type == "cuda":
        row["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return row


def _run_with(net, loaded, model_name):
    """The tab's pipeline with an already built network (random weights), so the cost is the same as `run`."""
    from models import runtime, super_resolution as sr

    runtime.MODELS.get(sr.cache_key(model_name, runtime.device()), lambda: net)  # what `load` would return
    return sr.run(loaded, model_name)


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if platform.system() == "Linux" else peak / 2**20


def table(rows: list[dict], repeats: int) -> str:
    device = rows[0]["device"] if rows else "?"
    lines = [
        f"Super-resolution, {rows[0]['size']}x{rows[0]['size']} input, medians of {repeats} runs after a warm-up, "
        f"device: {device}, torch threads: {rows[0]['threads']}, {platform.processor() or platform.machine()}, "
        f"measured {time.strftime('%Y-%m-%d')}.",
        "",
        "| model | weights | out | forward ms | predict ms | run ms | predict / forward | run / forward | peak RSS MB (added) |"
        + (" peak CUDA MB |" if "peak_cuda_mb" in rows[0] else ""),
        "|---|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if "peak_cuda_mb" in rows[0] else ""),
    ]
    for row in rows:
        forward = row.get("forward_ms")
        out = row["size"] * row["scale"]
        ratio = (lambda value: f"{value / forward:.2f}") if forward else (lambda value: "-")
        line = (f"| {row['model']} | {row['weights']} | {out}x{out} | {forward and round(forward, 1) or '-'} | "
                f"{row['predict_ms']:.1f} | {row['run_ms']:.1f} | {ratio(row['predict_ms'])} | {ratio(row['run_ms'])} | "
                f"{row['peak_rss_mb']:.0f} ({row['peak_rss_added_mb']:.0f}) |")
        if "peak_cuda_mb" in row:
            line += f" {row['peak_cuda_mb']:.0f} |"
        lines.append(line)
    lines += ["", "forward: the bare network on a ready tensor; predict: uint8 array in, uint8 array out (conversion, "
              "tiles, clamping); run: the tab's whole pipeline (predict + bicubic baseline + record). Peak RSS is "
              "the whole process (Python, torch and the model); 'added' is what the model's load and runs added."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="*", help="default: every super-resolution model")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model, print JSON
    args = parser.parse_args()

    from models import runtime

    runtime.set_device_preference(args.device)
    if args.one:
        print(json.dumps(measure_one(args.one, args.size, args.repeats)))
        return 0
    from models import super_resolution as sr

    rows = []
    for name in args.models or list(sr.MODELS):
        command = [sys.executable, __file__, "--one", name, "--size", str(args.size), "--repeats", str(args.repeats),
                   "--device", args.device]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"measured {name}", file=sys.stderr)
    text = table(rows, args.repeats)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text("# Benchmark results\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
