"""CornerNet's network in mmdetection's state-dict layout: corner pooling, Hourglass-104 and the corner head.

Hourglass-104: a stride-4 stem and two stacked hourglasses (five halvings each, 256-512 channels, ~190M parameters),
each ending in a 256-channel feature map; training supervises both, inference uses the last. The corner head runs
two corner-pooling modules on it: for a top-left corner, "top" pooling (the maximum of everything below a cell) plus
"left" pooling (the maximum of everything to its right), because a box's top-left corner usually lies outside the
object and has to look down and right to see it; bottom-right uses "bottom" and "right". From the pooled features,
per corner type: an 80-class heatmap, a 1-D embedding, and a sub-cell offset.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from .mmdet import ConvModule


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
