"""A 108-megapixel phone photo (12000x9000 JPEG) through the instance and face tabs, against the same photo saved at
1333 px and at the tab's own size limit: decoding at a reduced JPEG scale should make the big file cost about what
the small one does.

    python -m benchmarks.big_photo [--repeats 3] [--markdown benchmarks/RESULTS.md]

In-process, on this machine's device. Face de-identification uses RetinaFace from ../shared/weights (or
$CVPG_HOME); Mask R-CNN v2 runs with random weights in torchvision's layout when its checkpoint is absent (the same
work per pixel; the few random detections are capped at 10, like bench.py). Times are the median of the repeats.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from benchmarks import results

ROOT = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights"
SECTION = "## A 108-megapixel photo"
BIG = (12000, 9000)


def photo_files(folder: Path) -> dict[str, Path]:
    """The astronaut (scikit-image, public domain) upscaled to 12000x9000, and the same picture at smaller sizes."""
    from skimage import data

    base = Image.fromarray(data.astronaut())
    big = base.resize(BIG, Image.Resampling.BILINEAR)
    files = {}
    for label, width in (("12000x9000", BIG[0]), ("2048 px", 2048), ("1333 px", 1333)):
        path = folder / f"photo-{width}.jpg"
        picture = big if width == BIG[0] else big.resize((width, width * BIG[1] // BIG[0]), Image.Resampling.LANCZOS)
        picture.save(path, quality=90)
        files[label] = path
    return files


def prepare_instance():
    from models import maskrcnn, runtime
    from models.tabs import instance

    device = runtime.device()
    try:
        maskrcnn.load("maskrcnn-r50-fpn-v2", device)
        source = "official"
    except Exception:  # noqa: BLE001 (no checkpoint here: random weights of the same network)
        import torch

        torch.manual_seed(0)
        net = runtime.prepare(maskrcnn.build("maskrcnn-r50-fpn-v2"), device)
        net.roi_heads.detections_per_img = 10
        runtime.MODELS.get(maskrcnn.cache_key("maskrcnn-r50-fpn-v2", device), lambda: net)
        source = "random weights"
    return instance.TASK, {"model": "maskrcnn-r50-fpn-v2"}, source


def prepare_face():
    from models.tabs import face_deid

    return face_deid.TASK, {"model": "retinaface-mnet", "verify": False}, "official (../shared)"


def timed(task, path: Path, values: dict) -> tuple[float, float, tuple[int, int]]:
    """(decode s, run s, decoded size) of one request as the app serves it: load within the tab's limit, then run."""
    from models import images

    started = time.perf_counter()
    loaded = images.load(path, max_side=task.max_side)
    decoded = time.perf_counter()
    task.run(loaded, **{**task.defaults(), **values})
    return decoded - started, time.perf_counter() - decoded, loaded.size


def measure(repeats: int) -> list[dict]:
    from models import runtime, weights

    weights.set_offline(True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        files = photo_files(Path(folder))
        for prepare in (prepare_instance, prepare_face):
            task, values, source = prepare()
            timed(task, files["1333 px"], values)  # warm-up: first-call costs are not the photo's
            for label, path in files.items():
                runs = [timed(task, path, values) for _ in range(repeats)]
                rows.append({"tab": task.id, "model": values["model"], "weights": source, "photo": label,
                             "file_mb": path.stat().st_size / 1e6, "size": runs[0][2],
                             "decode_s": statistics.median(r[0] for r in runs),
                             "run_s": statistics.median(r[1] for r in runs)})
    rows.append({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                 "device": runtime.describe(runtime.device())})
    return rows


def render(rows: list[dict]) -> str:
    summary = rows[-1]
    lines = [SECTION, "", f"`python -m benchmarks.big_photo` on {summary['device']} ({os.cpu_count()} cores), median "
             "of the repeats, in-process. The photo is decoded within the tab's size limit (JPEG's 1/2, 1/4, 1/8 "
             "scales), then the tab runs as the app serves it. Ratios are to the same photo saved at 1333 px, "
             f"measured in the same run. Peak RSS of the whole run: {summary['peak_rss_mb']:.0f} MB.", "",
             "| tab | model (weights) | photo | file | decoded to | decode | run | total | vs 1333 px |",
             "|---|---|---|---|---|---|---|---|---|"]
    base = {row["tab"]: row["decode_s"] + row["run_s"] for row in rows[:-1] if row["photo"] == "1333 px"}
    for row in rows[:-1]:
        total = row["decode_s"] + row["run_s"]
        lines.append(f"| {row['tab']} | {row['model']} ({row['weights']}) | {row['photo']} | {row['file_mb']:.1f} MB "
                     f"| {row['size'][0]}x{row['size'][1]} | {row['decode_s']:.2f} s | {row['run_s']:.2f} s "
                     f"| {total:.2f} s | {total / base[row['tab']]:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", type=Path, help="write the section into this RESULTS.md")
    args = parser.parse_args(argv)
    if "CVPG_HOME" not in os.environ and SHARED_WEIGHTS.is_dir():
        os.environ["CVPG_HOME"] = str(SHARED_WEIGHTS)
    sys.path.insert(0, str(ROOT))
    text = render(measure(args.repeats))
    print(text)
    if args.markdown:
        results.write_heading_section(SECTION, text, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
