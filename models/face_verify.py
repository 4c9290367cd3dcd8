"""The face tab's two detectors by name, and the proof that hiding worked: both run again on the result.

RetinaFace (two variants) and CenterFace find faces with five landmarks each. Whichever one hides the faces, the
other one verifies: a face that one network misses is often found by the other, so a result that neither finds a face
in holds up better than one checked by the network that made it. `check_and_rehide` runs both detectors on an
anonymised image and, with `until_none`, re-hides what they still find with a stronger style, a bounded number of
rounds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from . import anonymize, centerface, retinaface, runtime, weights
from .retinaface import FaceDetections

DETECTORS = (*retinaface.VARIANTS, "centerface")
DEFAULT_DETECTOR = retinaface.DEFAULT_MODEL
VERIFIER = {"retinaface-mnet": "centerface", "retinaface-r50": "centerface", "centerface": "retinaface-mnet"}
VERIFY_THRESHOLD = 0.5  # both networks' own default operating point: what a third party running them would see
SAME_FACE_IOU = 0.3  # two detectors' boxes overlapping this much are one face


def load(model: str, checkpoint: str | None = None, progress=None):
    """The detector `model` on the current device (a user's `checkpoint`: a .pth for RetinaFace, an .onnx for
    CenterFace)."""
    if model == "centerface":
        return centerface.load(runtime.device(), checkpoint_file=checkpoint, progress=progress)
    return retinaface.load(model, runtime.device(), checkpoint_file=checkpoint, progress=progress)


def detect(rgb: np.ndarray, model: str = DEFAULT_DETECTOR, checkpoint: str | None = None,
           score_threshold: float = 0.5, nms_iou: float = 0.4, working_side: int = 0, min_face: int = 0,
           progress=None) -> FaceDetections:
    """Faces in an RGB image by either network, as RetinaFace's FaceDetections (boxes, scores, landmarks)."""
    net = load(model, checkpoint, progress)
    if model != "centerface":
        return retinaface.predict(net, rgb, score_threshold=score_threshold, nms_iou=nms_iou,
                                  max_side=working_side or None, min_face=min_face)
    found = centerface.predict(net, rgb, threshold=score_threshold, nms_iou=nms_iou, max_side=working_side or None)
    keep = np.minimum(found.boxes[:, 2] - found.boxes[:, 0], found.boxes[:, 3] - found.boxes[:, 1]) >= min_face
    return FaceDetections(found.boxes[keep], found.scores[keep], found.landmarks[keep], found.image_size)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` (N, 4) with every box in `b` (M, 4): (N, M)."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    x0, y0 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x1, y1 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def merged(found: dict[str, FaceDetections]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) and landmarks (N, 5, 2) of the distinct faces several detectors found: a face both found once."""
    boxes, points = np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32)
    for faces in found.values():
        if len(faces) == 0:
            continue
        new = iou_matrix(faces.boxes, boxes).max(axis=1, initial=0) < SAME_FACE_IOU
        boxes = np.concatenate([boxes, faces.boxes[new]])
        points = np.concatenate([points, faces.landmarks[new]])
    return boxes, points


@dataclass
class Verification:
    """What the detectors still find on the result, after every round of re-hiding."""

    found: dict[str, FaceDetections]  # per detector, on the final result, at VERIFY_THRESHOLD
    rounds: list[dict] = field(default_factory=list)  # per re-hiding round: the boxes hidden again and the style
    skipped: str = ""  # why no verification ran (a detector's weights missing, say)
    why_not: str = ""  # with until_none: why faces are still detectable

    @property
    def count(self) -> int:
        return len(merged(self.found)[0])

    def record(self) -> dict:
        if self.skipped:
            return {"ran": False, "skipped": self.skipped}
        return {
            "ran": True, "threshold": VERIFY_THRESHOLD, "still_detectable": self.count,
            "by_detector": {name: {"count": len(faces), "boxes": _rounded(faces.boxes),
                                   "scores": [round(float(s), 4) for s in faces.scores]}
                            for name, faces in self.found.items()},
            "rounds": self.rounds, "why_not": self.why_not,
        }

    def summary(self) -> str:
        if self.skipped:
            return f"not verified ({self.skipped})"
        counts = ", ".join(f"{name} {len(faces)}" for name, faces in self.found.items())
        words = f"{self.count} face{'s' if self.count != 1 else ''} still detectable ({counts})"
        return words + (f" after {len(self.rounds)} more round{'s' if len(self.rounds) != 1 else ''}"
                        if self.rounds else "")


def verify(rgb: np.ndarray, model: str, checkpoint: str | None = None) -> dict[str, FaceDetections]:
    """Both detectors on `rgb` at full resolution: the one that hid the faces (with the same weights) and the other."""
    return {name: detect(rgb, name, checkpoint if name == model else None, VERIFY_THRESHOLD)
            for name in (model, VERIFIER[model])}


def check_and_rehide(hidden: np.ndarray, style: anonymize.Style, model: str, checkpoint: str | None = None,
                     until_none: bool = False, max_rounds: int = 3) -> tuple[np.ndarray, Verification]:
    """Look for faces on an anonymised image with both detectors; with `until_none`, hide what they find with
    `anonymize.stronger(style, round)` and look again, at most `max_rounds` times. Returns the final image."""
    try:
        check = Verification(verify(hidden, model, checkpoint))
    except weights.WeightsError as error:
        return hidden, Verification({}, skipped=f"{VERIFIER[model]} unavailable: {error}")
    while until_none and check.count and len(check.rounds) < max_rounds:
        boxes, points = merged(check.found)
        stronger = anonymize.stronger(style, len(check.rounds) + 1)
        hidden = anonymize.anonymize(hidden, boxes, points, stronger)
        check.rounds.append({"round": len(check.rounds) + 1, "boxes": _rounded(boxes), "style": asdict(stronger)})
        check.found = verify(hidden, model, checkpoint)
    if until_none and check.count:
        check.why_not = (f"{check.count} still detectable after {max_rounds} round{'s' if max_rounds != 1 else ''} "
                         "(the limit): raise max_rounds, the strength or the enlargement, or use fill")
    return hidden, check


def _rounded(boxes: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 1) for v in box] for box in boxes]
