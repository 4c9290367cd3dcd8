"""Throughput of `python app.py batch` with 1 and 2 (or more) Ray workers, against one process (--local).

    python benchmarks/batch_throughput.py [--workers 1 2] [--photos 16] [--frames 96] [--device auto]

Makes a folder of real photos (../shared/images, copied to reach --photos) and a clip of --frames frames at 640x480
(a real photo panning), runs each configuration as the command line does (a fresh process that starts its own local
Ray runtime) and reads batch-summary.json: images/s and video frames/s over the time after the workers were ready
(Ray's start-up and the model loads are given apart). face-deid (retinaface-mnet, official weights from $CVPG_HOME)
covers photos and the clip (split into frame ranges), super-resolution srgan-x4 covers photos at 128 px.
Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CASES = (  # (task, model, inputs, extra options)
    ("face-deid", "retinaface-mnet", "photos", []),
    ("face-deid", "retinaface-mnet", "clip", []),
    ("super-resolution", "srgan-x4", "small photos", []),
)


def make_inputs(folder: Path, photos: int, frames: int) -> dict[str, Path]:
    import cv2
    import numpy as np
    from PIL import Image

    sources = sorted((SHARED / "images").glob("flickr_*.jpg")) or sorted((SHARED / "images").glob("*.jpg"))
    if not sources:
        sys.exit("no photos in ../shared/images")
    made = {name: folder / name.replace(" ", "_") for name, _ in (("photos", 0), ("clip", 0), ("small photos", 0))}
    for path in made.values():
        path.mkdir(parents=True)
    for index in range(photos):
        source = sources[index % len(sources)]
        shutil.copy(source, made["photos"] / f"{index:03d}{source.suffix}")
        small = Image.open(source).convert("RGB")
        small.thumbnail((128, 128))
        small.save(made["small photos"] / f"{index:03d}.png")
    scene = cv2.resize(np.asarray(Image.open(SHARED / "images" / "people_demo.jpg").convert("RGB")), (480, 704))
    writer = cv2.VideoWriter(str(made["clip"] / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (640, 480))
    for index in range(frames):
        canvas = np.zeros((480, 640, 3), np.uint8)
        canvas[:, 80:560] = scene[index % 200: index % 200 + 480]
        writer.write(cv2.cvtColor(np.roll(canvas, 3 * index, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    return made


def run_batch(task: str, model: str, folder: Path, out: Path, workers: int | None, device: str) -> dict:
    """One batch as a person runs it; workers None: --local (one process, no Ray)."""
    engine = ["--local"] if workers is None else ["--workers", str(workers)]
    command = [sys.executable, str(ROOT / "app.py"), "batch", task, str(folder), "-o", str(out), "--model", model,
               "--device", device, *engine]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    summary = json.loads((out / "batch-summary.json").read_text())
    summary["command_s"] = time.perf_counter() - started
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-local", action="store_true", help="skip the one-process baseline")
    args = parser.parse_args()
    os.environ.setdefault("CVPG_HOME", str(SHARED / "weights"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="cvpg-batch-bench-") as tmp:
        inputs = make_inputs(Path(tmp) / "in", args.photos, args.frames)
        for task, model, what, _ in CASES:
            for workers in ([] if args.no_local else [None]) + args.workers:
                out = Path(tmp) / "out" / f"{task}-{what}-{workers}".replace(" ", "_")
                summary = run_batch(task, model, inputs[what], out, workers, args.device)
                rate = summary["throughput"]
                rows.append((task, model, what, "local (1 process)" if workers is None else f"Ray, {workers}",
                             summary["engine"].get("devices", ["-"]), rate["images_per_s"], rate["video_frames_per_s"],
                             summary["engine"].get("startup_s", 0.0), summary["command_s"]))
                print(rows[-1], file=sys.stderr, flush=True)
    import torch

    print(f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}; {args.photos} photos, a {args.frames}-frame 640x480 clip.\n")
    print("| task | model | inputs | engine (workers) | device | images/s | video frames/s | start-up s | command s |")
    print("|---|---|---|---|---|---:|---:|---:|---:|")
    for task, model, what, engine, devices, images, frames, startup, total in rows:
        print(f"| {task} | {model} | {what} | {engine} | {', '.join(devices)} | {images or '-'} | {frames or '-'} | "
              f"{startup:.1f} | {total:.1f} |")


if __name__ == "__main__":
    main()
