"""Face de-identification: RetinaFace or CenterFace finds faces and five landmarks, `anonymize` hides them, and the
other network checks the result; photos and videos.

`run()` is the tab's pipeline for one image (UI, webcam frames and `python app.py predict face-deid`): detect, hide,
then (`verify`) run both detectors on the output and report the faces still detectable, re-hiding them with
`until_none`. `run_video()` detects faces in every frame first, holds each face over the neighbouring frames
(`face_hold`), then writes a WebM (VP8) that browsers play. Audio is dropped.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import anonymize, draw, face_hold, face_verify, runtime, video
from ..images import LoadedImage
from ..retinaface import FaceDetections
from ..tasks import Option, Task, TaskOutput

TASK_ID = "face-deid"
DETECTORS = face_verify.DETECTORS
DEFAULT_DETECTOR = face_verify.DEFAULT_DETECTOR
WARNING_COLOR = "#ff2d2d"  # regions a detector still finds on the result
DETECTION_SHARE = 0.6  # of a video's progress bar: the detection pass (then the writing pass)


def style_from(options: dict) -> anonymize.Style:
    return anonymize.Style(mode=options["mode"], strength=options["strength"], block=options["block"],
                           enlarge=options["enlarge"], shape=options["shape"], feather=options["feather"],
                           mask_face=options["mask_face"])


def detect(rgb: np.ndarray, model: str = DEFAULT_DETECTOR, checkpoint: str | None = None,
           score_threshold: float = 0.3, nms_iou: float = 0.4, working_side: int = 0, min_face: int = 0,
           progress=None) -> FaceDetections:
    return face_verify.detect(rgb, model, checkpoint, score_threshold, nms_iou, working_side, min_face, progress)


def _detect_with(rgb: np.ndarray, model: str, checkpoint: str | None, options: dict, progress=None) -> FaceDetections:
    return detect(rgb, model, checkpoint, options["score_threshold"], options["nms_iou"], options["working_side"],
                  options["min_face"], progress)


def overlay(rgb: np.ndarray, faces: FaceDetections) -> np.ndarray:
    """Boxes with scores and the five landmarks, for the "show detections" view."""
    drawn = draw.boxes(rgb, faces.boxes, [f"{score:.2f}" for score in faces.scores])
    return draw.points(drawn, faces.landmarks, draw.FACE_LANDMARK_COLORS)


def residual_overlay(hidden: np.ndarray, check: face_verify.Verification) -> np.ndarray:
    """The result with every region a detector still finds outlined in the warning colour, named by detector."""
    boxes = [faces.boxes for faces in check.found.values()]
    labels = [f"{name} {score:.2f}" for name, faces in check.found.items() for score in faces.scores]
    return draw.boxes(hidden, np.concatenate(boxes) if boxes else np.zeros((0, 4)), labels, color=WARNING_COLOR)


def face_table(faces: FaceDetections) -> list[dict]:
    return [{"box": [round(float(v), 1) for v in box], "score": round(float(score), 4),
             "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in points]}
            for box, score, points in zip(faces.boxes, faces.scores, faces.landmarks)]


def run(loaded: LoadedImage, model: str = DEFAULT_DETECTOR, checkpoint: str | None = None, progress=None,
        **options) -> TaskOutput:
    device = runtime.device()
    style = style_from(options)
    with runtime.stopwatch(device) as detect_time:
        faces = _detect_with(loaded.rgb, model, checkpoint, options, progress)
    with runtime.stopwatch() as hide_time:
        hidden = anonymize.anonymize(loaded.rgb, faces.boxes, faces.landmarks, style)
    check = None
    with runtime.stopwatch(device) as verify_time:
        if options["verify"] or options["until_none"]:
            hidden, check = face_verify.check_and_rehide(hidden, style, model, checkpoint, options["until_none"],
                                                         options["max_rounds"])
    images = {"anonymized": hidden}
    if options["show_detections"]:
        images["detections"] = overlay(loaded.rgb, faces)
    if check is not None and not check.skipped:
        images["still_detectable"] = residual_overlay(hidden, check)
    w, h = loaded.size
    record = {
        "task": TASK_ID, "model": model, "checkpoint": checkpoint or model, "device": runtime.describe(device),
        "input_size": list(loaded.original_size), "working_size": [w, h], "faces": face_table(faces),
        "face_count": len(faces), "style": asdict(style), "notes": loaded.notes,
        "verification": check.record() if check is not None else {"ran": False, "skipped": "verify is off"},
        "ms": {"detect": round(detect_time["ms"], 1), "anonymize": round(hide_time["ms"], 1),
               "verify": round(verify_time["ms"], 1)},
    }
    found = f"{len(faces)} face{'s' if len(faces) != 1 else ''}" if len(faces) else "no faces found"
    summary = (f"{model} on {record['device']}: {found} in {w}x{h}, detection {detect_time['ms']:.0f} ms, "
               f"{options['mode']} {hide_time['ms']:.0f} ms")
    if check is not None:
        summary += f"; {check.summary()}"
    return TaskOutput(images, record, summary)


# A video in three steps (batch.py splits a clip into frame ranges with them): analyse each frame alone, plan the
# whole clip (the hold looks across frames), render each frame from its plan.


def analyse_frame(model: str = DEFAULT_DETECTOR, checkpoint: str | None = None, **options):
    """rgb -> the frame's faces (FrameFaces)."""
    def faces(rgb: np.ndarray) -> face_hold.FrameFaces:
        found = _detect_with(rgb, model, checkpoint, options)
        return face_hold.FrameFaces(found.boxes, found.landmarks)

    return faces


def plan_frames(analyses: list[face_hold.FrameFaces], **options) -> list[face_hold.HeldFaces]:
    """Every frame's faces plus those the hold fills in from `hold_frames` frames either side."""
    return face_hold.hold(analyses, options["hold_frames"])


def render_frame(model: str = DEFAULT_DETECTOR, checkpoint: str | None = None, **options):
    """(rgb, the frame's plan) -> (the anonymised frame, the plan)."""
    style = style_from(options)
    return lambda rgb, faces: (anonymize.anonymize(rgb, faces.boxes, faces.landmarks, style), faces)


def video_record(info: video.VideoInfo, hidden: list[face_hold.HeldFaces], model: str, target, **options) -> dict:
    counts = [len(faces) - faces.held for faces in hidden]
    return {"task": TASK_ID, "model": model, "device": runtime.describe(runtime.device()), "fps": info.fps,
            "frames": info.frames, "size": [info.width, info.height], "faces_per_frame": counts,
            "held_per_frame": [faces.held for faces in hidden], "hold_frames": options["hold_frames"],
            "max_faces": max(counts), "style": asdict(style_from(options)), "audio": "dropped", "output": str(target),
            "verification": "photos only: three detector passes per frame would triple the time"}


def video_plan(source: str | Path, model: str = DEFAULT_DETECTOR, checkpoint: str | None = None, progress=None,
               **options) -> list[face_hold.HeldFaces]:
    """The faces to hide in every frame of `source` (the first of run_video's two passes)."""
    info = video.probe(source)
    analyse = analyse_frame(model, checkpoint, **options)
    analyses = []
    for rgb in video.read_frames(source):
        analyses.append(analyse(rgb))
        if progress is not None:
            progress(DETECTION_SHARE * len(analyses) / max(info.frames, 1),
                     f"Finding faces: frame {len(analyses)} of {info.frames}")
    return plan_frames(analyses, **options)


def run_video(source: str | Path, target: str | Path, model: str = DEFAULT_DETECTOR, checkpoint: str | None = None,
              progress=None, **options) -> dict:
    """Anonymise every frame of `source` into `target` (.webm, VP8, same size and frame rate, no audio)."""
    plan = iter(video_plan(source, model, checkpoint, progress, **options))
    render = render_frame(model, checkpoint, **options)

    def hide(rgb):
        faces = next(plan, None)
        if faces is None:
            raise video.VideoError(f"{Path(source).name} gave more frames on the second reading than on the first.")
        return render(rgb, faces)

    def writing(fraction, text):
        if progress is not None:
            progress(DETECTION_SHARE + (1 - DETECTION_SHARE) * fraction, f"Hiding: {text.lower()}")

    info, hidden = video.map_frames(source, target, hide, writing)
    return video_record(info, hidden, model, target, **options)


# Defaults chosen by measurement on ../shared/images/faces_crowd.jpg (benchmarks/face_residuals.py, table in
# benchmarks/RESULTS.md): with RetinaFace at 0.3 (it catches faces 0.5 missed, which were the leaks under a fill) and
# regions 1.5x the box (hair and outline go with the face, so no head shape is left), every mode leaves at most 6% of
# RetinaFace's faces and 1.2% of CenterFace's detectable; the old 0.5 / 1.2x blur left 27% and 6%. The hold: on a pan
# over that photo, 1682 faces seen in a neighbouring frame were left visible without it, none with 1 to 3 frames; 2
# leaves room for a detector missing a face two frames running.
TASK = Task(
    id=TASK_ID,
    title="Face de-identification",
    models=DETECTORS,
    default_model=DEFAULT_DETECTOR,
    options=(
        Option("mode", "blur", "how faces are hidden", choices=anonymize.MODES, label="Hide faces with"),
        Option("strength", 0.5, "blur radius, pixelate block size, or the blur under the eye bar (0: the bar "
               "alone); grows with the face, and tiny faces are flattened whole", minimum=0.0, maximum=1.0, step=0.05),
        Option("block", 0, "pixelate: block side in pixels (0: from strength and the face's size)", minimum=0,
               maximum=256, label="Pixelate block (px, 0 = from strength)"),
        Option("enlarge", 1.5, "the hidden region is the face box scaled by this", minimum=1.0, maximum=2.5,
               label="Enlarge region", step=0.05),
        Option("shape", "ellipse", "shape of the hidden region", choices=anonymize.SHAPES, label="Region shape"),
        Option("feather", 0.1, "soft edge, as a fraction of the face size", minimum=0.0, maximum=0.5,
               label="Feather (soft edge)", step=0.02),
        Option("mask_face", False, "drawn mask: draw eyes and a smile on it (detectors then find the cartoon as a "
               "face)", label="Drawn mask: cartoon face"),
        Option("score_threshold", 0.3, "faces scoring below this are not hidden (lower hides more, false alarms "
               "included)", minimum=0.05, maximum=0.99, label="Face score threshold", step=0.01),
        Option("nms_iou", 0.4, "overlap above which the weaker of two boxes is dropped", minimum=0.1, maximum=0.9,
               label="NMS IoU", step=0.05),
        Option("working_side", 0, "detect at this longest side in px (0: original resolution)", minimum=0,
               maximum=4096, label="Working resolution (longest side, 0 = original)", step=32),
        Option("min_face", 0, "ignore faces smaller than this many pixels", minimum=0, maximum=1024,
               label="Minimum face size (px)"),
        Option("show_detections", True, "also draw boxes, scores and landmarks",
               label="Show detections (boxes, scores, landmarks)"),
        Option("verify", True, "run both detectors on the result and report the faces still detectable (photos)",
               label="Verify with both detectors"),
        Option("until_none", False, "re-hide what the detectors still find, more strongly, until none is left",
               label="Until none"),
        Option("max_rounds", 3, "until none: at most this many rounds of re-hiding", minimum=1, maximum=10,
               label="Until none: max rounds"),
        Option("hold_frames", 2, "video: hide each face also this many frames before and after it is detected",
               minimum=0, maximum=30, label="Video: hold faces (frames)"),
    ),
    max_side=2048,
    run=run,
    preload=lambda model: face_verify.load(model),
    run_video=run_video,
    video_suffixes=video.VIDEO_SUFFIXES,
)
