"""Landmarks: human pose with Keypoint R-CNN and 68 face landmarks with FAN, both by heatmap classification, with the
heatmaps on screen.

Two ways to localise points (the lecture's contrast): regress 2N coordinates, or predict one map per point and take
its peak. Both models here do the latter:
- Human pose: torchvision's Keypoint R-CNN (He et al. 2017, Mask R-CNN's keypoint head): per detected person, 17 COCO
  keypoints from 56x56 heatmap logits over the person's box (trained with a one-hot target: a softmax over the map).
- Face: FAN / 2DFAN-4 (Bulat & Tzimiropoulos 2017), four stacked hourglasses predicting 68 64x64 heatmaps each
  (trained by L2 regression of Gaussian targets), on faces found by RetinaFace, cropped and scaled as face-alignment
  does (centre and scale from the box, 256x256 input).

`predict_pose()` and `predict_faces()` map an RGB uint8 array to typed results holding points, scores and every
heatmap; `run()` is the tab's pipeline (UI, live frames and `python app.py predict landmarks`). Coordinates are
continuous pixels, pixel (i, j) covering [j, j+1) x [i, i+1) (see heatmaps.py).
"""
from __future__ import annotations

import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection import KeypointRCNN, keypointrcnn_resnet50_fpn

from . import draw, heatmaps, retinaface, runtime, weights
from .fan import FAN
from .images import LoadedImage
from .tasks import Option, Task, TaskOutput

TASK_ID = "landmarks"
POSE_MODEL = "keypointrcnn-resnet50-fpn"
FACE_MODEL = "2dfan4"
TARGETS = {POSE_MODEL: "pose", FACE_MODEL: "face"}
DEFAULT_MODEL_FOR = {"pose": POSE_MODEL, "face": FACE_MODEL}
DEFAULT_MODEL = POSE_MODEL
_TORCHVISION = "https://download.pytorch.org/models"
_FACE_ALIGNMENT = "https://github.com/1adrianb/face-alignment"

CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        weights.Checkpoint(
            name=POSE_MODEL, task=TASK_ID, url=f"{_TORCHVISION}/keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
            filename="keypointrcnn_resnet50_fpn_coco-fc266e95.pth",  # torchvision's own name: the torch hub cache is shared
            sha256="fc266e953d2b302cdcbb9ae66f71f6b0d4649928bf02dc573961e361e4918926", bytes=237_034_793,
            license="BSD-3-Clause (torchvision); COCO-trained weights, see torchvision's pre-trained model license",
            source="https://docs.pytorch.org/vision/stable/models/generated/"
            "torchvision.models.detection.keypointrcnn_resnet50_fpn.html",
            notes="torchvision KeypointRCNN_ResNet50_FPN_Weights.COCO_V1 (box AP 54.6, keypoint AP 65.0): plain state dict, "
            "num_classes=2, num_keypoints=17. Saved from a FrozenBatchNorm2d backbone (no num_batches_tracked); the "
            "builder sets that backbone's eps to 0 after loading, and so does load(). SHA-256 and size from "
            "third-party pins that agree with the 8-hex prefix in the name; not yet checked against a download here",
        ),
        weights.Checkpoint(
            name=FACE_MODEL, task=TASK_ID, url="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
            filename="2DFAN4-11f355bf06.pth.tar", sha256=None, bytes=None,
            license="BSD-3-Clause (face-alignment code); weights trained on 300W-LP and similar research data sets, whose "
            "terms may restrict use (unconfirmed)",
            source=_FACE_ALIGNMENT,
            notes="face-alignment v1.5's 2D FAN-4 (68 points): a plain state dict of FAN(num_modules=4), 1129 tensors, "
            "loaded there with torch.load(weights_only=True) and a strict load_state_dict. Not the TorchScript "
            ".zip files of face-alignment 1.3-1.4 (2DFAN4-cd938726ad.zip), which weights_only cannot open. No "
            "published SHA-256 or size (by torch hub's naming, 11f355bf06 would be the start of its SHA-256; "
            "unconfirmed, face-alignment does not check it): the first download's hash is recorded and enforced. "
            "~95 MB expected from the parameter count",
        ),
    )
}
weights.register(*CHECKPOINTS.values())

# COCO person keypoints (the order of torchvision's outputs) and the COCO annotations' skeleton, 0-based.
COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10),
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

# The 68-point iBUG 300-W markup FAN predicts: (group, first index, last index, closed contour?). "Right" is the
# subject's right (the left of the image).
FACE68_GROUPS = (
    ("jaw", 0, 16, False), ("right_brow", 17, 21, False), ("left_brow", 22, 26, False),
    ("nose_bridge", 27, 30, False), ("nose_base", 31, 35, False), ("right_eye", 36, 41, True),
    ("left_eye", 42, 47, True), ("outer_lip", 48, 59, True), ("inner_lip", 60, 67, True),
)
FACE68_NAMES = tuple(f"{name}_{i - first + 1}" for name, first, last, _ in FACE68_GROUPS
                     for i in range(first, last + 1))
FACE68_CONNECTIVITY = tuple(
    pair for _, first, last, closed in FACE68_GROUPS
    for pair in [(i, i + 1) for i in range(first, last)] + ([(last, first)] if closed else [])
)
NOSE = {"pose": 0, "face": 30}  # keypoint -1 means the nose: the nose of COCO, the nose tip of the 68-point markup

POSE_HEATMAP_SIZE = 56  # Keypoint R-CNN's RoI heatmaps: 14x14 RoIAlign, 2x transposed conv, 2x bilinear
MAX_FAN_BATCH = 8  # faces per FAN forward: bounds memory on crowded photos


# ----------------------------------------------------------------------------------------------------------------
# Results


@dataclass
class PoseResult:
    """People found in one image, sorted by score (highest first), in the image's pixel coordinates."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) person scores in [0, 1]
    keypoints: np.ndarray  # (N, 17, 2) x, y (torchvision's decoding: arg-max of the bicubic-upsampled map)
    keypoint_scores: np.ndarray  # (N, 17) heatmap logits at those points
    heatmaps: np.ndarray  # (N, 17, 56, 56) float32 logits of the keypoint head, each over its person's box
    image_size: tuple[int, int]  # (width, height)

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class FaceLandmarks:
    """68 landmarks per face, faces in the detector's order (score, highest first), image pixel coordinates."""

    boxes: np.ndarray  # (N, 4) float32 detector boxes
    scores: np.ndarray  # (N,) detector scores
    points: np.ndarray  # (N, 68, 2) float32 image points
    point_scores: np.ndarray  # (N, 68) heatmap peak values
    heatmap_points: np.ndarray  # (N, 68, 2) the same points in 64x64 heatmap coordinates
    stacks: np.ndarray  # (N, S, 68, 64, 64) float32: the heatmaps of every hourglass stack, the last is the output
    transforms: list[heatmaps.CropTransform]  # each face's crop (centre, scale)
    refined: bool  # quarter-pixel refinement applied
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.scores)


# ----------------------------------------------------------------------------------------------------------------
# Building and loading

# Keypoint R-CNN's forward returns decoded keypoints only; the 56x56 logits they come from are caught on their way
# out of the keypoint predictor. One slot per thread: the cached model is shared by every user's request.
_CAPTURED = threading.local()


def _catch_heatmaps(module, inputs, output) -> None:
    _CAPTURED.heatmaps = output


def build_pose() -> KeypointRCNN:
    """torchvision's Keypoint R-CNN (ResNet-50 FPN, 2 classes, 17 keypoints) with random weights and nothing
    downloaded, its keypoint logits caught for `predict_pose`."""
    net = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2, num_keypoints=17)
    _hook(net)
    return net


def _hook(net: KeypointRCNN) -> None:
    if not getattr(net, "_landmarks_hooked", False):
        net.roi_heads.keypoint_predictor.register_forward_hook(_catch_heatmaps)
        net._landmarks_hooked = True


def build_face(num_modules: int = 4) -> FAN:
    return FAN(num_modules=num_modules)


def build(model: str) -> torch.nn.Module:
    """The architecture of `model` with random weights (what `load` fills with the official checkpoint)."""
    if model == POSE_MODEL:
        return build_pose()
    if model == FACE_MODEL:
        return build_face()
    raise ValueError(f"Unknown landmarks model {model!r}; known: {', '.join(TARGETS)}")


def load(model: str = DEFAULT_MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> torch.nn.Module:
    """`model` with its official weights (or a user's `checkpoint_file` in the official format), in eval mode on
    `device`, shared through runtime.MODELS."""
    if model not in TARGETS:  # before any download
        raise ValueError(f"Unknown landmarks model {model!r}; known: {', '.join(TARGETS)}")
    device = device or runtime.device()
    path = Path(checkpoint_file) if checkpoint_file is not None else None

    def loader() -> torch.nn.Module:
        source = path if path is not None else weights.fetch(model, progress)
        _refuse_torchscript(source)
        return _ready(model, _from_state(model, weights.load_state_dict(source)), device)

    return runtime.MODELS.get(cache_key(model, device, path), loader)


def cache_key(model: str, device: torch.device, checkpoint_file: Path | None = None) -> tuple:
    content = weights.sha256_of(Path(checkpoint_file)) if checkpoint_file is not None else None
    return ("landmarks", model, content, str(device))


def _refuse_torchscript(path: Path) -> None:
    """face-alignment 1.3-1.4 shipped FAN as TorchScript archives; they hold code, not just tensors, and opening
    them needs torch.jit.load, which this app never does. Say so instead of a generic unpickling error."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any("/code/" in name or name.endswith("/constants.pkl") for name in names):
        raise weights.WeightsError(
            f"{Path(path).name} is a TorchScript archive (like face-alignment 1.3-1.4's 2DFAN4-*.zip), not a state "
            "dict. Use the plain state dict 2DFAN4-11f355bf06.pth.tar, or convert on a machine you trust: "
            "torch.save(torch.jit.load(path).state_dict(), 'fan.pth')."
        )


def _convert_state_dict(state: dict, net: torch.nn.Module) -> dict:
    """Known packaging quirks: a `state_dict` wrapper and `module.` prefixes (nn.DataParallel), and BatchNorm
    counters missing from checkpoints saved by old PyTorch or from FrozenBatchNorm2d (they are unused at inference)."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    state = {key.removeprefix("module."): value for key, value in state.items()}
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    return state


def _from_state(model: str, state: dict) -> torch.nn.Module:
    net = build(model)
    try:
        net.load_state_dict(_convert_state_dict(state, net), strict=True)
    except RuntimeError as error:
        raise weights.WeightsError(
            f"This checkpoint does not fit {model}: {str(error).splitlines()[0]} ... (expected the official layout)"
        ) from None
    return net


def _ready(model: str, net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    net.eval().requires_grad_(False).to(device)
    if model == POSE_MODEL:
        # torchvision's COCO_V1 builder sets eps=0 on its frozen BatchNorms (the checkpoint's convention); built
        # without weights the backbone has plain BatchNorm2d, identical in eval mode once eps matches.
        for module in net.backbone.body.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eps = 0.0
        # Kept in float32 everywhere: torchvision's detection post-processing mixes dtypes.
    elif runtime.half_precision(device):
        net.half()
    return net


# ----------------------------------------------------------------------------------------------------------------
# Human pose


def predict_pose(net: KeypointRCNN, rgb: np.ndarray, person_threshold: float = 0.7) -> PoseResult:
    """People in an RGB uint8 image: boxes, scores, 17 keypoints with scores, and the 56x56 logit heatmaps."""
    _check_rgb(rgb)
    _hook(net)
    device = next(net.parameters()).device
    x = torch.tensor(rgb, device=device).permute(2, 0, 1).float() / 255  # a copy: the input may be read-only
    _CAPTURED.heatmaps = None
    with torch.inference_mode():
        out = net([x])[0]
    logits = _CAPTURED.heatmaps
    _CAPTURED.heatmaps = None
    # The keypoint head runs on the post-processed detections, in their order (roi_heads.forward), and the final
    # transform only rescales: row i of the logits belongs to detection i.
    if logits is None or len(logits) != len(out["scores"]):
        raise RuntimeError("Keypoint R-CNN's heatmaps could not be matched to its detections.")
    keep = (out["scores"] >= person_threshold).nonzero().squeeze(1)
    return PoseResult(
        boxes=_numpy(out["boxes"][keep]), scores=_numpy(out["scores"][keep]),
        keypoints=_numpy(out["keypoints"][keep][..., :2]), keypoint_scores=_numpy(out["keypoints_scores"][keep]),
        heatmaps=_numpy(logits[keep]), image_size=(rgb.shape[1], rgb.shape[0]),
    )


def pose_heatmap_on_image(result: PoseResult, person: int, keypoint: int) -> np.ndarray:
    """One person's logits for one keypoint warped over their box onto the image: (H, W) float32, -inf outside.

    Same geometry as torchvision's `heatmaps_to_keypoints`, so the map's peak is where the keypoint was put.
    """
    return heatmaps.heatmap_to_image(result.heatmaps[person, keypoint], result.boxes[person], result.image_size,
                                     fill=-np.inf)


# ----------------------------------------------------------------------------------------------------------------
# Face landmarks


def predict_faces(net: FAN, rgb: np.ndarray, boxes: np.ndarray, scores: np.ndarray | None = None,
                  refine: bool = True,
                  reference_scale: float = heatmaps.REFERENCE_SCALE_RETINAFACE) -> FaceLandmarks:
    """68 landmarks for each face box (x1, y1, x2, y2) in an RGB uint8 image, with every stack's heatmaps."""
    _check_rgb(rgb)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32)
    transforms = [heatmaps.face_crop_transform(box, reference_scale) for box in boxes]
    parameter = next(net.parameters())
    stacks = []
    for start in range(0, len(boxes), MAX_FAN_BATCH):
        crops = np.stack([heatmaps.crop(rgb, t, heatmaps.CROP_SIZE) for t in transforms[start:start + MAX_FAN_BATCH]])
        x = torch.from_numpy(crops).to(parameter.device).permute(0, 3, 1, 2).to(parameter.dtype) / 255  # RGB, 0-1
        with torch.inference_mode():
            stacks.append(torch.stack(net(x), dim=1).float().cpu().numpy())  # (B, S, 68, 64, 64)
    size, count = heatmaps.HEATMAP_SIZE, net.num_landmarks
    stacked = np.concatenate(stacks) if stacks else np.zeros((0, net.num_modules, count, size, size), np.float32)
    points_hm, point_scores = heatmaps.decode(stacked[:, -1], refine=refine)
    points_hm = points_hm.reshape(len(boxes), count, 2)
    points = np.stack([t.to_image(p, size) for t, p in zip(transforms, points_hm)]) if len(boxes) else points_hm
    return FaceLandmarks(boxes, scores, points.astype(np.float32), point_scores.reshape(len(boxes), count),
                         points_hm.astype(np.float32), stacked, transforms, refine, (rgb.shape[1], rgb.shape[0]))


def face_heatmap_on_image(result: FaceLandmarks, face: int, point: int, stack: int = -1) -> np.ndarray:
    """One face's heatmap of one landmark (from `stack`, default the last) warped onto the image: (H, W), 0 outside."""
    return heatmaps.heatmap_to_image(result.stacks[face, stack, point], result.transforms[face].box,
                                     result.image_size, fill=0.0)


def detect_faces(rgb: np.ndarray, detector: str = retinaface.DEFAULT_MODEL, threshold: float = 0.5,
                 max_faces: int = 8, detector_checkpoint: str | None = None,
                 progress=None) -> retinaface.FaceDetections:
    """RetinaFace boxes, the `max_faces` best; boxes of no size (possible with random weights) are dropped."""
    net = retinaface.load(detector, runtime.device(), checkpoint_file=detector_checkpoint, progress=progress)
    faces = retinaface.predict(net, rgb, score_threshold=threshold)
    sizes = (faces.boxes[:, 2] - faces.boxes[:, 0]) + (faces.boxes[:, 3] - faces.boxes[:, 1])
    keep = np.flatnonzero(np.isfinite(sizes) & (sizes > 0))[:max_faces]
    return retinaface.FaceDetections(faces.boxes[keep], faces.scores[keep], faces.landmarks[keep], faces.image_size)


# ----------------------------------------------------------------------------------------------------------------
# Drawing (heatmap colouring, overlays, tiles, skeletons: candidates for models/draw.py)


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


def resolve(model: str, target: str) -> tuple[str, str]:
    """(target, model): "auto" follows the model; an explicit target picks its default model if the two disagree."""
    if model not in TARGETS:
        raise ValueError(f"Unknown landmarks model {model!r}; known: {', '.join(TARGETS)}")
    if target == "auto":
        return TARGETS[model], model
    if target not in DEFAULT_MODEL_FOR:
        raise ValueError(f"target must be auto, pose or face; got {target!r}")
    return target, model if TARGETS[model] == target else DEFAULT_MODEL_FOR[target]


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


def run(loaded: LoadedImage, model: str = DEFAULT_MODEL, checkpoint: str | None = None, progress=None,
        detector_checkpoint: str | None = None, **options) -> TaskOutput:
    """The tab's pipeline. `checkpoint`: a user's file for the landmark model; `detector_checkpoint`: for
    RetinaFace (face target only)."""
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
    with runtime.stopwatch(device) as clock:
        result = predict_pose(net, rgb, options["person_threshold"])
    person, keypoint = _chosen(len(result), options["instance"], len(COCO_KEYPOINT_NAMES), options["keypoint"],
                               "pose", notes)
    visible = result.keypoint_scores >= options["keypoint_threshold"]
    drawing = draw.boxes(rgb, result.boxes, [f"{s:.2f}" for s in result.scores])
    drawing = draw.skeletons(drawing, result.keypoints, visible, COCO_SKELETON)
    heat, panel = rgb.copy(), draw.tile_row([np.full((draw.TILE, draw.TILE, 3), 255, np.uint8)] * 2)
    view = {"instance": person, "keypoint": keypoint, "keypoint_name": COCO_KEYPOINT_NAMES[keypoint],
            "sigma": options["sigma"]}
    if len(result):
        heat = draw.overlay(rgb, _min_max(pose_heatmap_on_image(result, person, keypoint)))
        heat = draw.boxes(heat, result.boxes[person:person + 1])
        # In the RoI heatmap's own coordinates: where torchvision put the keypoint, and the Gaussian around it.
        where = heatmaps.roi_to_heatmap(result.keypoints[person, keypoint], result.boxes[person], POSE_HEATMAP_SIZE)
        target = heatmaps.gaussian_target(where[None], POSE_HEATMAP_SIZE, options["sigma"])[0]
        predicted = _min_max(result.heatmaps[person, keypoint])
        panel = draw.tile_row([draw.heatmap_tile(target, where[None]), draw.heatmap_tile(predicted, where[None])])
        view["point"] = _round(result.keypoints[person, keypoint])
    record = {"persons": pose_table(result, visible), "person_count": len(result),
              "keypoint_names": list(COCO_KEYPOINT_NAMES), "skeleton": [list(pair) for pair in COCO_SKELETON],
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
        result = predict_faces(net, rgb, faces.boxes, faces.scores, refine=options["refine"])
    face, point = _chosen(len(result), options["instance"], net.num_landmarks, options["keypoint"], "face", notes)
    drawing = draw.boxes(rgb, result.boxes, [f"{s:.2f}" for s in result.scores])
    drawing = draw.skeletons(drawing, result.points, None, FACE68_CONNECTIVITY,
                        radius=max(1, round(max(rgb.shape[:2]) / 400)))
    stacks_panel = draw.tile_row([np.full((draw.TILE, draw.TILE, 3), 255, np.uint8)] * net.num_modules)
    heat, panel = rgb.copy(), draw.tile_row([np.full((draw.TILE, draw.TILE, 3), 255, np.uint8)] * 2)
    view = {"instance": face, "keypoint": point, "keypoint_name": FACE68_NAMES[point], "sigma": options["sigma"]}
    if len(result):
        heat = draw.overlay(rgb, _peak_normalised(face_heatmap_on_image(result, face, point)))
        heat = draw.boxes(heat, np.array([result.transforms[face].box]), color="#ffffff")
        maps = result.stacks[face, :, point]
        shared = _peak_normalised(maps)  # one scale for all stacks, so their sharpening is visible
        stack_points, _ = heatmaps.decode(maps[:, None], refine=options["refine"])
        stacks_panel = draw.tile_row([draw.heatmap_tile(m, p) for m, p in zip(shared, stack_points)])
        where = result.heatmap_points[face, point]
        target = heatmaps.gaussian_target(where[None], heatmaps.HEATMAP_SIZE, options["sigma"])[0]
        panel = draw.tile_row([draw.heatmap_tile(target, where[None]), draw.heatmap_tile(_peak_normalised(maps[-1]), where[None])])
        view["point"] = _round(result.points[face, point])
        view["heatmap_point"] = _round(where)
        view["stack_points"] = [_round(p.reshape(2)) for p in stack_points]
    record = {"faces": face_table(result), "face_count": len(result), "face_detector": options["face_detector"],
              "landmark_names": list(FACE68_NAMES), "view": view,
              "decoding": "arg-max + quarter-pixel shift toward the higher neighbour" if options["refine"]
              else "plain arg-max",
              "training_target": "Gaussian heatmaps, pixel-wise L2 loss, after every stack"}
    found = f"{len(result)} face{'s' if len(result) != 1 else ''}" if len(result) else "no faces found"
    images = {"drawing": drawing, "heatmap": heat, "stacks": stacks_panel, "target_vs_prediction": panel}
    return images, record, found, {"detect": round(detect_clock["ms"], 1), "model": round(clock["ms"], 1)}


def pose_table(result: PoseResult, visible: np.ndarray) -> list[dict]:
    """People as JSON-ready rows: box, score, and each named keypoint with its score and visibility."""
    return [{"box": _round(box, 1), "score": round(float(score), 4),
             "keypoints": [{"name": name, "x": round(float(x), 2), "y": round(float(y), 2),
                            "score": round(float(s), 3), "visible": bool(v)}
                           for name, (x, y), s, v in zip(COCO_KEYPOINT_NAMES, points, kp_scores, seen)]}
            for box, score, points, kp_scores, seen in zip(result.boxes, result.scores, result.keypoints,
                                                           result.keypoint_scores, visible)]


def face_table(result: FaceLandmarks) -> list[dict]:
    """Faces as JSON-ready rows: detector box and score, crop centre and scale, 68 x, y, score triples."""
    return [{"box": _round(box, 1), "score": round(float(score), 4), "center": _round(t.center),
             "scale": round(t.scale, 4),
             "landmarks": [[round(float(x), 2), round(float(y), 2), round(float(s), 3)]
                           for (x, y), s in zip(points, point_scores)]}
            for box, score, t, points, point_scores in zip(result.boxes, result.scores, result.transforms,
                                                            result.points, result.point_scores)]


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        described = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"Landmark models need an RGB uint8 array of shape (H, W, 3); got a {described}")


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy().astype(np.float32, copy=False)


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
        Option("person_threshold", 0.7, "people scoring below this are ignored", minimum=0.05, maximum=0.99),
        Option("keypoint_threshold", 2.0, "pose keypoints whose heatmap logit is below this are hidden",
               minimum=-10.0, maximum=30.0),
        Option("face_detector", retinaface.DEFAULT_MODEL, "the RetinaFace that finds faces for FAN",
               choices=tuple(retinaface.CHECKPOINTS)),
        Option("face_threshold", 0.5, "faces scoring below this are ignored", minimum=0.05, maximum=0.99),
        Option("max_faces", 8, "landmarks for at most this many faces (the best scoring); FAN takes ~0.3 s a face "
               "on a 2-core CPU", minimum=1, maximum=64),
        Option("instance", 0, "the person or face (0 = highest score) the heatmap panels show", minimum=0,
               maximum=999),
        Option("keypoint", -1, "the keypoint the heatmap panels show: 0-16 pose (COCO order), 0-67 face (68-point "
               "markup); -1: the nose", minimum=-1, maximum=67),
        Option("sigma", 2.0, "width of the Gaussian training target, in heatmap pixels", minimum=0.5, maximum=10.0),
        Option("refine", True, "face: quarter-pixel shift toward the higher neighbour after the arg-max "
               "(face-alignment's decoding); off: plain arg-max"),
    ),
    max_side=1600,
    run=run,
    preload=_preload,
)
