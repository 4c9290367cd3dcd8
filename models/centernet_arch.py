"""CenterNet's networks in mmdetection's state-dict layout: ResNet-18, the CT-ResNet neck (plain or DCNv2), the head.

A ResNet-18 body (stride 32), the CT-ResNet neck (three stages of 3x3 conv + 4x4 transposed conv, each with BatchNorm
and ReLU, back up to stride 4 with 64 channels), and three small heads at every stride-4 cell: an 80-class centre
heatmap (sigmoid), the box's width and height, and the sub-cell offset of its centre, all in heatmap cells.

mmcv's DCNv2 layer predicts 27 channels per position and splits them into o1, o2, mask; it feeds cat(o1, o2) as the
offsets (dy, dx interleaved per kernel tap) and sigmoid(mask) to the deformable convolution, which is exactly
torchvision.ops.deform_conv2d's layout (mmcv itself calls torchvision's op for DCNv2 on MLU devices), so both
variants run here without compiled extensions.
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from .mmdet import ConvModule


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

    def __init__(self, use_dcn: bool = False):
        super().__init__()
        self.backbone = ResNetBody()
        self.neck = CTResNetNeck(use_dcn=use_dcn)
        self.bbox_head = CenterNetHead()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.bbox_head(self.neck(self.backbone(x)))
