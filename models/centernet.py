"""CenterNet ("Objects as Points", Zhou, Wang & Krähenbühl 2019) as mmdetection trained it on COCO: the pipeline.

The network (`centernet_arch`) predicts, at every stride-4 cell, an 80-class centre heatmap, the box's width and
height, and the sub-cell offset of its centre. Decoding keeps the 3x3 local maxima of the heatmap, takes the top 100,
and makes each a box centred at (cell + offset) with the regressed size; no NMS.

Two checkpoints: "centernet-r18" (plain 3x3 convs in the neck, box AP 25.9) and "centernet-r18-dcn" (modulated
deformable convs, DCNv2, in the neck, box AP 29.5).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from . import mmdet, peaks, runtime, weights
from .centernet_arch import CenterNet
from .detections import Detections, Peaks, select
from .mmdet import Geometry
from .runtime import to_numpy

TASK_ID = "keypoint-detectors"
_SOURCE = "https://github.com/open-mmlab/mmdetection/tree/main/configs/centernet"
CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        weights.Checkpoint(
            name="centernet-r18", task=TASK_ID,
            url=f"{mmdet.MMDET_DOWNLOADS}/centernet/centernet_resnet18_140e_coco/"
            "centernet_resnet18_140e_coco_20210705_093630-bb5b3bf7.pth",
            filename="centernet_resnet18_140e_coco_20210705_093630-bb5b3bf7.pth", sha256=None, bytes=None,
            license=mmdet.MMDET_LICENSE, source=_SOURCE, state_key="state_dict",
            notes="mmdetection v2 checkpoint {'meta', 'state_dict'}; 168 tensors (~14.2M parameters, about 57 MB, "
            "unconfirmed). No full SHA-256 is published: the first download's hash is recorded, and its first "
            "8 hex digits must be bb5b3bf7 (the openmmlab file-name convention). Box AP 25.9 on COCO val2017",
        ),
        weights.Checkpoint(
            name="centernet-r18-dcn", task=TASK_ID,
            url=f"{mmdet.MMDET_DOWNLOADS}/centernet/centernet_resnet18_dcnv2_140e_coco/"
            "centernet_resnet18_dcnv2_140e_coco_20210702_155131-c8cd631f.pth",
            filename="centernet_resnet18_dcnv2_140e_coco_20210702_155131-c8cd631f.pth", sha256=None, bytes=None,
            license=mmdet.MMDET_LICENSE, source=_SOURCE, state_key="state_dict",
            notes="as centernet-r18 with DCNv2 neck convs (conv.weight + conv.conv_offset.*); 174 tensors (~14.4M "
            "parameters). SHA-256 prefix c8cd631f. Box AP 29.5 on COCO val2017",
        ),
    )
}
weights.register(*CHECKPOINTS.values())


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    use_dcn: bool
    box_ap: float


VARIANTS = {
    "centernet-r18": Variant("centernet-r18", "CenterNet ResNet-18 (mmdetection, COCO)", False, 25.9),
    "centernet-r18-dcn": Variant("centernet-r18-dcn", "CenterNet ResNet-18 + DCNv2 neck (mmdetection, COCO)", True,
                                 29.5),
}
DEFAULT_MODEL = "centernet-r18"
DEFAULT_WORKING_SIZE = 512
# The test pipeline's RandomCenterCropPad: test_pad_mode=['logical_or', 31], test_pad_add_pix=1 -> (size | 31) + 1.
PAD = ("logical_or", 31, 1)
TOP_K = 100  # test_cfg: topk=100, local_maximum_kernel=3, max_per_img=100
KERNEL = 3


# ----------------------------------------------------------------------------------------------------------------
# Building and loading


def build(name: str = DEFAULT_MODEL) -> CenterNet:
    """The architecture of checkpoint `name` with random weights."""
    try:
        return CenterNet(VARIANTS[name].use_dcn)
    except KeyError:
        raise ValueError(f"Unknown CenterNet variant {name!r}; known: {', '.join(VARIANTS)}") from None


def load(name: str = DEFAULT_MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> CenterNet:
    """The network with the official mmdetection weights (or a user's file in the same format), in eval mode,
    shared through runtime.MODELS."""
    return mmdet.cached_load("centernet", name, device, checkpoint_file, progress, build, _convert_state_dict)


def cache_key(name: str, device: torch.device, checkpoint_file: str | None = None) -> tuple:
    """The runtime.MODELS key under which `load` keeps this network (benchmarks put random weights there)."""
    return runtime.model_key("centernet", name, device, checkpoint_file)


def _convert_state_dict(name: str, state: dict) -> dict:
    """Quirks of the official files:
    - mmdetection wraps the weights: {"meta": ..., "state_dict": ...} (mmdet.unwrap);
    - DCN variant only: mmcv's ModulatedDeformConv2dPack before its version 2 stored the offset conv as
      `<layer>.conv_offset.*` beside the layer (`neck.deconv_layers.0.conv_offset.weight`) rather than inside it
      (`neck.deconv_layers.0.conv.conv_offset.weight`); mmcv renames on load, so do we. The 2021 file should
      already use the new names.
    """
    state = mmdet.unwrap(state)
    if VARIANTS[name].use_dcn:
        renamed = {}
        for key, value in state.items():
            head, _, tail = key.partition(".conv_offset.")
            renamed[f"{head}.conv.conv_offset.{tail}" if tail and not head.endswith(".conv") else key] = value
        state = renamed
    return state


# ----------------------------------------------------------------------------------------------------------------
# Decoding (pure: tests feed it hand-made heads)


def decode(heat: torch.Tensor, wh: torch.Tensor, offset: torch.Tensor, geometry: Geometry, k: int = TOP_K,
           kernel: int = KERNEL) -> dict[str, torch.Tensor]:
    """One image's heads -> the top-k boxes in photo coordinates, as mmdetection's CenterNetHead decodes them.

    heat (C, h, w) probabilities, wh (2, h, w) and offset (2, h, w) in heatmap cells. A peak at cell (row, col) with
    offset (ox, oy) and size (w, h) is the box centred at ((col + ox), (row + oy)) cells, w x h cells large, scaled by
    the input/heatmap ratio, shifted by the padding border, divided by the downscale. Returns boxes (k, 4),
    scores (k,), labels (k,), centers (k, 2), sorted by score.
    """
    heat, wh, offset = heat[None].float(), wh[None].float(), offset[None].float()
    k = min(k, heat[0].numel())
    scores, positions, labels, rows, columns = peaks.top_k(peaks.local_maximum(heat, kernel), k)
    size = peaks.gather(wh, positions)[0]
    shift = peaks.gather(offset, positions)[0]
    cx, cy = columns[0] + shift[:, 0], rows[0] + shift[:, 1]
    x1, y1 = geometry.feature_to_image(cx - size[:, 0] / 2, cy - size[:, 1] / 2)
    x2, y2 = geometry.feature_to_image(cx + size[:, 0] / 2, cy + size[:, 1] / 2)
    centers = torch.stack(geometry.feature_to_image(cx, cy), dim=1)
    return {"boxes": torch.stack([x1, y1, x2, y2], dim=1), "scores": scores[0], "labels": labels[0],
            "centers": centers}


def predict(net: CenterNet, rgb: np.ndarray, score_threshold: float = 0.0, classes=None,
            working_size: int | None = DEFAULT_WORKING_SIZE) -> Detections:
    """Objects in an RGB uint8 photo: boxes in its pixels (best first, at least `score_threshold`, of `classes`),
    with the centre heatmap and its top-100 peaks for the teaching views. `working_size` 0/None: the photo's size."""
    x, geometry = mmdet.network_input(net, rgb, PAD, working_size or None)
    with torch.inference_mode():
        heat, wh, offset = net(x)
        geometry = replace(geometry, feature_size=(heat.shape[3], heat.shape[2]))
        decoded = decode(heat[0], wh[0], offset[0], geometry)
    boxes, scores, labels, centers = (to_numpy(decoded[key]) for key in ("boxes", "scores", "labels", "centers"))
    labels = labels.astype(np.int64)
    found = Detections(boxes, scores, labels, geometry, {"center": to_numpy(heat[0])},
                       {"center": Peaks(centers, scores, labels)}, centers=centers)
    return select(found, score_threshold, classes)
