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
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RANDOM = "random (official file not on this machine)"


@dataclass
class Case:
    """One benchmark row: how to get the network, its input, and the three levels to time."""

    net: object  # the loaded network, or None (bicubic)
    weights: str
    input_size: tuple[int, int]
    forward: Callable[[], object] | None
    predict: Callable[[], object] | None  # None: not meaningful with random weights
    run: Callable[[], object] | None


def _photo(width: int, height: int):
    import numpy as np

    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _load_or_random(load: Callable, build: Callable, cache_key: tuple):
    """Official weights if present; else a random network, cached under the official key so `run` uses it too."""
    from models import runtime, weights

    try:
        return load(), "official"
    except weights.WeightsError:
        net = build()
        net.eval().requires_grad_(False).to(runtime.device())
        if runtime.half_precision(runtime.device()):
            net.half()
        runtime.MODELS.get(cache_key, lambda: net)
        return net, RANDOM


def super_resolution_case(model_name: str, size: int = 128) -> Case:
    import torch

    from models import images, runtime, super_resolution as sr

    spec, device = sr.MODELS[model_name], runtime.device()
    photo = _photo(size, size)
    net, source = None, "none"
    forward = None
    if spec.arch != "bicubic":
        net, source = _load_or_random(lambda: sr.load(model_name, device), lambda: sr.build(model_name),
                                      sr.cache_key(model_name, device))
        tensor = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].to(device, next(net.parameters()).dtype) / 255

        def forward():
            with torch.inference_mode():
                return net(tensor)

    loaded = images.load(photo)
    return Case(net, source, (size, size), forward,
                lambda: sr.predict(net, photo, spec.scale, tile=spec.default_tile),
                lambda: sr.run(loaded, model_name))


def face_deid_case(model_name: str, width: int = 640, height: int = 480) -> Case:
    import torch

    from models import face_deid, images, retinaface, runtime

    device = runtime.device()
    net, source = _load_or_random(lambda: retinaface.load(model_name, device), lambda: retinaface.build(model_name),
                                  retinaface.cache_key(model_name, device))
    photo = _photo(width, height)
    tensor = retinaface.preprocess(photo, None, device, next(net.parameters()).dtype)

    def forward():
        with torch.inference_mode():
            return net(tensor)

    loaded = images.load(photo)
    options = {**face_deid.TASK.parse_options([]), "show_detections": False}  # as a live frame runs it
    if source == RANDOM:  # random heads "detect" thousands of faces: decoding and hiding them says nothing
        return Case(net, source, (width, height), forward, None, None)
    return Case(net, source, (width, height), forward, lambda: retinaface.predict(net, photo),
                lambda: face_deid.run(loaded, model_name, **options))


def translation_case(spec: str) -> Case:
    """spec "family/model@size", e.g. "cyclegan/horse2zebra@512": the generator alone, without the cycle."""
    import torch

    from models import images, runtime, translation

    family_model, size = spec.split("@")
    family, model_name = family_model.split("/")
    size = int(size)
    device = runtime.device()
    key = ("translation", family, model_name, None, str(device))
    net, source = _load_or_random(lambda: translation.load(family, model_name, device),
                                  lambda: translation.build(family), key)
    photo = _photo(size, size)
    work = translation.PIX2PIX_SIDE if family == "pix2pix" else size
    tensor = translation.to_tensor(photo[:work, :work], device, next(net.parameters()).dtype)

    def forward():
        with torch.inference_mode():
            return net(tensor)

    loaded = images.load(photo)
    if family == "pix2pix":
        return Case(net, source, (size, size), forward, lambda: translation.translate_pix2pix(net, photo),
                    lambda: translation.run_pix2pix(loaded, model_name))
    return Case(net, source, (size, size), forward, lambda: translation.translate_cyclegan(net, photo),
                lambda: translation.run_cyclegan(loaded, model_name, show_cycle=False, working_side=size))


def landmarks_case(model_name: str) -> Case:
    """Keypoint R-CNN on a 640x480 photo; FAN on one face crop (256x256), which is the per-face cost."""
    import torch

    from models import heatmaps, images, landmarks, runtime

    device = runtime.device()
    net, source = _load_or_random(lambda: landmarks.load(model_name, device), lambda: landmarks.build(model_name),
                                  landmarks.cache_key(model_name, device))
    dtype = next(net.parameters()).dtype
    if model_name == landmarks.POSE_MODEL:
        if source == RANDOM:
            net.roi_heads.detections_per_img = 5  # random heads keep 100 "people"; a photo has a few
        photo = _photo(640, 480)
        tensor = [torch.from_numpy(photo.copy()).permute(2, 0, 1).to(device, dtype) / 255]

        def forward():
            with torch.inference_mode():
                return net(tensor)

        loaded = images.load(photo)
        return Case(net, source, (640, 480), forward, lambda: landmarks.predict_pose(net, photo, 0.05),
                    lambda: landmarks.run(loaded, model_name, person_threshold=0.05))
    crop = torch.rand(1, 3, heatmaps.CROP_SIZE, heatmaps.CROP_SIZE, device=device, dtype=dtype)

    def forward():
        with torch.inference_mode():
            return net(crop)

    face = _photo(256, 256)
    box = np.array([[48.0, 40.0, 208.0, 220.0]], np.float32)
    return Case(net, source, (256, 256), forward, lambda: landmarks.predict_faces(net, face, box), None)


def style_case(model_name: str) -> Case:
    """Fast style and AdaIN on a 512x512 photo; Gatys: one optimisation step at 256 px (its per-step cost)."""
    from models import images, runtime, style_transfer as st
    from models.style_archs import TransformerNet, adain_decoder, adain_encoder

    device = runtime.device()
    builders = {"adain": lambda: st.AdaIN(adain_encoder(full=False), adain_decoder()), "gatys": st.gatys_vgg}
    net, source = _load_or_random(lambda: st.load(model_name, device), builders.get(model_name, TransformerNet),
                                  ("style", model_name, str(device)))
    style = st.builtin_style("stained-glass", 512)
    if model_name == "gatys":
        content = _photo(256, 256)

        def one_step():
            for report in st.gatys_steps(content, style, net, steps=1, every=1, max_side=256, optimizer="adam"):
                pass

        return Case(net, source, (256, 256), None, one_step, None)
    photo = _photo(512, 512)
    loaded = images.load(photo)
    if model_name == "adain":
        return Case(net, source, (512, 512), None, lambda: st.stylize_adain(net, photo, style),
                    lambda: st.run(loaded, model_name, max_side=512))
    return Case(net, source, (512, 512), None, lambda: st.stylize_fast(net, photo),
                lambda: st.run(loaded, model_name, max_side=512))


def segmentation_case(model_name: str) -> Case:
    """Mask R-CNN and Mask2Former on an 800x600 photo (the tabs' default working sizes)."""
    import torch

    from models import images, instance_segmentation as iseg, panoptic, runtime

    device = runtime.device()
    photo = _photo(800, 600)
    loaded = images.load(photo)
    if model_name.startswith("yolact"):
        from models import yolact

        net, source = _load_or_random(lambda: yolact.load(model_name, device), lambda: yolact.build(model_name),
                                      yolact.cache_key(model_name, device))
        tensor = yolact.preprocess(photo, 550, device, next(net.parameters()).dtype)

        def forward():
            with torch.inference_mode():
                return net(tensor)

        return Case(net, source, (800, 600), forward, lambda: yolact.predict(net, photo, 0.05),
                    lambda: yolact.run(loaded, model_name, score_threshold=0.05))
    if model_name in panoptic.MODELS:
        def random_mask2former():
            from transformers import Mask2FormerForUniversalSegmentation

            return panoptic.wrap(Mask2FormerForUniversalSegmentation(panoptic.swin_tiny_config())).net

        try:
            model, source = panoptic.load(model_name, device), "official"
        except Exception:
            model, source = panoptic.wrap(random_mask2former().to(device)), RANDOM
            runtime.MODELS.get(("mask2former", model_name, None, str(device)), lambda: model)
        inputs = model.processor(images=photo.copy(), return_tensors="pt")

        def forward():
            with torch.inference_mode():
                return model.net(pixel_values=inputs["pixel_values"].to(device))

        return Case(model.net, source, (800, 600), forward, lambda: panoptic.predict(model, photo),
                    lambda: panoptic.run(loaded, model_name))
    net, source = _load_or_random(lambda: iseg.load(model_name, device), lambda: iseg.build(model_name),
                                  iseg.cache_key(model_name, device))
    if source == RANDOM:
        net.roi_heads.detections_per_img = 10  # random heads keep 100 "objects"; a photo has a few
    tensor = [torch.from_numpy(photo.copy()).permute(2, 0, 1).to(device, next(net.parameters()).dtype) / 255]

    def forward():
        with torch.inference_mode():
            return net(tensor)

    return Case(net, source, (800, 600), forward, lambda: iseg.predict(net, photo, 0.05),
                lambda: iseg.run(loaded, model_name, score_threshold=0.05))


def keypoint_detection_case(model_name: str) -> Case:
    """CenterNet / CornerNet on a 640x480 photo at the tab's working size 512."""
    import torch

    from models import images, keypoint_detection as kd, runtime

    family = kd.centernet if model_name.startswith("centernet") else kd.cornernet
    device = runtime.device()
    net, source = _load_or_random(lambda: family.load(model_name, device), lambda: family.build(model_name),
                                  family.cache_key(model_name, device))
    photo = _photo(640, 480)
    tensor = kd.preprocess(photo, family.PAD, 512, device, next(net.parameters()).dtype)[0]

    def forward():
        with torch.inference_mode():
            return net(tensor)

    loaded = images.load(photo)
    return Case(net, source, (640, 480), forward, lambda: family.predict(net, photo, 0.3, None, 512),
                lambda: kd.TASK.run(loaded, model=model_name))


CASES = {
    "segmentation": (segmentation_case, lambda: ["maskrcnn-r50-fpn-v2", "maskrcnn-r50-fpn", "yolact-r101",
                                                 "yolact-r50", "mask2former-swin-tiny-coco-panoptic"]),
    "super-resolution": (super_resolution_case, lambda: list(__import__("models.super_resolution").super_resolution.MODELS)),
    "face-deid": (face_deid_case, lambda: list(__import__("models.face_deid").face_deid.DETECTORS)),
    "landmarks": (landmarks_case, lambda: ["keypointrcnn-resnet50-fpn", "2dfan4"]),
    "keypoint-detectors": (keypoint_detection_case,
                           lambda: ["centernet-r18", "centernet-r18-dcn", "cornernet-hg104"]),
    "style": (style_case, lambda: ["mosaic", "adain", "gatys"]),
    "translation": (translation_case, lambda: ["pix2pix/edges2shoes@256", "pix2pix/edges2shoes@512",
                                               "cyclegan/horse2zebra@256", "cyclegan/horse2zebra@512"]),
}


def measure_one(task: str, model_name: str, repeats: int) -> dict:
    """Runs in its own process, so its peak memory is its own."""
    import torch

    from models import runtime, weights

    weights.set_offline(True)
    device = runtime.device()
    baseline = _peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    case = CASES[task][0](model_name)

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", nargs="*", choices=list(CASES), help="tasks to measure (default: all)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--one", nargs=2, metavar=("TASK", "MODEL"), help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()

    from models import runtime

    runtime.set_device_preference(args.device)
    if args.one:
        print(json.dumps(measure_one(*args.one, args.repeats)))
        return 0
    rows = []
    for task in args.only or list(CASES):
        for model_name in CASES[task][1]():
            command = [sys.executable, __file__, "--one", task, model_name, "--repeats", str(args.repeats),
                       "--device", args.device]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
            if done.returncode != 0:
                print(f"{task}/{model_name}: failed\n{done.stderr}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"measured {task}/{model_name}", file=sys.stderr)
    text = table(rows, args.repeats)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text("# Benchmark results\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
