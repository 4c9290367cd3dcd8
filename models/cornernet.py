"""CornerNet ("Detecting Objects as Paired Keypoints", Law & Deng, ECCV 2018) as mmdetection trained it on COCO: the
pipeline.

The network (`cornernet_arch`, Hourglass-104 with corner pooling) predicts, per corner type (top-left and
bottom-right), an 80-class heatmap, a 1-D embedding and a sub-cell offset at every stride-4 cell.

Decoding keeps the 3x3 local maxima of both heatmaps, takes the top 100 of each, and tries every top-left with every
bottom-right: a pair is a box if both corners have the same class, their embeddings differ by at most 0.5, and the
bottom-right lies right of and below the top-left; its score is the mean of the two corner scores. Gaussian soft-NMS
within each class then lowers the scores of boxes overlapping better ones; the 100 best are kept.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from . import mmdet, peaks, runtime, weights
from .cornernet_arch import CornerNet
from .detections import Detections, Peaks, select
from .mmdet import Geometry
from .runtime import to_numpy

TASK_ID = "keypoint-detectors"
_SOURCE = "https://github.com/open-mmlab/mmdetection/tree/main/configs/cornernet"
DEFAULT_MODEL = "cornernet-hg104"
CHECKPOINTS = {
    DEFAULT_MODEL: weights.Checkpoint(
        name=DEFAULT_MODEL, task=TASK_ID,
        url=f"{mmdet.MMDET_DOWNLOADS}/cornernet/cornernet_hourglass104_mstest_10x5_210e_coco/"
        "cornernet_hourglass104_mstest_10x5_210e_coco_20200824_185720-5fefbf1c.pth",
        filename="cornernet_hourglass104_mstest_10x5_210e_coco_20200824_185720-5fefbf1c.pth", sha256=None,
        bytes=None, license=mmdet.MMDET_LICENSE, source=_SOURCE, state_key="state_dict",
        notes="mmdetection v2 checkpoint {'meta', 'state_dict'}; 1128 tensors (~201M parameters, about 800 MB, "
        "unconfirmed). No full SHA-256 is published: the first download's hash is recorded, and its first 8 hex "
        "digits must be 5fefbf1c (the openmmlab file-name convention). Box AP 41.2 on COCO val2017 with flip "
        "test-time augmentation (this app runs one unflipped pass)",
    ),
}
weights.register(*CHECKPOINTS.values())

LABEL = "CornerNet Hourglass-104 (mmdetection, COCO)"
# The test pipeline's RandomCenterCropPad: test_pad_mode=['logical_or', 127], no extra pixel -> size | 127, so the
# input is 128k - 1 pixels and the heatmaps 32k cells (the ratio input/heatmap is 511/128, not exactly 4).
PAD = ("logical_or", 127, 0)
# test_cfg of the official config.
TOP_K = 100  # corner_topk
KERNEL = 3  # local_maximum_kernel
DISTANCE_THRESHOLD = 0.5  # embeddings further apart than this are not one object
NUM_DETS = 1000  # candidate boxes kept before NMS (decode_heatmap's default)
SOFT_NMS = {"method": "gaussian", "sigma": 0.5, "iou_threshold": 0.5, "min_score": 1e-3}  # mmcv soft_nms defaults
MAX_PER_IMG = 100
DEFAULT_WORKING_SIZE = 512  # the tab's default: CPU-friendly, and most photos shrink to it


# ----------------------------------------------------------------------------------------------------------------
# Building and loading


def build(name: str = DEFAULT_MODEL) -> CornerNet:
    """The architecture with random weights (~200M parameters: a few seconds to initialise)."""
    if name != DEFAULT_MODEL:
        raise ValueError(f"Unknown CornerNet variant {name!r}; known: {DEFAULT_MODEL}")
    return CornerNet()


def load(name: str = DEFAULT_MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> CornerNet:
    """The network with the official mmdetection weights (an ~800 MB download on first use), in eval mode, shared
    through runtime.MODELS."""
    return mmdet.cached_load("cornernet", name, device, checkpoint_file, progress, build, _convert_state_dict)


def cache_key(name: str, device: torch.device, checkpoint_file: str | None = None) -> tuple:
    """The runtime.MODELS key under which `load` keeps this network (benchmarks put random weights there)."""
    return runtime.model_key("cornernet", name, device, checkpoint_file)


def _convert_state_dict(name: str, state: dict) -> dict:
    """Quirk of the official file: mmdetection wraps the weights as {"meta": ..., "state_dict": ...}. The keys
    themselves are the module names above (corner pooling has no parameters)."""
    return mmdet.unwrap(state)


# ----------------------------------------------------------------------------------------------------------------
# Decoding (pure: tests feed it hand-made heads)


def _corners(heat: torch.Tensor, offset: torch.Tensor, embedding: torch.Tensor, geometry: Geometry, k: int):
    """Top-k local maxima of one corner heatmap (C, h, w), moved by their offsets, in photo coordinates (clamped at
    0 as mmdetection does). Returns scores, labels, x, y, embeddings, each (k,)."""
    scores, positions, labels, rows, columns = peaks.top_k(peaks.local_maximum(heat[None]), k)
    shift = peaks.gather(offset[None], positions)[0]
    xs, ys = geometry.feature_to_image(columns[0] + shift[:, 0], rows[0] + shift[:, 1])
    emb = peaks.gather(embedding[None], positions)[0, :, 0]
    return scores[0], labels[0], xs.clamp(min=0), ys.clamp(min=0), emb


def decode(tl_heat: torch.Tensor, br_heat: torch.Tensor, tl_emb: torch.Tensor, br_emb: torch.Tensor,
           tl_off: torch.Tensor, br_off: torch.Tensor, geometry: Geometry, k: int = TOP_K,
           distance_threshold: float = DISTANCE_THRESHOLD, num_dets: int = NUM_DETS) -> dict[str, torch.Tensor]:
    """One image's heads -> candidate boxes before NMS, as mmdetection's CornerHead.decode_heatmap builds them.

    Heatmaps (C, h, w) are probabilities (after the sigmoid), embeddings (1, h, w), offsets (2, h, w). Every top-k
    top-left corner is paired with every top-k bottom-right corner; pairs of different classes, with embeddings more
    than `distance_threshold` apart, or not spanning a positive width and height are rejected. Returns the best
    `num_dets` valid pairs: boxes (n, 4), scores (n,) = mean of the corner scores, labels (n,), and for each the
    index of its corners among the top-k (tl_index, br_index); plus the corners themselves ("tl_*", "br_*", (k,)).
    """
    k = min(k, tl_heat.numel())
    tl = _corners(tl_heat.float(), tl_off.float(), tl_emb.float(), geometry, k)
    br = _corners(br_heat.float(), br_off.float(), br_emb.float(), geometry, k)
    (tl_s, tl_c, tl_x, tl_y, tl_e), (br_s, br_c, br_x, br_y, br_e) = tl, br
    # (k, k) grids: row i = top-left corner i, column j = bottom-right corner j
    valid = tl_c[:, None] == br_c[None, :]
    valid &= (tl_e[:, None] - br_e[None, :]).abs() <= distance_threshold
    valid &= (br_x[None, :] > tl_x[:, None]) & (br_y[None, :] > tl_y[:, None])
    scores = torch.where(valid, (tl_s[:, None] + br_s[None, :]) / 2, torch.full_like(valid, -1, dtype=tl_s.dtype))
    scores, flat = torch.topk(scores.reshape(-1), min(num_dets, k * k))
    keep = scores > -0.1  # the rejected pairs carry -1
    scores, flat = scores[keep], flat[keep]
    tl_index, br_index = torch.div(flat, k, rounding_mode="floor"), flat % k
    boxes = torch.stack([tl_x[tl_index], tl_y[tl_index], br_x[br_index], br_y[br_index]], dim=1)
    corners = {f"{prefix}_{name}": value for prefix, values in (("tl", tl), ("br", br))
               for name, value in zip(("scores", "labels", "x", "y", "embeddings"), values)}
    return {"boxes": boxes, "scores": scores, "labels": tl_c[tl_index], "tl_index": tl_index, "br_index": br_index,
            **corners}


def suppress(decoded: dict[str, torch.Tensor], max_per_img: int = MAX_PER_IMG) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-NMS within each class over the decoded pairs; the indices kept (best first) and their
    lowered scores, at most `max_per_img`."""
    kept, scores = peaks.batched_soft_nms(to_numpy(decoded["boxes"]), to_numpy(decoded["scores"]),
                                          to_numpy(decoded["labels"]), **SOFT_NMS)
    return kept[:max_per_img], scores[:max_per_img]


def predict(net: CornerNet, rgb: np.ndarray, score_threshold: float = 0.0, classes=None,
            working_size: int | None = DEFAULT_WORKING_SIZE) -> Detections:
    """Objects in an RGB uint8 photo: boxes in its pixels (best first, at least `score_threshold`, of `classes`),
    with both corner heatmaps, their top-100 corners and each box's corner embeddings for the teaching views."""
    x, geometry = mmdet.network_input(net, rgb, PAD, working_size or None)
    with torch.inference_mode():
        heads = {name: value[0].float() for name, value in net(x).items()}
        heads["tl_heat"], heads["br_heat"] = heads["tl_heat"].sigmoid(), heads["br_heat"].sigmoid()
        height, width = heads["tl_heat"].shape[1:]
        geometry = replace(geometry, feature_size=(width, height))
        decoded = decode(**heads, geometry=geometry)
    kept, scores = suppress(decoded)
    tl_index = to_numpy(decoded["tl_index"]).astype(np.int64)[kept]
    br_index = to_numpy(decoded["br_index"]).astype(np.int64)[kept]
    corner = {name: to_numpy(value) for name, value in decoded.items() if name[:3] in ("tl_", "br_")}
    found = Detections(
        boxes=to_numpy(decoded["boxes"])[kept].reshape(-1, 4), scores=scores,
        label_ids=to_numpy(decoded["labels"]).astype(np.int64)[kept], geometry=geometry,
        heatmaps={"top_left": to_numpy(heads["tl_heat"]), "bottom_right": to_numpy(heads["br_heat"])},
        peaks={name: Peaks(np.stack([corner[f"{p}_x"], corner[f"{p}_y"]], axis=1), corner[f"{p}_scores"],
                           corner[f"{p}_labels"].astype(np.int64), corner[f"{p}_embeddings"])
               for name, p in (("top_left", "tl"), ("bottom_right", "br"))},
        corner_embeddings=np.stack([corner["tl_embeddings"][tl_index], corner["br_embeddings"][br_index]], axis=1),
        corner_scores=np.stack([corner["tl_scores"][tl_index], corner["br_scores"][br_index]], axis=1),
    )
    return select(found, score_threshold, classes)
