"""CornerNet ("Detecting Objects as Paired Keypoints", Law & Deng, ECCV 2018) as mmdetection trained it on COCO.

Hourglass-104: a stride-4 stem and two stacked hourglasses (five halvings each, 256-512 channels, ~190M parameters),
each ending in a 256-channel feature map; training supervises both, inference uses the last. The corner head runs
two corner-pooling modules on it: for a top-left corner, "top" pooling (the maximum of everything below a cell) plus
"left" pooling (the maximum of everything to its right), because a box's top-left corner usually lies outside the
object and has to look down and right to see it; bottom-right uses "bottom" and "right". From the pooled features,
per corner type: an 80-class heatmap, a 1-D embedding, and a sub-cell offset.

Decoding keeps the 3x3 local maxima of both heatmaps, takes the top 100 of each, and tries every top-left with every
bottom-right: a pair is a box if both corners have the same class, their embeddings differ by at most 0.5, and the
bottom-right lies right of and below the top-left; its score is the mean of the two corner scores. Gaussian soft-NMS
within each class then lowers the scores of boxes overlapping better ones; the 100 best are kept.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from . import keypoint_detection as kd
from . import weights
from .keypoint_detection import ConvModule, Detections, Geometry, Peaks

_SOURCE = "https://github.com/open-mmlab/mmdetection/tree/main/configs/cornernet"
DEFAULT_MODEL = "cornernet-hg104"
CHECKPOINTS = {
    DEFAULT_MODEL: weights.Checkpoint(
        name=DEFAULT_MODEL, task=kd.TASK_ID,
        url=f"{kd.MMDET_DOWNLOADS}/cornernet/cornernet_hourglass104_mstest_10x5_210e_coco/"
        "cornernet_hourglass104_mstest_10x5_210e_coco_20200824_185720-5fefbf1c.pth",
        filename="cornernet_hourglass104_mstest_10x5_210e_coco_20200824_185720-5fefbf1c.pth", sha256=None, bytes=None, license=kd.MMDET_LICENSE,
        source=_SOURCE,
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


# ----------------------------------------------------------------------------------------------------------------
# Corner pooling


# mmcv's CornerPool: (dimension, scan from the far end?). "top" takes the max over the cell and everything below it,
# "left" over the cell and everything to its right, "bottom" everything above, "right" everything to its left.
POOL_DIRECTIONS = {"top": (2, True), "bottom": (2, False), "left": (3, True), "right": (3, False)}


def corner_pool(x: torch.Tensor, direction: str) -> torch.Tensor:
    """Running maximum along one axis of (N, C, H, W), as mmcv computes it with torch.cummax."""
    dim, from_far_end = POOL_DIRECTIONS[direction]
    if from_far_end:
        return torch.cummax(x.flip(dim), dim=dim)[0].flip(dim)
    return torch.cummax(x, dim=dim)[0]


class CornerPool(nn.Module):
    def __init__(self, direction: str):
        super().__init__()
        if direction not in POOL_DIRECTIONS:
            raise ValueError(f"corner pooling direction must be one of {', '.join(POOL_DIRECTIONS)}")
        self.direction = direction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return corner_pool(x, self.direction)


# ----------------------------------------------------------------------------------------------------------------
# Hourglass-104 (mmdetection's HourglassNet; its BasicBlock is torchvision's, names included)


def res_layer(inplanes: int, planes: int, blocks: int, stride: int = 1, downsample_first: bool = True) -> nn.Sequential:
    """mmdetection's ResLayer of BasicBlocks. The block that changes channels or stride gets a 1x1 conv + BN
    shortcut: the first block, or with `downsample_first=False` (the hourglass's way up) the last one."""
    shortcut = None
    if stride != 1 or inplanes != planes:
        shortcut = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
    if downsample_first:
        layers = [BasicBlock(inplanes, planes, stride, shortcut)] + [BasicBlock(planes, planes)
                                                                      for _ in range(blocks - 1)]
    else:
        layers = [BasicBlock(inplanes, inplanes) for _ in range(blocks - 1)] + [BasicBlock(inplanes, planes, stride,
                                                                                          shortcut)]
    return nn.Sequential(*layers)


class HourglassModule(nn.Module):
    """Recursive: a full-resolution branch (up1) plus a branch that halves (low1), recurses (low2), comes back (low3)
    and is upsampled (nearest) onto up1."""

    def __init__(self, depth: int, channels: tuple[int, ...], blocks: tuple[int, ...]):
        super().__init__()
        self.up1 = res_layer(channels[0], channels[0], blocks[0])
        self.low1 = res_layer(channels[0], channels[1], blocks[0], stride=2)
        self.low2 = (HourglassModule(depth - 1, channels[1:], blocks[1:]) if depth > 1
                     else res_layer(channels[1], channels[1], blocks[1]))
        self.low3 = res_layer(channels[1], channels[0], blocks[0], downsample_first=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(x)))
        return up1 + F.interpolate(low, size=up1.shape[2:], mode="nearest")


class HourglassNet(nn.Module):
    def __init__(self, downsample_times: int = 5, num_stacks: int = 2,
                 stage_channels=(256, 256, 384, 384, 384, 512), stage_blocks=(2, 2, 2, 2, 2, 4),
                 feat_channel: int = 256):
        super().__init__()
        channel = stage_channels[0]
        self.num_stacks = num_stacks
        self.stem = nn.Sequential(ConvModule(3, channel // 2, 7, stride=2, padding=3),
                                  res_layer(channel // 2, channel, 1, stride=2))
        self.hourglass_modules = nn.ModuleList(
            HourglassModule(downsample_times, tuple(stage_channels), tuple(stage_blocks)) for _ in range(num_stacks))
        self.inters = res_layer(channel, channel, num_stacks - 1)
        self.conv1x1s = nn.ModuleList(ConvModule(channel, channel, 1, relu=False) for _ in range(num_stacks - 1))
        self.out_convs = nn.ModuleList(ConvModule(channel, feat_channel, 3, padding=1) for _ in range(num_stacks))
        self.remap_convs = nn.ModuleList(ConvModule(feat_channel, channel, 1, relu=False)
                                         for _ in range(num_stacks - 1))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One feature map per stack (stride 4); the next stack starts from the stem features plus this output."""
        inter = self.stem(x)
        outs = []
        for index in range(self.num_stacks):
            out = self.out_convs[index](self.hourglass_modules[index](inter))
            outs.append(out)
            if index < self.num_stacks - 1:
                inter = self.inters[index](self.relu(self.conv1x1s[index](inter) + self.remap_convs[index](out)))
        return outs


# ----------------------------------------------------------------------------------------------------------------
# Corner head


class BiCornerPool(nn.Module):
    """Two 3x3 conv branches pooled in two directions and summed, a 3x3 conv, plus a 1x1 shortcut, ReLU, 3x3 conv."""

    def __init__(self, in_channels: int, directions: tuple[str, str], feat_channels: int = 128,
                 out_channels: int = 128):
        super().__init__()
        self.direction1_conv = ConvModule(in_channels, feat_channels, 3, padding=1)
        self.direction2_conv = ConvModule(in_channels, feat_channels, 3, padding=1)
        self.aftpool_conv = ConvModule(feat_channels, out_channels, 3, padding=1, relu=False)
        self.conv1 = ConvModule(in_channels, out_channels, 1, relu=False)
        self.conv2 = ConvModule(in_channels, out_channels, 3, padding=1)
        self.direction1_pool = CornerPool(directions[0])
        self.direction2_pool = CornerPool(directions[1])
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.direction1_pool(self.direction1_conv(x)) + self.direction2_pool(self.direction2_conv(x))
        return self.conv2(self.relu(self.aftpool_conv(pooled) + self.conv1(x)))


def _branch(out_channels: int, in_channels: int = 256, feat_channels: int = 256) -> nn.Sequential:
    """3x3 conv + ReLU, 1x1 conv: mmcv ConvModules without norm, so both convolutions have a bias."""
    return nn.Sequential(ConvModule(in_channels, feat_channels, 3, padding=1, norm=False),
                         ConvModule(feat_channels, out_channels, 1, norm=False, relu=False))


class CornerHead(nn.Module):
    """Per feature level (one per hourglass stack): pooling, heatmaps, offsets and embeddings for both corners."""

    OUTPUTS = ("tl_heat", "br_heat", "tl_emb", "br_emb", "tl_off", "br_off")

    def __init__(self, num_classes: int = 80, in_channels: int = 256, num_feat_levels: int = 2,
                 corner_emb_channels: int = 1):
        super().__init__()
        levels = range(num_feat_levels)
        # Registration order = mmdetection's, so state_dict() lists the keys in the checkpoint's order.
        self.tl_pool = nn.ModuleList(BiCornerPool(in_channels, ("top", "left"), out_channels=in_channels)
                                     for _ in levels)
        self.br_pool = nn.ModuleList(BiCornerPool(in_channels, ("bottom", "right"), out_channels=in_channels)
                                     for _ in levels)
        self.tl_heat = nn.ModuleList(_branch(num_classes, in_channels) for _ in levels)
        self.br_heat = nn.ModuleList(_branch(num_classes, in_channels) for _ in levels)
        self.tl_off = nn.ModuleList(_branch(2, in_channels) for _ in levels)
        self.br_off = nn.ModuleList(_branch(2, in_channels) for _ in levels)
        self.tl_emb = nn.ModuleList(_branch(corner_emb_channels, in_channels) for _ in levels)
        self.br_emb = nn.ModuleList(_branch(corner_emb_channels, in_channels) for _ in levels)
        for heat in (*self.tl_heat, *self.br_heat):
            heat[-1].conv.bias.data.fill_(-2.19)  # mmdet's prior of 0.1: random weights give few false peaks

    def forward(self, feats: list[torch.Tensor], level: int = -1) -> dict[str, torch.Tensor]:
        """The heads of one level (default the last, the only one used at test time); heatmaps are logits."""
        x = feats[level]
        tl, br = self.tl_pool[level](x), self.br_pool[level](x)
        return {"tl_heat": self.tl_heat[level](tl), "br_heat": self.br_heat[level](br),
                "tl_emb": self.tl_emb[level](tl), "br_emb": self.br_emb[level](br),
                "tl_off": self.tl_off[level](tl), "br_off": self.br_off[level](br)}


class CornerNet(nn.Module):
    """Image (1, 3, 128k - 1, 128m - 1) -> the last level's corner heads at (32k, 32m) cells."""

    def __init__(self):
        super().__init__()
        self.backbone = HourglassNet()
        self.bbox_head = CornerHead()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.bbox_head(self.backbone(x))


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
    return kd.cached_load("cornernet", name, device, checkpoint_file, progress, build, _convert_state_dict)


def cache_key(name: str, device: torch.device, checkpoint_file: str | None = None) -> tuple:
    """The runtime.MODELS key under which `load` keeps this network (benchmarks put random weights there)."""
    return kd.cache_key("cornernet", name, device, checkpoint_file)


def _convert_state_dict(name: str, state: dict) -> dict:
    """Quirk of the official file: mmdetection wraps the weights as {"meta": ..., "state_dict": ...}. The keys
    themselves are the module names above (corner pooling has no parameters)."""
    return kd.unwrap_state_dict(state)


# ----------------------------------------------------------------------------------------------------------------
# Decoding (pure: tests feed it hand-made heads)


def _corners(heat: torch.Tensor, offset: torch.Tensor, embedding: torch.Tensor, geometry: Geometry, k: int):
    """Top-k local maxima of one corner heatmap (C, h, w), moved by their offsets, in photo coordinates (clamped at
    0 as mmdetection does). Returns scores, labels, x, y, embeddings, each (k,)."""
    scores, positions, labels, rows, columns = kd.top_k(kd.local_maximum(heat[None]), k)
    shift = kd.gather(offset[None], positions)[0]
    xs, ys = geometry.feature_to_image(columns[0] + shift[:, 0], rows[0] + shift[:, 1])
    emb = kd.gather(embedding[None], positions)[0, :, 0]
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
    kept, scores = kd.batched_soft_nms(kd.numpy(decoded["boxes"]), kd.numpy(decoded["scores"]),
                                       kd.numpy(decoded["labels"]), **SOFT_NMS)
    return kept[:max_per_img], scores[:max_per_img]


def predict(net: CornerNet, rgb: np.ndarray, score_threshold: float = 0.0, classes=None,
            working_size: int | None = kd.DEFAULT_WORKING_SIZE) -> Detections:
    """Objects in an RGB uint8 photo: boxes in its pixels (best first, at least `score_threshold`, of `classes`),
    with both corner heatmaps, their top-100 corners and each box's corner embeddings for the teaching views."""
    parameter = next(net.parameters())
    x, geometry = kd.preprocess(rgb, PAD, working_size or None, parameter.device, parameter.dtype)
    if parameter.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        heads = {name: value[0].float() for name, value in net(x).items()}
        heads["tl_heat"], heads["br_heat"] = heads["tl_heat"].sigmoid(), heads["br_heat"].sigmoid()
        height, width = heads["tl_heat"].shape[1:]
        geometry = replace(geometry, feature_size=(width, height))
        decoded = decode(**heads, geometry=geometry)
    kept, scores = suppress(decoded)
    tl_index, br_index = kd.numpy(decoded["tl_index"]).astype(np.int64)[kept], \
        kd.numpy(decoded["br_index"]).astype(np.int64)[kept]
    corner = {name: kd.numpy(value) for name, value in decoded.items() if name[:3] in ("tl_", "br_")}
    found = Detections(
        boxes=kd.numpy(decoded["boxes"])[kept].reshape(-1, 4), scores=scores,
        label_ids=kd.numpy(decoded["labels"]).astype(np.int64)[kept], geometry=geometry,
        heatmaps={"top_left": kd.numpy(heads["tl_heat"]), "bottom_right": kd.numpy(heads["br_heat"])},
        peaks={name: Peaks(np.stack([corner[f"{p}_x"], corner[f"{p}_y"]], axis=1), corner[f"{p}_scores"],
                           corner[f"{p}_labels"].astype(np.int64), corner[f"{p}_embeddings"])
               for name, p in (("top_left", "tl"), ("bottom_right", "br"))},
        corner_embeddings=np.stack([corner["tl_embeddings"][tl_index], corner["br_embeddings"][br_index]], axis=1),
        corner_scores=np.stack([corner["tl_scores"][tl_index], corner["br_scores"][br_index]], axis=1),
    )
    return kd.select(found, score_threshold, classes)
