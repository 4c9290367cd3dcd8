"""The Landmarks tab: human pose with Keypoint R-CNN and 68 face landmarks with FAN, both by heatmap classification,
with the heatmaps on screen.

Two ways to localise points (the lecture's contrast): regress 2N coordinates, or predict one map per point and take
its peak. Both models here do the latter:
- Human pose: torchvision's Keypoint R-CNN (keypointrcnn.py): per detected person, 17 COCO keypoints from 56x56
  heatmap logits over the person's box.
- Face: FAN / 2DFAN-4 (fan.py), four stacked hourglasses predicting 68 64x64 heatmaps each, on faces found by
  RetinaFace or CenterFace, cropped and scaled as face-alignment does.

The face target also shows the other way: the face detector itself regresses five points as coordinates, and
face_points.py sets them beside the same five points taken from FAN's 68 (issue 13's comparison).

`run()` is the tab's pipeline (UI, live frames and `python app.py predict landmarks`): the chosen model's points, the
chosen keypoint's heatmap warped onto the photo, its Gaussian training target beside the network's heatmap, and for
faces the regressed-versus-heatmap comparison.
"""
from __future__ import annotations

import numpy as np

from .. import centerface, draw, face_points, fan, heatmaps, keypointrcnn, retinaface, runtime
from ..images import LoadedImage
from ..tasks import Option, Task, TaskOutput

TASK_ID = "landmarks"
TARGETS = {keypointrcnn.MODEL: "pose", fan.MODEL: "face"}
DEFAULT_MODEL_FOR = {"pose": keypointrcnn.MODEL, "face": fan.MODEL}
DEFAULT_MODEL = keypointrcnn.MODEL
NOSE = {"pose": keypointrcnn.NOSE, "face": fan.NOSE_TIP}  # keypoint -1 means the nose
# Face detectors: each finds the boxes FAN crops and regresses five points as coordinates.
FACE_DETECTORS = (*retinaface.CHECKPOINTS, centerface.CHECKPOINT.name)


def resolve(model: str, target: str) -> tuple[str, str]:
    """(target, model): "auto" follows the model; an explicit target picks its default model if the two disagree."""
    if model not in TARGETS:
        raise ValueError(f"Unknown landmarks model {model!r}; known: {', '.join(TARGETS)}")
    if target == "auto":
        return TARGETS[model], model
    if target not in DEFAULT_MODEL_FOR:
        raise ValueError(f"target must be auto, pose or face; got {target!r}")
    return target, model if TARGETS[model] == target else DEFAULT_MODEL_FOR[target]


def load(model: str, device=None, checkpoint_file: str | None = None, progress=None):
    """The landmark network `model` names (Keypoint R-CNN or FAN), shared through the model cache."""
    family = keypointrcnn if TARGETS.get(model) == "pose" else fan
    return family.load(model, device, checkpoint_file, progress)


def detect_faces(rgb: np.ndarray, detector: str = retinaface.DEFAULT_MODEL, threshold: float = 0.5,
                 max_faces: int = 8, detector_checkpoint: str | None = None,
                 progress=None) -> retinaface.FaceDetections:
    """Face boxes and their five regressed points from RetinaFace or CenterFace (`detector`), the `max_faces` best;
    boxes of no size (possible with random weights) are dropped."""
    if detector == centerface.CHECKPOINT.name:
        faces = centerface.predict(centerface.load(runtime.device(), detector_checkpoint, progress), rgb, threshold)
    else:
        net = retinaface.load(detector, runtime.device(), checkpoint_file=detector_checkpoint, progress=progress)
        faces = retinaface.predict(net, rgb, score_threshold=threshold)
    sizes = (faces.boxes[:, 2] - faces.boxes[:, 0]) + (faces.boxes[:, 3] - faces.boxes[:, 1])
    keep = np.flatnonzero(np.isfinite(sizes) & (sizes > 0))[:max_faces]
    return retinaface.FaceDetections(faces.boxes[keep], faces.scores[keep], faces.landmarks[keep], faces.image_size)


# ----------------------------------------------------------------------------------------------------------------
# Heatmap colouring


def _peak_normalised(values: np.ndarray) -> np.ndarray:
    """Clip below 0 and scale so the peak is 1 (FAN's regressed maps, whose scale differs from stack to stack)."""
    values = np.clip(values, 0, None)
    peak = values.max() if values.size else 0
    return values / peak if peak > 0 else values


def _min_max(logits: np.ndarray) -> np.ndarray:
    """Keypoint R-CNN logits scaled to [0, 1] over the map (-inf, outside the box, -> 0). Logits, not softmax
    probabilities: the softmax of a trained head is a one-pixel spike, while the logits also show the runner-up
    places (other people's joints, the mirror-image joint) the network considered."""
    finite = np.isfinite(logits)
    out = np.zeros_like(logits, dtype=np.float32)
    if finite.any():
        low, high = logits[finite].min(), logits[finite].max()
        out[finite] = (logits[finite] - low) / (high - low) if high > low else 1.0
    return out


# ----------------------------------------------------------------------------------------------------------------
# The tab's pipeline


def _chosen(count: int, instance: int, point_count: int, keypoint: int, target: str, notes: list[str]):
    if keypoint < 0:
        keypoint = NOSE[target]
    if keypoint >= point_count:
        notes.append(f"keypoint {keypoint} does not exist for {target} (0-{point_count - 1}); "
                     f"showing {point_count - 1}")
        keypoint = point_count - 1
    if count and instance >= count:
        notes.append(f"only {count} found; showing number {count - 1} instead of {instance}")
        instance = count - 1
    return instance, keypoint


def _round(values, digits: int = 2) -> list:
    return [round(float(v), digits) for v in values]


def _blank_tiles(count: int) -> np.ndarray:
    return draw.tile_row([np.full((draw.TILE, draw.TILE, 3), 255, np.uint8)] * count)


def run(loaded: LoadedImage, model: str = DEFAULT_MODEL, checkpoint: str | None = None, progress=None,
        detector_checkpoint: str | None = None, **options) -> TaskOutput:
    """The tab's pipeline. `checkpoint`: a user's file for the landmark model; `detector_checkpoint`: for the face
    detector (face target only: a RetinaFace .pth or a CenterFace .onnx)."""
    options = {**TASK.parse_options([]), **options}
    target, model = resolve(model, options["target"])
    device = runtime.device()
    notes = list(loaded.notes)
    with runtime.stopwatch(device) as load_time:
        net = load(model, device, checkpoint, progress)
    if target == "pose":
        images, record, found, model_ms = _run_pose(loaded.rgb, net, options, notes, device)
    else:
        images, record, found, model_ms = _run_face(loaded.rgb, net, options, notes, device, detector_checkpoint,
                                                    progress)
    w, h = loaded.size
    record = {"task": TASK_ID, "target": target, "model": model, "checkpoint": checkpoint or model,
              "device": runtime.describe(device), "input_size": list(loaded.original_size), "working_size": [w, h],
              **record, "notes": notes, "ms": {"load": round(load_time["ms"], 1), **model_ms}}
    summary = f"{model} on {record['device']}: {found} in {w}x{h}, " + ", ".join(
        f"{name} {ms:.0f} ms" for name, ms in model_ms.items())
    return TaskOutput(images, record, summary)


def _run_pose(rgb, net, options, notes, device):
    names = keypointrcnn.KEYPOINT_NAMES
    with runtime.stopwatch(device) as clock:
        result = keypointrcnn.predict(net, rgb, options["person_threshold"])
    person, keypoint = _chosen(len(result), options["instance"], len(names), options["keypoint"], "pose", notes)
    visible = result.keypoint_scores >= options["keypoint_threshold"]
    drawing = draw.boxes(rgb, result.boxes, [f"{s:.2f}" for s in result.scores])
    drawing = draw.skeletons(drawing, result.keypoints, visible, keypointrcnn.SKELETON)
    heat, panel = rgb.copy(), _blank_tiles(2)
    view = {"instance": person, "keypoint": keypoint, "keypoint_name": names[keypoint], "sigma": options["sigma"]}
    if len(result):
        heat = draw.overlay(rgb, _min_max(keypointrcnn.heatmap_on_image(result, person, keypoint)))
        heat = draw.boxes(heat, result.boxes[person:person + 1])
        # In the RoI heatmap's own coordinates: where torchvision put the keypoint, and the Gaussian around it.
        size = keypointrcnn.HEATMAP_SIZE
        where = heatmaps.roi_to_heatmap(result.keypoints[person, keypoint], result.boxes[person], size)
        target = heatmaps.gaussian_target(where[None], size, options["sigma"])[0]
        predicted = _min_max(result.heatmaps[person, keypoint])
        panel = draw.tile_row([draw.heatmap_tile(target, where[None]), draw.heatmap_tile(predicted, where[None])])
        view["point"] = _round(result.keypoints[person, keypoint])
    record = {"persons": pose_table(result, visible), "person_count": len(result),
              "keypoint_names": list(names), "skeleton": [list(pair) for pair in keypointrcnn.SKELETON],
              "view": view, "decoding": "torchvision: arg-max of the heatmap upsampled (bicubic) to the box size",
              "training_target": "one-hot: a softmax over the 56x56 map (the Gaussian panel shows what a "
                                 "heatmap-regression network would learn instead)"}
    found = f"{len(result)} person{'s' if len(result) != 1 else ''}" if len(result) else "no people found"
    images = {"drawing": drawing, "heatmap": heat, "target_vs_prediction": panel}
    return images, record, found, {"model": round(clock["ms"], 1)}


def _run_face(rgb, net, options, notes, device, detector_checkpoint, progress):
    with runtime.stopwatch(device) as detect_clock:
        faces = detect_faces(rgb, options["face_detector"], options["face_threshold"], options["max_faces"],
                             detector_checkpoint, progress)
    with runtime.stopwatch(device) as clock:
        result = fan.predict(net, rgb, faces.boxes, faces.scores, refine=options["refine"])
    face, point = _chosen(len(result), options["instance"], net.num_landmarks, options["keypoint"], "face", notes)
    drawing = draw.boxes(rgb, result.boxes, [f"{s:.2f}" for s in result.scores])
    drawing = draw.skeletons(drawing, result.points, None, fan.FACE68_CONNECTIVITY,
                             radius=max(1, round(max(rgb.shape[:2]) / 400)))
    stacks_panel = _blank_tiles(net.num_modules)
    heat, panel = rgb.copy(), _blank_tiles(2)
    view = {"instance": face, "keypoint": point, "keypoint_name": fan.FACE68_NAMES[point], "sigma": options["sigma"]}
    if len(result):
        heat = draw.overlay(rgb, _peak_normalised(fan.heatmap_on_image(result, face, point)))
        heat = draw.boxes(heat, np.array([result.transforms[face].box]), color="#ffffff")
        maps = result.stacks[face, :, point]
        shared = _peak_normalised(maps)  # one scale for all stacks, so their sharpening is visible
        stack_points, _ = heatmaps.decode(maps[:, None], refine=options["refine"])
        stacks_panel = draw.tile_row([draw.heatmap_tile(m, p) for m, p in zip(shared, stack_points)])
        where = result.heatmap_points[face, point]
        target = heatmaps.gaussian_target(where[None], heatmaps.HEATMAP_SIZE, options["sigma"])[0]
        panel = draw.tile_row([draw.heatmap_tile(target, where[None]),
                               draw.heatmap_tile(_peak_normalised(maps[-1]), where[None])])
        view["point"] = _round(result.points[face, point])
        view["heatmap_point"] = _round(where)
        view["stack_points"] = [_round(p.reshape(2)) for p in stack_points]
    regressed, from_heatmaps = faces.landmarks, face_points.five_from_68(result.points)
    compared = face_points.blank_view()
    if len(result):
        compared = face_points.comparison_view(rgb, result.boxes[face], regressed[face], from_heatmaps[face])
    record = {"faces": face_table(result), "face_count": len(result), "face_detector": options["face_detector"],
              "regressed_vs_heatmap": {
                  "detector": options["face_detector"], "point_names": list(face_points.FIVE_POINT_NAMES),
                  "fan_indices": [list(group) for group in face_points.FACE68_FOR_FIVE],
                  "faces": face_points.comparison_table(regressed, from_heatmaps)},
              "landmark_names": list(fan.FACE68_NAMES), "view": view,
              "decoding": "arg-max + quarter-pixel shift toward the higher neighbour" if options["refine"]
              else "plain arg-max",
              "training_target": "Gaussian heatmaps, pixel-wise L2 loss, after every stack"}
    found = f"{len(result)} face{'s' if len(result) != 1 else ''}" if len(result) else "no faces found"
    images = {"drawing": drawing, "heatmap": heat, "stacks": stacks_panel, "target_vs_prediction": panel,
              "regressed_vs_heatmap": compared}
    return images, record, found, {"detect": round(detect_clock["ms"], 1), "model": round(clock["ms"], 1)}


def pose_table(result: keypointrcnn.PoseResult, visible: np.ndarray) -> list[dict]:
    """People as JSON-ready rows: box, score, and each named keypoint with its score and visibility."""
    return [{"box": _round(box, 1), "score": round(float(score), 4),
             "keypoints": [{"name": name, "x": round(float(x), 2), "y": round(float(y), 2),
                            "score": round(float(s), 3), "visible": bool(v)}
                           for name, (x, y), s, v in zip(keypointrcnn.KEYPOINT_NAMES, points, kp_scores, seen)]}
            for box, score, points, kp_scores, seen in zip(result.boxes, result.scores, result.keypoints,
                                                           result.keypoint_scores, visible)]


def face_table(result: fan.FaceLandmarks) -> list[dict]:
    """Faces as JSON-ready rows: detector box and score, crop centre and scale, 68 x, y, score triples."""
    return [{"box": _round(box, 1), "score": round(float(score), 4), "center": _round(t.center),
             "scale": round(t.scale, 4),
             "landmarks": [[round(float(x), 2), round(float(y), 2), round(float(s), 3)]
                           for (x, y), s in zip(points, point_scores)]}
            for box, score, t, points, point_scores in zip(result.boxes, result.scores, result.transforms,
                                                            result.points, result.point_scores)]


def _preload(model: str) -> None:
    load(model)
    if TARGETS.get(model) == "face":
        retinaface.load(retinaface.DEFAULT_MODEL)


TASK = Task(
    id=TASK_ID,
    title="Landmarks",
    models=tuple(TARGETS),
    default_model=DEFAULT_MODEL,
    options=(
        Option("target", "auto", "pose: people's 17 keypoints (Keypoint R-CNN); face: 68 face landmarks (FAN); "
               "auto: whichever the model finds", choices=("auto", "pose", "face")),
        Option("person_threshold", 0.7, "people scoring below this are ignored", minimum=0.05, maximum=0.99,
               label="Person score threshold", step=0.01),
        Option("keypoint_threshold", 2.0, "pose keypoints whose heatmap logit is below this are hidden",
               minimum=-10.0, maximum=30.0, label="Keypoint score threshold (heatmap logit)", step=0.5),
        Option("face_detector", retinaface.DEFAULT_MODEL, "finds the faces FAN crops, and regresses the five points "
               "set beside FAN's: RetinaFace (MobileNet-0.25 or ResNet-50) or CenterFace", choices=FACE_DETECTORS,
               label="Face detector"),
        Option("face_threshold", 0.5, "faces scoring below this are ignored", minimum=0.05, maximum=0.99,
               label="Face score threshold", step=0.01),
        Option("max_faces", 8, "landmarks for at most this many faces (the best scoring); FAN takes ~0.3 s a face "
               "on a 2-core CPU", minimum=1, maximum=64, label="At most this many faces"),
        Option("instance", 0, "the person or face (0 = highest score) the heatmap panels show", minimum=0,
               maximum=999, label="Person / face (0 = best scoring)"),
        Option("keypoint", -1, "the keypoint the heatmap panels show: 0-16 pose (COCO order), 0-67 face (68-point "
               "markup); -1: the nose", minimum=-1, maximum=67, label="Keypoint for the heatmaps"),
        Option("sigma", 2.0, "width of the Gaussian training target, in heatmap pixels", minimum=0.5, maximum=10.0,
               label="Gaussian target sigma (px)", step=0.25),
        Option("refine", True, "face: quarter-pixel shift toward the higher neighbour after the arg-max "
               "(face-alignment's decoding); off: plain arg-max", label="Quarter-pixel refinement (face)"),
    ),
    max_side=1600,
    run=run,
    preload=_preload,
)
