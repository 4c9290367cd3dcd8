"""Keypoint R-CNN (He et al. 2017, Mask R-CNN's keypoint head), torchvision's ResNet-50 FPN trained on COCO: per
detected person, 17 COCO keypoints from 56x56 heatmap logits over the person's box (trained with a one-hot target:
a softmax over the map).

torchvision's forward returns decoded keypoints only; `predict()` also catches the logits they come from, so the tab
can show the heatmaps, and `heatmap_on_image()` warps one of them back over its box onto the photo. Coordinates are
continuous pixels, pixel (i, j) covering [j, j+1) x [i, i+1) (see heatmaps.py).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection import KeypointRCNN, KeypointRCNN_ResNet50_FPN_Weights, keypointrcnn_resnet50_fpn

from . import heatmaps, runtime, weights
from .images import check_rgb

MODEL = "keypointrcnn-resnet50-fpn"
TASK_ID = "landmarks"

# torchvision's own entry: its URL, keypoint names and classes, instead of copies typed by hand.
_OFFICIAL = KeypointRCNN_ResNet50_FPN_Weights.COCO_V1
_METRICS = _OFFICIAL.meta["_metrics"]["COCO-val2017"]
_FILENAME = _OFFICIAL.url.rsplit("/", 1)[-1]  # torchvision's own name: the torch hub cache is shared
_SHA256 = "fc266e953d2b302cdcbb9ae66f71f6b0d4649928bf02dc573961e361e4918926"
assert _SHA256.startswith(_FILENAME.rsplit("-", 1)[-1].split(".")[0]), "the pinned hash must fit the file name's prefix"

CHECKPOINT = weights.Checkpoint(
    name=MODEL, task=TASK_ID, url=_OFFICIAL.url, filename=_FILENAME, sha256=_SHA256, bytes=237_034_793,
    license="BSD-3-Clause (torchvision); COCO-trained weights, see torchvision's pre-trained model license",
    source="https://docs.pytorch.org/vision/stable/models/generated/"
    "torchvision.models.detection.keypointrcnn_resnet50_fpn.html",
    notes=f"torchvision KeypointRCNN_ResNet50_FPN_Weights.COCO_V1 (box AP {_METRICS['box_map']}, keypoint AP "
    f"{_METRICS['kp_map']}): plain state dict, num_classes={len(_OFFICIAL.meta['categories'])}, "
    f"num_keypoints={len(_OFFICIAL.meta['keypoint_names'])}. Saved from a FrozenBatchNorm2d backbone (no "
    "num_batches_tracked); the builder sets that backbone's eps to 0 after loading, and so does load(). SHA-256 and "
    "size from third-party pins that agree with the 8-hex prefix in the name; not yet checked against a download "
    "here",
    hash_origin="third-party",
)
weights.register(CHECKPOINT)

# COCO person keypoints (the order of torchvision's outputs) and the COCO annotations' skeleton, 0-based.
KEYPOINT_NAMES = tuple(_OFFICIAL.meta["keypoint_names"])
SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10),
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
NOSE = 0
HEATMAP_SIZE = 56  # the RoI heatmaps: 14x14 RoIAlign, 2x transposed conv, 2x bilinear


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


# ----------------------------------------------------------------------------------------------------------------
# Building and loading

# Keypoint R-CNN's forward returns decoded keypoints only; the 56x56 logits they come from are caught on their way
# out of the keypoint predictor. One slot per thread: the cached model is shared by every user's request.
_CAPTURED = threading.local()


def _catch_heatmaps(module, inputs, output) -> None:
    _CAPTURED.heatmaps = output


def build() -> KeypointRCNN:
    """torchvision's Keypoint R-CNN (ResNet-50 FPN, 2 classes, 17 keypoints) with random weights and nothing
    downloaded, its keypoint logits caught for `predict`."""
    net = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=len(_OFFICIAL.meta["categories"]),
                                    num_keypoints=len(KEYPOINT_NAMES))
    _hook(net)
    return net


def _hook(net: KeypointRCNN) -> None:
    if not getattr(net, "_landmarks_hooked", False):
        net.roi_heads.keypoint_predictor.register_forward_hook(_catch_heatmaps)
        net._landmarks_hooked = True


def load(name: str = MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> KeypointRCNN:
    """The COCO Keypoint R-CNN (or a user's `checkpoint_file` in the official format), in eval mode on `device`,
    shared through runtime.MODELS."""
    if name != MODEL:  # before any download
        raise ValueError(f"Unknown Keypoint R-CNN model {name!r}; known: {MODEL}")
    device = device or runtime.device()
    path = Path(checkpoint_file) if checkpoint_file is not None else None

    def loader() -> KeypointRCNN:
        net = build()
        # Known packaging quirks: a `state_dict` wrapper, `module.` prefixes (nn.DataParallel), and no BatchNorm
        # counters (FrozenBatchNorm2d has none; they are unused at inference).
        state = weights.unwrap(weights.load_state_dict(path or weights.fetch(name, progress)), keys=("state_dict",))
        state.update({key: torch.zeros_like(value) for key, value in net.state_dict().items()
                      if key.endswith("num_batches_tracked") and key not in state})
        weights.strict_load(net, state, name)
        # torchvision's COCO_V1 builder sets eps=0 on its frozen BatchNorms (the checkpoint's convention); built
        # without weights the backbone has plain BatchNorm2d, identical in eval mode once eps matches.
        for module in net.backbone.body.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eps = 0.0
        # Kept in float32 everywhere: torchvision's detection post-processing mixes dtypes.
        return runtime.prepare(net, device, half=False)

    return runtime.cached_model("keypointrcnn", name, device, path, loader)


def cache_key(name: str, device: torch.device, checkpoint_file: Path | None = None) -> tuple:
    """The model cache's key for `load(name, device, checkpoint_file)` (tests seed the cache with it)."""
    return runtime.model_key("keypointrcnn", name, device, checkpoint_file)


# ----------------------------------------------------------------------------------------------------------------
# Prediction


def predict(net: KeypointRCNN, rgb: np.ndarray, person_threshold: float = 0.7) -> PoseResult:
    """People in an RGB uint8 image: boxes, scores, 17 keypoints with scores, and the 56x56 logit heatmaps."""
    check_rgb(rgb, "Keypoint R-CNN")
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
        boxes=runtime.to_numpy(out["boxes"][keep]), scores=runtime.to_numpy(out["scores"][keep]),
        keypoints=runtime.to_numpy(out["keypoints"][keep][..., :2]),
        keypoint_scores=runtime.to_numpy(out["keypoints_scores"][keep]),
        heatmaps=runtime.to_numpy(logits[keep]), image_size=(rgb.shape[1], rgb.shape[0]),
    )


def heatmap_on_image(result: PoseResult, person: int, keypoint: int) -> np.ndarray:
    """One person's logits for one keypoint warped over their box onto the image: (H, W) float32, -inf outside.

    Same geometry as torchvision's `heatmaps_to_keypoints`, so the map's peak is where the keypoint was put.
    """
    return heatmaps.heatmap_to_image(result.heatmaps[person, keypoint], result.boxes[person], result.image_size,
                                     fill=-np.inf)
