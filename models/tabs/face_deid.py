"""Face de-identification: RetinaFace finds faces and five landmarks, `anonymize` hides them; photos and videos.

`run()` is the tab's pipeline for one image (UI, webcam frames and `python app.py predict face-deid`), and
`run_video()` applies the same to every frame of a clip, writing a WebM (VP8) that browsers play. Audio is dropped.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import anonymize, draw, retinaface, runtime, video
from ..images import LoadedImage
from ..tasks import Option, Task, TaskOutput

TASK_ID = "face-deid"
DETECTORS = tuple(retinaface.VARIANTS)
DEFAULT_DETECTOR = retinaface.DEFAULT_MODEL


def style_from(options: dict) -> anonymize.Style:
    return anonymize.Style(mode=options["mode"], strength=options["strength"], block=options["block"],
                           enlarge=options["enlarge"], shape=options["shape"], feather=options["feather"])


def detect(rgb: np.ndarray, model: str = DEFAULT_DETECTOR, checkpoint: str | None = None,
           score_threshold: float = 0.5, nms_iou: float = 0.4, working_side: int = 0, min_face: int = 0,
           progress=None) -> retinaface.FaceDetections:
    net = retinaface.load(model, runtime.device(), checkpoint_file=checkpoint, progress=progress)
    return retinaface.predict(net, rgb, score_threshold=score_threshold, nms_iou=nms_iou,
                              max_side=working_side or None, min_face=min_face)


def overlay(rgb: np.ndarray, faces: retinaface.FaceDetections) -> np.ndarray:
    """Boxes with scores and the five landmarks, for the "show detections" view."""
    drawn = draw.boxes(rgb, faces.boxes, [f"{score:.2f}" for score in faces.scores])
    return draw.points(drawn, faces.landmarks, draw.FACE_LANDMARK_COLORS)


def face_table(faces: retinaface.FaceDetections) -> list[dict]:
    return [{"box": [round(float(v), 1) for v in box], "score": round(float(score), 4),
             "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in points]}
            for box, score, points in zip(faces.boxes, faces.scores, faces.landmarks)]


def run(loaded: LoadedImage, model: str = DEFAULT_DETECTOR, checkpoint: str | None = None, progress=None,
        **options) -> TaskOutput:
    device = runtime.device()
    with runtime.stopwatch(device) as detect_time:
        faces = detect(loaded.rgb, model, checkpoint, options["score_threshold"], options["nms_iou"],
                       options["working_side"], options["min_face"], progress)
    with runtime.stopwatch() as hide_time:
        hidden = anonymize.anonymize(loaded.rgb, faces.boxes, faces.landmarks, style_from(options))
    images = {"anonymized": hidden}
    if options["show_detections"]:
        images["detections"] = overlay(loaded.rgb, faces)
    w, h = loaded.size
    record = {
        "task": TASK_ID, "model": model, "checkpoint": checkpoint or model, "device": runtime.describe(device),
        "input_size": list(loaded.original_size), "working_size": [w, h], "faces": face_table(faces),
        "face_count": len(faces), "style": asdict(style_from(options)), "notes": loaded.notes,
        "ms": {"detect": round(detect_time["ms"], 1), "anonymize": round(hide_time["ms"], 1)},
    }
    found = f"{len(faces)} face{'s' if len(faces) != 1 else ''}" if len(faces) else "no faces found"
    summary = (f"{model} on {record['device']}: {found} in {w}x{h}, detection {detect_time['ms']:.0f} ms, "
               f"{options['mode']} {hide_time['ms']:.0f} ms")
    return TaskOutput(images, record, summary)


def run_video(source: str | Path, target: str | Path, model: str = DEFAULT_DETECTOR, checkpoint: str | None = None,
              progress=None, **options) -> dict:
    """Anonymise every frame of `source` into `target` (.webm, VP8, same size and frame rate, no audio)."""
    style = style_from(options)

    def hide(rgb):
        faces = detect(rgb, model, checkpoint, options["score_threshold"], options["nms_iou"],
                       options["working_side"], options["min_face"])
        return anonymize.anonymize(rgb, faces.boxes, faces.landmarks, style), len(faces)

    info, counts = video.map_frames(source, target, hide, progress)
    return {"task": TASK_ID, "model": model, "device": runtime.describe(runtime.device()), "fps": info.fps,
            "frames": info.frames, "size": [info.width, info.height], "faces_per_frame": counts,
            "max_faces": max(counts), "audio": "dropped", "output": str(target)}


TASK = Task(
    id=TASK_ID,
    title="Face de-identification",
    models=DETECTORS,
    default_model=DEFAULT_DETECTOR,
    options=(
        Option("mode", "blur", "how faces are hidden", choices=anonymize.MODES, label="Hide faces with"),
        Option("strength", 0.5, "blur strength, or pixel block size for pixelate", minimum=0.0, maximum=1.0,
               step=0.05),
        Option("block", 0, "pixelate: block side in pixels (0: from strength)", minimum=0, maximum=256,
               label="Pixelate block (px, 0 = from strength)"),
        Option("enlarge", 1.2, "the hidden region is the face box scaled by this", minimum=1.0, maximum=2.5,
               label="Enlarge region", step=0.05),
        Option("shape", "ellipse", "shape of the hidden region", choices=anonymize.SHAPES, label="Region shape"),
        Option("feather", 0.1, "soft edge, as a fraction of the face size", minimum=0.0, maximum=0.5,
               label="Feather (soft edge)", step=0.02),
        Option("score_threshold", 0.5, "faces scoring below this are ignored", minimum=0.05, maximum=0.99,
               label="Face score threshold", step=0.01),
        Option("nms_iou", 0.4, "overlap above which the weaker of two boxes is dropped", minimum=0.1, maximum=0.9,
               label="NMS IoU", step=0.05),
        Option("working_side", 0, "detect at this longest side in px (0: original resolution)", minimum=0,
               maximum=4096, label="Working resolution (longest side, 0 = original)", step=32),
        Option("min_face", 0, "ignore faces smaller than this many pixels", minimum=0, maximum=1024,
               label="Minimum face size (px)"),
        Option("show_detections", True, "also draw boxes, scores and landmarks",
               label="Show detections (boxes, scores, landmarks)"),
    ),
    max_side=2048,
    run=run,
    preload=lambda model: retinaface.load(model),
    run_video=run_video,
    video_suffixes=video.VIDEO_SUFFIXES,
)
