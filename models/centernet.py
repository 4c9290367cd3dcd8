"""CenterNet ("Objects as Points", Zhou, Wang & Krähenbühl 2019) as mmdetection trained it on COCO.

A ResNet-18 body (stride 32), the CT-ResNet neck (three stages of 3x3 conv + 4x4 transposed conv, each with BatchNorm
and ReLU, back up to stride 4 with 64 channels), and three small heads at every stride-4 cell: an 80-class centre
heatmap (sigmoid), the box's width and height, and the sub-cell offset of its centre, all in heatmap cells.
Decoding keeps the 3x3 local maxima of the heatmap, takes the top 100, and makes each a box centred at
(cell + offset) with the regressed size; no NMS.

Two checkpoints: "centernet-r18" (plain 3x3 convs in the neck, box AP 25.9) and "centernet-r18-dcn" (modulated
deformable convs, DCNv2, in the neck, box AP 29.5). mmcv's DCNv2 layer predicts 27 channels per position and splits
them into o1, o2, mask; it feeds cat(o1, o2) as the offsets (dy, dx interleaved per kernel tap) and sigmoid(mask) to
the deformable convolution, which is exactly torchvision.ops.deform_conv2d's layout (mmcv itself calls torchvision's
op for DCNv2 on MLU devices), so both run here without compiled extensions.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torchvision
from torch import nn

from . import keypoint_detection as kd
from . import weights
from .keypoint_detection import ConvModule, Detections, Geometry, Peaks

_SOURCE = "https://github.com/open-mmlab/mmdetection/tree/main/configs/centernet"
CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        weights.Checkpoint(
            name="centernet-r18", task=kd.TASK_ID,
            url=f"{kd.MMDET_DOWNLOADS}/centernet/centernet_resnet18_140e_coco/"
            "centernet_resnet18_140e_coco_20210705_093630-bb5b3bf7.pth",
            filename="centernet_resnet18_140e_coco_20210705_093630-bb5b3bf7.pth", sha256=None, bytes=None, license=kd.MMDET_LICENSE, source=_SOURCE,
            notes="mmdetection v2 checkpoint {'meta', 'state_dict'}; 168 tensors (~14.2M parameters, about 57 MB, "
            "unconfirmed). No full SHA-256 is published: the first download's hash is recorded, and its first "
            "8 hex digits must be bb5b3bf7 (the openmmlab file-name convention). Box AP 25.9 on COCO val2017",
        ),
        weights.Checkpoint(
            name="centernet-r18-dcn", task=kd.TASK_ID,
            url=f"{kd.MMDET_DOWNLOADS}/centernet/centernet_resnet18_dcnv2_140e_coco/"
            "centernet_resnet18_dcnv2_140e_coco_20210702_155131-c8cd631f.pth",
            filename="centernet_resnet18_dcnv2_140e_coco_20210702_155131-c8cd631f.pth", sha256=None, bytes=None, license=kd.MMDET_LICENSE, source=_SOURCE,
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
# The test pipeline's RandomCenterCropPad: test_pad_mode=['logical_or', 31], test_pad_add_pix=1 -> (size | 31) + 1.
PAD = ("logical_or", 31, 1)
TOP_K = 100  # test_cfg: topk=100, local_maximum_kernel=3, max_per_img=100
KERNEL = 3


# ----------------------------------------------------------------------------------------------------------------
# Architecture


class ModulatedDeformConv(nn.Module):
    """mmcv's ModulatedDeformConv2dPack (`DCNv2`) on torchvision's deform_conv2d.

    `conv_offset` predicts 3 * k * k channels; their thirds are o1, o2 and the mask logits. cat(o1, o2) is the offset
    tensor (tap t's dy at channel 2t, dx at 2t + 1: the layout both mmcv's kernel and torchvision read) and the
    sigmoid of the mask modulates each tap.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.conv_offset = nn.Conv2d(in_channels, 3 * kernel_size * kernel_size, kernel_size, padding=padding)
        nn.init.zeros_(self.conv_offset.weight)  # mmcv's init: start as a plain convolution
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o1, o2, mask = torch.chunk(self.conv_offset(x), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        return torchvision.ops.deform_conv2d(x, offset, self.weight, None, padding=self.padding,
                                             mask=torch.sigmoid(mask))


class ResNetBody(nn.Module):
    """torchvision's ResNet-18 without pooling head and classifier: mmdetection's ResNet(depth=18) has the same
    module names (conv1, bn1, layer1..4, downsample.0/1) and the same "pytorch" style (stride on the 3x3 conv)."""

    def __init__(self):
        super().__init__()
        resnet = torchvision.models.resnet18(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class CTResNetNeck(nn.Module):
    """Three times: 3x3 conv (or DCNv2) + BN + ReLU, then 4x4 stride-2 transposed conv + BN + ReLU (512 -> 64 ch)."""

    def __init__(self, in_channels: int = 512, filters=(256, 128, 64), use_dcn: bool = False):
        super().__init__()
        layers = []
        for channels in filters:
            conv = ModulatedDeformConv(in_channels, channels) if use_dcn else None
            layers.append(ConvModule(in_channels, channels, 3, padding=1, conv=conv))
            upsample = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False)
            layers.append(ConvModule(channels, channels, 4, conv=upsample))
            in_channels = channels
        self.deconv_layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv_layers(x)


def _head(in_channels: int, feat_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, feat_channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(feat_channels, out_channels, 1))


class CenterNetHead(nn.Module):
    def __init__(self, num_classes: int = 80, in_channels: int = 64, feat_channels: int = 64):
        super().__init__()
        self.heatmap_head = _head(in_channels, feat_channels, num_classes)
        self.wh_head = _head(in_channels, feat_channels, 2)
        self.offset_head = _head(in_channels, feat_channels, 2)
        self.heatmap_head[-1].bias.data.fill_(-2.19)  # mmdet's prior of 0.1: random weights give few false peaks

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.heatmap_head(x).sigmoid(), self.wh_head(x), self.offset_head(x)


class CenterNet(nn.Module):
    """Image (1, 3, H, W) with H, W multiples of 32 -> centre heatmap (sigmoid), wh and offset at H/4 x W/4."""

    def __init__(self, variant: Variant):
        super().__init__()
        self.variant = variant
        self.backbone = ResNetBody()
        self.neck = CTResNetNeck(use_dcn=variant.use_dcn)
        self.bbox_head = CenterNetHead()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.bbox_head(self.neck(self.backbone(x)))


# ----------------------------------------------------------------------------------------------------------------
# Building and loading


def build(name: str = DEFAULT_MODEL) -> CenterNet:
    """The architecture of checkpoint `name` with random weights."""
    try:
        return CenterNet(VARIANTS[name])
    except KeyError:
        raise ValueError(f"Unknown CenterNet variant {name!r}; known: {', '.join(VARIANTS)}") from None


def load(name: str = DEFAULT_MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> CenterNet:
    """The network with the official mmdetection weights (or a user's file in the same format), in eval mode,
    shared through runtime.MODELS."""
    return kd.cached_load("centernet", name, device, checkpoint_file, progress, build, _convert_state_dict)


def cache_key(name: str, device: torch.device, checkpoint_file: str | None = None) -> tuple:
    """The runtime.MODELS key under which `load` keeps this network (benchmarks put random weights there)."""
    return kd.cache_key("centernet", name, device, checkpoint_file)


def _convert_state_dict(name: str, state: dict) -> dict:
    """Quirks of the official files:
    - mmdetection wraps the weights: {"meta": ..., "state_dict": ...} (kd.unwrap_state_dict);
    - DCN variant only: mmcv's ModulatedDeformConv2dPack before its version 2 stored the offset conv as
      `<layer>.conv_offset.*` beside the layer (`neck.deconv_layers.0.conv_offset.weight`) rather than inside it
      (`neck.deconv_layers.0.conv.conv_offset.weight`); mmcv renames on load, so do we. The 2021 file should
      already use the new names.
    """
    state = kd.unwrap_state_dict(state)
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
    scores, positions, labels, rows, columns = kd.top_k(kd.local_maximum(heat, kernel), k)
    size = kd.gather(wh, positions)[0]
    shift = kd.gather(offset, positions)[0]
    cx, cy = columns[0] + shift[:, 0], rows[0] + shift[:, 1]
    x1, y1 = geometry.feature_to_image(cx - size[:, 0] / 2, cy - size[:, 1] / 2)
    x2, y2 = geometry.feature_to_image(cx + size[:, 0] / 2, cy + size[:, 1] / 2)
    centers = torch.stack(geometry.feature_to_image(cx, cy), dim=1)
    return {"boxes": torch.stack([x1, y1, x2, y2], dim=1), "scores": scores[0], "labels": labels[0],
            "centers": centers}


def predict(net: CenterNet, rgb: np.ndarray, score_threshold: float = 0.0, classes=None,
            working_size: int | None = kd.DEFAULT_WORKING_SIZE) -> Detections:
    """Objects in an RGB uint8 photo: boxes in its pixels (best first, at least `score_threshold`, of `classes`),
    with the centre heatmap and its top-100 peaks for the teaching views. `working_size` 0/None: the photo's size."""
    parameter = next(net.parameters())
    x, geometry = kd.preprocess(rgb, PAD, working_size or None, parameter.device, parameter.dtype)
    if parameter.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        heat, wh, offset = net(x)
        geometry = replace(geometry, feature_size=(heat.shape[3], heat.shape[2]))
        decoded = decode(heat[0], wh[0], offset[0], geometry)
    boxes, scores, labels, centers = (kd.numpy(decoded[key]) for key in ("boxes", "scores", "labels", "centers"))
    labels = labels.astype(np.int64)
    peaks = Peaks(centers, scores, labels)
    found = Detections(boxes, scores, labels, geometry, {"center": kd.numpy(heat[0])}, {"center": peaks},
                       centers=centers)
    return kd.select(found, score_threshold, classes)
