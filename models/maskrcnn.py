"""Mask R-CNN: torchvision's Mask R-CNN (v2 and v1) with COCO weights, predictions as `Instances` with RPN proposals.

Mask R-CNN (He et al. 2017) is Faster R-CNN plus a small mask branch on RoIAlign features: the region proposal
network (RPN) suggests boxes, the box head classifies and refines them, and the mask head paints a 28 x 28 mask per
box that is pasted back at full resolution. `predict()` also keeps the RPN's top proposals, the boxes as they were
*before* the box head, for the "how it works" view.

The checkpoints are torchvision's own files: URL and categories come from torchvision's weights enums.
"""
from __future__ import annotations

import threading
import weakref
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights

from . import checkpoints, runtime, weights
from .instances import COCO_CATEGORIES, Instances, expand_classes, select

TASK_ID = "instance"
_DOCS = "https://pytorch.org/vision/stable/models/generated"
_TORCHVISION_LICENSE = ("BSD-3-Clause (torchvision); weights trained on COCO, see torchvision's note on "
                        "pre-trained model licenses")


@dataclass(frozen=True)
class MaskRCNNSpec:
    name: str
    label: str
    checkpoint: str
    v2: bool  # v2: Li et al. 2021 recipe (BatchNorm everywhere, 4-conv box head); v1: the original architecture


def _torchvision_checkpoint(name: str, enum, sha256: str, size: int, builder: str,
                            notes: str) -> checkpoints.Checkpoint:
    """A torchvision COCO file as a catalogue entry: URL (and so the file name, with torchvision's SHA-256 prefix in
    it) from the weights enum; the full SHA-256 and the exact size from third-party pins."""
    return checkpoints.Checkpoint(
        name=name, task=TASK_ID, url=enum.url, filename=enum.url.rsplit("/", 1)[1], sha256=sha256, bytes=size,
        license=_TORCHVISION_LICENSE, source=f"{_DOCS}/torchvision.models.detection.{builder}.html", notes=notes,
        hash_origin="third-party",
    )


CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        _torchvision_checkpoint(
            "maskrcnn-r50-fpn-v2", MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
            "73cbd0190fcbe3ba339921fbce2c3a0b6bb9126c9a133c85e43a2a8e060a109e", 185_828_065,
            "maskrcnn_resnet50_fpn_v2",
            "torchvision MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1 (box AP 47.4, mask AP 41.8); plain state dict for "
            "maskrcnn_resnet50_fpn_v2; same file name as torchvision's cache. SHA-256 and size from several "
            "third-party pins, consistent with the hash prefix in the name and torchvision's _file_size 177.219 MB",
        ),
        _torchvision_checkpoint(
            "maskrcnn-r50-fpn", MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
            "bf2d0c1efbc936eeee2bc95a48e80ebc86b891f61b0106485937fc29f9315fc0", 178_090_079,
            "maskrcnn_resnet50_fpn",
            "torchvision MaskRCNN_ResNet50_FPN_Weights.COCO_V1 (box AP 37.9, mask AP 34.6); plain state dict with "
            "FrozenBatchNorm2d in the backbone (no num_batches_tracked), run with BatchNorm epsilon 0. SHA-256 from "
            "three third-party pins, size from one third-party listing; both consistent with the hash prefix in the "
            "name and torchvision's _file_size 169.84 MB",
        ),
    )
}
checkpoints.register(*CHECKPOINTS.values())


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
OFFICIAL_WORKING_SIZE = 1333  # torchvision's test transform: shorter side 800, longer at most 1333
CPU_WORKING_SIZE = 800  # the CPU compromise: ~2-3 s for v2 on 2 CPU cores instead of ~2.5x that
DEFAULT_WORKING_SIZE = OFFICIAL_WORKING_SIZE
DEFAULT_PROPOSALS = 100
DEFAULT_RPN_TOP_N = 1000  # torchvision's rpn_post_nms_top_n_test


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
    on `device`, shared through runtime.MODELS. It stays in float32: predict() runs it under autocast on CUDA."""
    device = device or runtime.device()

    def loader() -> torch.nn.Module:
        official = checkpoint_file is None
        state = weights.load_state_dict(weights.fetch(MODELS[name].checkpoint, progress) if official
                                        else checkpoint_file)
        return runtime.prepare(from_state(name, state, official=official), device, half=False)

    return runtime.cached_model("maskrcnn", name, device, checkpoint_file, loader)


def cache_key(name: str, device: torch.device, checkpoint_file=None) -> tuple:
    """The runtime.MODELS key load() uses (tests and benchmarks seed the cache with it)."""
    return runtime.model_key("maskrcnn", name, device, checkpoint_file)


def from_state(name: str, state: dict, official: bool = True) -> torch.nn.Module:
    net = weights.strict_load(build(name), state, MODELS[name].label, "torchvision's state-dict layout")
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
        boxes=runtime.to_numpy(out["boxes"]),
        label_ids=label_ids,
        labels=[COCO_CATEGORIES[i] for i in label_ids],
        scores=runtime.to_numpy(out["scores"]),
        masks=masks.cpu().numpy(),
        proposals=runtime.to_numpy(captured["boxes"] * scale),
        working_size=(int(work_w), int(work_h)),
    )
    return select(found, score_threshold, allowed)
