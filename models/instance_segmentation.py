"""Instance segmentation: torchvision's Mask R-CNN (v2 and v1) with COCO weights, class filters and RPN proposals.

Mask R-CNN (He et al. 2017) is Faster R-CNN plus a small mask branch on RoIAlign features: the region proposal
network (RPN) suggests boxes, the box head classifies and refines them, and the mask head paints a 28 x 28 mask per
box that is pasted back at full resolution. `predict()` also keeps the RPN's top proposals, the boxes as they were
*before* the box head, for the "how it works" view. `run()` is the tab's whole pipeline (UI and
`python app.py predict instance`).
"""
from __future__ import annotations

import threading
import weakref
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes

from . import draw_masks, runtime, weights
from .images import LoadedImage
from .tasks import Option, OptionError, Task, TaskOutput

TASK_ID = "instance"
_TORCHVISION_MODELS = "https://download.pytorch.org/models"
_DOCS = "https://pytorch.org/vision/stable/models/generated"
_TORCHVISION_LICENSE = ("BSD-3-Clause (torchvision); weights trained on COCO, see torchvision's note on "
                        "pre-trained model licenses")

CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        weights.Checkpoint(
            name="maskrcnn-r50-fpn-v2", task=TASK_ID, url=f"{_TORCHVISION_MODELS}/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
            filename="maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
            sha256="73cbd0190fcbe3ba339921fbce2c3a0b6bb9126c9a133c85e43a2a8e060a109e", bytes=185_828_065, license=_TORCHVISION_LICENSE,
            source=f"{_DOCS}/torchvision.models.detection.maskrcnn_resnet50_fpn_v2.html",
            notes="torchvision MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1 (box AP 47.4, mask AP 41.8); plain state dict for "
            "maskrcnn_resnet50_fpn_v2; same file name as torchvision's cache. SHA-256 and size from several "
            "third-party pins, consistent with the hash prefix in the name and torchvision's _file_size 177.219 MB",
        ),
        weights.Checkpoint(
            name="maskrcnn-r50-fpn", task=TASK_ID, url=f"{_TORCHVISION_MODELS}/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
            filename="maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
            sha256="bf2d0c1efbc936eeee2bc95a48e80ebc86b891f61b0106485937fc29f9315fc0", bytes=178_090_079, license=_TORCHVISION_LICENSE,
            source=f"{_DOCS}/torchvision.models.detection.maskrcnn_resnet50_fpn.html",
            notes="torchvision MaskRCNN_ResNet50_FPN_Weights.COCO_V1 (box AP 37.9, mask AP 34.6); plain state dict with "
            "FrozenBatchNorm2d in the backbone (no num_batches_tracked), run with BatchNorm epsilon 0. SHA-256 from "
            "three third-party pins, size from one third-party listing; both consistent with the hash prefix in the "
            "name and torchvision's _file_size 169.84 MB",
        ),
    )
}
weights.register(*CHECKPOINTS.values())


@dataclass(frozen=True)
class MaskRCNNSpec:
    name: str
    label: str
    checkpoint: str
    v2: bool  # v2: Li et al. 2021 recipe (BatchNorm everywhere, 4-conv box head); v1: the original architecture


MODELS = {
    spec.name: spec
    for spec in (
        MaskRCNNSpec("maskrcnn-r50-fpn-v2", "Mask R-CNN ResNet-50-FPN v2 (torchvision, COCO)", "maskrcnn-r50-fpn-v2",
                     True),
        MaskRCNNSpec("maskrcnn-r50-fpn", "Mask R-CNN ResNet-50-FPN (torchvision v1, COCO)", "maskrcnn-r50-fpn",
                     False),
    )
}
DEFAULT_MODEL = "maskrcnn-r50-fpn-v2"
DEFAULT_WORKING_SIZE = 800  # longest side the network sees: ~2-3 s for v2 on 2 CPU cores (1333 is torchvision's)
DEFAULT_PROPOSALS = 100
DEFAULT_RPN_TOP_N = 1000  # torchvision's rpn_post_nms_top_n_test

# torchvision's 91-index COCO category list (index = the model's label id; "N/A" marks ids COCO never used).
COCO_CATEGORIES = (
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A", "handbag",
    "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake",
    "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A", "toilet", "N/A", "tv", "laptop",
    "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "N/A",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
CLASS_NAMES = tuple(sorted({name for name in COCO_CATEGORIES[1:] if name != "N/A"}))
# Shortcuts for the class filter: COCO's "person", "vehicle" and "animal" super-categories.
CLASS_GROUPS = {
    "people": ("person",),
    "vehicles": ("bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"),
    "animals": ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"),
}
_PROPOSAL_COLOR = "#ffd400"


@dataclass
class Instances:
    """Detections in input-image pixels, best score first."""

    boxes: np.ndarray  # N x 4 float32, x1 y1 x2 y2
    label_ids: np.ndarray  # N int64, indices into COCO_CATEGORIES
    labels: list[str]
    scores: np.ndarray  # N float32
    masks: np.ndarray  # N x H x W bool
    proposals: np.ndarray  # P x 4 float32: the RPN's top boxes before the box head, best objectness first
    working_size: tuple[int, int] = (0, 0)  # (w, h) of the image the network saw after its own resize

    def __len__(self) -> int:
        return len(self.scores)


# --- building and loading ----------------------------------------------------------------------------------------


def build(name: str = DEFAULT_MODEL) -> torch.nn.Module:
    """The architecture with random weights, laid out exactly like its official checkpoint."""
    from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn_v2
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops.misc import FrozenBatchNorm2d

    spec = MODELS[name]
    if spec.v2:
        # Both None: no COCO download and no ImageNet backbone download; our weights manager supplies the weights.
        return maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=len(COCO_CATEGORIES))
    # v1: `maskrcnn_resnet50_fpn(weights=None)` would put plain BatchNorm2d in the backbone, but the COCO checkpoint
    # was trained (and is built by torchvision) with FrozenBatchNorm2d there. This is the body of torchvision's
    # builder for trained weights: same modules, same state-dict keys, and `overwrite_eps` finds its layers.
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d,
                                   trainable_layers=3)
    return MaskRCNN(backbone, num_classes=len(COCO_CATEGORIES))


def load(name: str = DEFAULT_MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> torch.nn.Module:
    """The network with its official COCO weights (or a user's `checkpoint_file` in the same layout), in eval mode
    on `device`, shared through runtime.MODELS."""
    device = device or runtime.device()
    path = Path(checkpoint_file) if checkpoint_file is not None else None

    def loader() -> torch.nn.Module:
        official = path is None
        state = weights.load_state_dict(weights.fetch(MODELS[name].checkpoint, progress) if official else path)
        return _ready(from_state(name, state, official=official), device)

    return runtime.MODELS.get(cache_key(name, device, path), loader)


def cache_key(name: str, device: torch.device, checkpoint_file: Path | None = None) -> tuple:
    content = weights.sha256_of(checkpoint_file) if checkpoint_file is not None else None
    return ("maskrcnn", name, content, str(device))


def from_state(name: str, state: dict, official: bool = True) -> torch.nn.Module:
    net = build(name)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise weights.WeightsError(
            f"This checkpoint does not fit {MODELS[name].label}: {str(error).splitlines()[0]} ... "
            "(expected torchvision's state-dict layout)"
        ) from None
    if official and not MODELS[name].v2:
        set_frozen_bn_eps(net, 0.0)
    return net


def set_frozen_bn_eps(net: torch.nn.Module, eps: float) -> None:
    """torchvision's `overwrite_eps`: the v1 COCO weights predate the FrozenBatchNorm2d epsilon fix
    (pytorch/vision#2933) and were trained with eps 0, so torchvision sets it back to 0 after loading them."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for module in net.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = eps


def _ready(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    return net.eval().requires_grad_(False).to(device)


# --- prediction ----------------------------------------------------------------------------------------------------

_locks: "weakref.WeakKeyDictionary[torch.nn.Module, threading.Lock]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _lock_for(model: torch.nn.Module) -> threading.Lock:
    # One network serves every user; the per-call sizes, threshold and proposal hook must not mix between calls.
    with _locks_guard:
        return _locks.setdefault(model, threading.Lock())


def working_sizes(working_size: int) -> tuple[int, int]:
    """torchvision's (min_size, max_size) for a longest side: the shorter side is at most 3/4 of it, capped at 800
    (so 1333 gives torchvision's own 800/1333 and 800 gives 600/800)."""
    return min(800, round(working_size * 0.75)), working_size


def predict(model: torch.nn.Module, rgb: np.ndarray, score_threshold: float = 0.5, mask_threshold: float = 0.5,
            classes: Iterable[str] | None = None, working_size: int = DEFAULT_WORKING_SIZE,
            top_proposals: int = DEFAULT_PROPOSALS, rpn_top_n: int = DEFAULT_RPN_TOP_N) -> Instances:
    """Detect and segment COCO objects in an RGB uint8 image.

    Kept: scores above `score_threshold`, of a class in `classes` (names or group names; None keeps all). A mask
    pixel is on where the mask probability is above `mask_threshold`. The network works at `working_size` (its
    longest side) and results come back at the input's size. `rpn_top_n` proposals go on to the box head (the
    box head's cost grows with it; torchvision uses 1000, the Faster R-CNN paper tested with 300).
    """
    allowed = expand_classes(classes)
    device = next(model.parameters()).device
    height, width = rgb.shape[:2]
    pixels = torch.from_numpy(np.array(rgb))  # a copy: inputs may be read-only arrays
    x = pixels.permute(2, 0, 1).to(device=device, dtype=torch.float32) / 255.0
    captured: dict = {}

    def keep_proposals(module, args, output):
        images, boxes = args[0], output[0]
        captured["boxes"] = boxes[0][:top_proposals].float()  # sorted by objectness after the RPN's NMS
        captured["size"] = images.image_sizes[0]  # (h, w) after the model's resize

    autocast = torch.autocast("cuda", dtype=torch.float16) if runtime.half_precision(device) else nullcontext()
    with _lock_for(model):
        model.transform.min_size, model.transform.max_size = (working_sizes(working_size)[0],), working_size
        # The box head drops low scores before masks are pasted at full size: less work and memory, same result.
        model.roi_heads.score_thresh = score_threshold
        model.rpn._post_nms_top_n["testing"] = rpn_top_n  # torchvision keeps this in a private dict; no setter
        hook = model.rpn.register_forward_hook(keep_proposals)
        try:
            with torch.inference_mode(), autocast:
                out = model([x])[0]
        finally:
            hook.remove()
    work_h, work_w = captured["size"]
    scale = torch.tensor([width / work_w, height / work_h] * 2, device=captured["boxes"].device)
    masks = out["masks"][:, 0] > mask_threshold  # N x 1 x H x W probabilities, already at the input size
    label_ids = out["labels"].cpu().numpy().astype(np.int64)
    found = Instances(
        boxes=out["boxes"].float().cpu().numpy().astype(np.float32),
        label_ids=label_ids,
        labels=[COCO_CATEGORIES[i] for i in label_ids],
        scores=out["scores"].float().cpu().numpy().astype(np.float32),
        masks=masks.cpu().numpy(),
        proposals=(captured["boxes"] * scale).cpu().numpy().astype(np.float32),
        working_size=(int(work_w), int(work_h)),
    )
    return select(found, score_threshold, allowed)


def select(instances: Instances, score_threshold: float = 0.0, classes: Iterable[str] | None = None) -> Instances:
    """The instances scoring above the threshold whose class is in `classes` (None: any), best score first."""
    allowed = expand_classes(classes)
    keep = instances.scores > score_threshold
    if allowed is not None:
        keep &= np.array([label in allowed for label in instances.labels], bool)
    order = [i for i in np.argsort(-instances.scores, kind="stable") if keep[i]]
    return replace(instances, boxes=instances.boxes[order].reshape(-1, 4), label_ids=instances.label_ids[order],
                   labels=[instances.labels[i] for i in order], scores=instances.scores[order],
                   masks=instances.masks[order].reshape((-1,) + instances.masks.shape[1:]))


def expand_classes(classes: Iterable[str] | str | None) -> frozenset[str] | None:
    """Class names and group names ("people", "vehicles", "animals") to a set of COCO names; None or empty: all.

    A string is read as a comma-separated list (the command line's `--set classes=people,dog`).
    """
    if classes is None:
        return None
    if isinstance(classes, str):
        classes = [part for part in classes.split(",")]
    names: set[str] = set()
    unknown = []
    for item in classes:
        key = item.strip().lower()
        if not key:
            continue
        if key in CLASS_GROUPS:
            names.update(CLASS_GROUPS[key])
        elif key in CLASS_NAMES:
            names.add(key)
        else:
            unknown.append(item.strip())
    if unknown:
        raise OptionError(f"unknown class {', '.join(map(repr, unknown))}; use COCO names ({', '.join(CLASS_NAMES)}) "
                          f"or the groups {', '.join(CLASS_GROUPS)}")
    return frozenset(names) or None


# --- drawing -------------------------------------------------------------------------------------------------------


def instance_colors(count: int) -> list[tuple[int, int, int]]:
    """One distinct colour per instance (instance i keeps its colour in the overlay, the table and the boxes)."""
    return [draw_masks.color(i) for i in range(count)]


def overlay(rgb: np.ndarray, instances: Instances, opacity: float = 0.5, show_boxes: bool = True,
            show_labels: bool = True) -> np.ndarray:
    """Masks (best score on top), then boxes and "label score" captions, one colour per instance."""
    colors = instance_colors(len(instances))
    drawn = draw_masks.overlay_masks(rgb, instances.masks[::-1], colors[::-1], opacity)
    if not (show_boxes and len(instances)):
        return drawn
    captions = [f"{label} {score:.2f}" for label, score in zip(instances.labels, instances.scores)]
    return _boxes(drawn, instances.boxes, colors, captions if show_labels else None)


def proposals_view(rgb: np.ndarray, instances: Instances) -> np.ndarray:
    """The RPN's top proposals: where the network looked before the box head chose, refined and classified."""
    return _boxes(rgb, instances.proposals, [_PROPOSAL_COLOR] * len(instances.proposals), None, width=1)


def label_image(instances: Instances) -> np.ndarray:
    """Instance ids per pixel (1 = best score, 0 = none), uint8 or uint16; the best instance wins overlaps."""
    ids = list(range(1, len(instances) + 1))
    return draw_masks.label_image(instances.masks[::-1], ids[::-1])


def instance_table(instances: Instances) -> list[dict]:
    """A row per instance: id (as in the label image), label, score, box, mask area in pixels, colour."""
    colors = instance_colors(len(instances))
    return [{"id": i + 1, "label": label, "score": round(float(score), 4),
             "box": [round(float(v), 1) for v in box], "mask_area_px": int(mask.sum()),
             "color": draw_masks.hex_color(colors[i])}
            for i, (label, score, box, mask) in enumerate(zip(instances.labels, instances.scores, instances.boxes,
                                                               instances.masks))]


def _boxes(rgb: np.ndarray, boxes: np.ndarray, colors: list, labels: list[str] | None,
           width: int | None = None) -> np.ndarray:
    if len(boxes) == 0:
        return rgb.copy()
    image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)
    width = width or max(1, round(max(rgb.shape[:2]) / 300))
    font = {"font": draw_masks.FONT, "font_size": max(10, round(max(rgb.shape[:2]) / 60))} if draw_masks.FONT else {}
    colors = [c if isinstance(c, str) else tuple(c) for c in colors]
    drawn = draw_bounding_boxes(image, torch.as_tensor(np.asarray(boxes), dtype=torch.float32), labels=labels,
                                colors=colors, width=width, **font)
    return drawn.permute(1, 2, 0).numpy()


# --- the tab's pipeline --------------------------------------------------------------------------------------------


YOLACT_MODELS = ("yolact-r101", "yolact-r50")


def run(loaded: LoadedImage, model: str = DEFAULT_MODEL, checkpoint: str | None = None, progress=None,
        **options) -> TaskOutput:
    options = {**TASK.parse_options([]), **options}
    if model in YOLACT_MODELS:  # one-stage masks from prototypes: its own pipeline, the same outputs plus its views
        from . import yolact

        return yolact.run(loaded, model, checkpoint, progress, **options)
    allowed = expand_classes(options["classes"])
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = load(model, device, checkpoint, progress)
    with runtime.stopwatch(device) as model_time:
        found = predict(net, loaded.rgb, options["score_threshold"], options["mask_threshold"], allowed,
                        options["working_size"], options["proposals"], options["rpn_top_n"])
    with runtime.stopwatch() as draw_time:
        images = {
            "overlay": overlay(loaded.rgb, found, options["opacity"], options["show_boxes"], options["show_labels"]),
            "proposals": proposals_view(loaded.rgb, found),
            "labels": label_image(found),  # one channel: instance ids for download, not for display
        }
    w, h = loaded.size
    record = {
        "task": TASK_ID, "model": model, "checkpoint": checkpoint or MODELS[model].checkpoint,
        "device": runtime.describe(device), "input_size": list(loaded.original_size), "size": [w, h],
        "working_size": list(found.working_size), "classes": sorted(allowed) if allowed else "all",
        "instances": instance_table(found), "instance_count": len(found), "proposals_shown": len(found.proposals),
        "label_image": f"{images['labels'].dtype} ids: 0 = background, n = row n of instances", "notes": loaded.notes,
        "ms": {"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1),
               "draw": round(draw_time["ms"], 1)},
    }
    found_text = f"{len(found)} instance{'s' if len(found) != 1 else ''}" if len(found) else "nothing found"
    summary = (f"{model} on {record['device']}: {found_text} in {w}x{h} (network at "
               f"{found.working_size[0]}x{found.working_size[1]}), {model_time['ms']:.0f} ms")
    return TaskOutput(images, record, summary)


TASK = Task(
    id=TASK_ID,
    title="Instance segmentation",
    models=tuple(MODELS) + YOLACT_MODELS,
    default_model=DEFAULT_MODEL,
    options=(
        Option("score_threshold", 0.5, "instances scoring at or below this are dropped", minimum=0.0, maximum=1.0),
        Option("mask_threshold", 0.5, "a pixel belongs to a mask where the mask probability is above this",
               minimum=0.0, maximum=0.99),
        Option("classes", "", "comma-separated COCO names or the groups people, vehicles, animals (empty: all)"),
        Option("opacity", 0.5, "mask opacity", minimum=0.0, maximum=1.0),
        Option("show_boxes", True, "draw each instance's box"),
        Option("show_labels", True, "write class and score on each box"),
        Option("working_size", DEFAULT_WORKING_SIZE, "longest side the network sees in px (smaller is faster; "
               "1333 is torchvision's default)", minimum=320, maximum=1333),
        Option("proposals", DEFAULT_PROPOSALS, "how many RPN proposals the \"how it works\" view shows",
               minimum=0, maximum=1000),
        Option("rpn_top_n", DEFAULT_RPN_TOP_N, "proposals the box head examines (fewer is faster on a CPU; "
               "torchvision uses 1000)", minimum=50, maximum=2000),
        Option("detection", 1, "YOLACT: which detection (row of the table) the prototype view assembles",
               minimum=1, maximum=100),
    ),
    max_side=1333,
    run=run,
    preload=lambda model: _yolact.load(model) if model in YOLACT_MODELS else load(model),
)

# Last: yolact imports Instances and the drawing helpers from this module; importing it registers its checkpoints.
from . import yolact as _yolact  # noqa: E402
