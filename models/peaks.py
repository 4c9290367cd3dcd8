"""Heatmap peaks and soft-NMS: what keypoint-style detectors (CenterNet, CornerNet, CenterFace) do after the network.

A 3x3 max-pool keeps the local maxima of a heatmap (the heatmap "NMS"), and the top k maxima over classes and
positions become candidates; `gather` reads the other heads (sizes, offsets, embeddings) at those positions. These are
mmdetection's gaussian_target helpers, rewritten: tensors in, tensors out, any number of channels.

Soft-NMS (Bodla et al. 2017) is computed as mmcv's CPU soft_nms computes it; torchvision only has hard NMS.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def local_maximum(heat: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """Zero every value that is not the maximum of its kernel x kernel neighbourhood: the heatmap "NMS"."""
    pooled = F.max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2)
    return heat * (pooled == heat)


def top_k(heat: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """The k highest values of (B, C, H, W) over classes and positions.

    Returns scores, flat positions (row * W + column), classes, rows and columns (float), each (B, k).
    """
    batch, _, height, width = heat.shape
    scores, flat = torch.topk(heat.reshape(batch, -1), k)
    classes = torch.div(flat, height * width, rounding_mode="floor")
    positions = flat % (height * width)
    rows = torch.div(positions, width, rounding_mode="floor").float()
    columns = (positions % width).float()
    return scores, positions, classes, rows, columns


def gather(feature: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Values of (B, C, H, W) at flat positions (B, K) -> (B, K, C)."""
    batch, channels = feature.shape[:2]
    flat = feature.reshape(batch, channels, -1)
    return flat.gather(2, positions.unsqueeze(1).expand(-1, channels, -1)).permute(0, 2, 1)


# ----------------------------------------------------------------------------------------------------------------
# Soft-NMS


def soft_nms(boxes, scores, method: str = "gaussian", sigma: float = 0.5, iou_threshold: float = 0.3,
             min_score: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Greedy soft-NMS: take the best box, decay the others' scores by their overlap with it, repeat.

    Decay: gaussian exp(-iou^2 / sigma) (iou_threshold unused, as in mmcv); linear 1 - iou where iou >= threshold;
    naive 0 where iou >= threshold (hard NMS). Boxes falling below `min_score` are dropped. Returns the kept indices
    in the order taken (decreasing decayed score) and their decayed scores.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    decayed = np.array(scores, np.float32).reshape(-1)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.arange(len(boxes))
    kept, kept_scores = [], []
    while alive.size:
        best = alive[np.argmax(decayed[alive])]
        kept.append(best)
        kept_scores.append(decayed[best])
        alive = alive[alive != best]
        if not alive.size:
            break
        iou = _iou_one_to_many(boxes[best], areas[best], boxes[alive], areas[alive])
        decayed[alive] *= _decay(iou, method, sigma, iou_threshold)
        alive = alive[decayed[alive] >= min_score]
    return np.asarray(kept, np.int64), np.asarray(kept_scores, np.float32)


def batched_soft_nms(boxes, scores, labels, **settings) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS within each class: mmcv's batched_nms shifts each class's boxes by label * (max coordinate + 1), so
    boxes of different classes never overlap, then runs one soft-NMS."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    shift = np.asarray(labels, np.float32)[:, None] * (boxes.max() + 1)
    return soft_nms(boxes + shift, scores, **settings)


def _iou_one_to_many(box, area, others, other_areas) -> np.ndarray:
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = width * height
    with np.errstate(divide="ignore", invalid="ignore"):  # two empty boxes: 0 / 0, no overlap
        return np.nan_to_num(inter / (area + other_areas - inter)).astype(np.float32)


def _decay(iou: np.ndarray, method: str, sigma: float, iou_threshold: float) -> np.ndarray:
    if method == "gaussian":
        return np.exp(-(iou * iou) / sigma)
    if method == "linear":
        return np.where(iou >= iou_threshold, 1 - iou, 1).astype(np.float32)
    if method == "naive":
        return np.where(iou >= iou_threshold, 0, 1).astype(np.float32)
    raise ValueError(f"soft-NMS method must be gaussian, linear or naive; got {method!r}")
