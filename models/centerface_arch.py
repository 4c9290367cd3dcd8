"""CenterFace's network (Xu et al. 2019, "CenterFace: Joint Face Detection and Alignment Using Face as Point"),
re-stated from the graph of the official `centerface_bnmerged.onnx`, and the conversion of that file's weights.

The graph (ONNX opset 9, exported by PyTorch 1.2): 60 Conv, 42 Relu, 13 Add, 3 ConvTranspose, 3 BatchNormalization,
1 Sigmoid. In words:
- backbone: MobileNetV2 (`features.0` to `features.17`, width 1.0, the 1280-channel last conv left out) with plain
  ReLU, not ReLU6, and every BatchNorm folded into the conv before it (so every conv has a bias);
- neck: an FPN-like top-down path at 24 channels. A 1x1 lateral conv + ReLU on each of the stride 4, 8, 16 and 32
  features; from the top, three times: ConvTranspose 2x2 stride 2 (no bias) + BatchNorm (eps 1e-3, kept, not folded)
  + ReLU, added to the next finer lateral;
- head at stride 4: 3x3 conv + ReLU, then four 1x1 convs: heatmap (1, sigmoid), scale (2, log of height and width
  / 4), offset (2, y and x), landmarks (10: y, x of five points, relative to the box).

The ONNX file names only the initializers that were not folded (`neck.deconv_layers.*`, `head.*_conv.*`); the folded
ones got exporter numbers ("542"). `state_dict_from_onnx` therefore walks the graph's weight-carrying nodes in order,
beside this module's layers in execution order, checks each pair (operator, kernel, stride, padding, groups, shapes,
and the name where the file has one), and only then copies the tensors.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from torch import nn

from . import weights

CHANNELS = 24  # the neck's and head's width
STRIDE = 4  # output stride of every map
# MobileNetV2's stages: (expansion, output channels, blocks, stride of the first block)
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_TAPS = (3, 6, 13, 17)  # the blocks whose outputs feed the neck: strides 4, 8, 16, 32 (24, 32, 96, 320 channels)
_GRAPH_OPS = Counter(Conv=60, Relu=42, Add=13, ConvTranspose=3, BatchNormalization=3, Sigmoid=1)


def _conv(in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A conv with its BatchNorm folded in: bias on, "same" padding for odd kernels."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=True)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand + ReLU (absent when expansion is 1), 3x3 depthwise + ReLU, 1x1 project;
    the input is added back when the shape is unchanged."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_ch * expansion
        expand = [_conv(in_ch, hidden), nn.ReLU(inplace=True)] if expansion != 1 else []
        self.conv = nn.Sequential(*expand, _conv(hidden, hidden, 3, stride, groups=hidden), nn.ReLU(inplace=True),
                                  _conv(hidden, out_ch))
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """The backbone up to block 17; `forward` returns the outputs of the blocks in `_TAPS`, finest first."""

    def __init__(self):
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(_conv(3, 32, 3, 2), nn.ReLU(inplace=True))]
        in_ch = 32
        for expansion, out_ch, count, stride in _MOBILENET_V2:
            for index in range(count):
                blocks.append(InvertedResidual(in_ch, out_ch, stride if index == 0 else 1, expansion))
                in_ch = out_ch
        self.features = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, block in enumerate(self.features):
            x = block(x)
            if index in _TAPS:
                taps.append(x)
        return taps


class Lateral(nn.Module):
    """1x1 conv (BatchNorm folded) + ReLU: brings one backbone level to the neck's width."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.conv = _conv(in_ch, CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class Upsample(nn.Module):
    """ConvTranspose 2x2 stride 2 (exactly doubles H and W) + BatchNorm + ReLU; this BatchNorm is not folded."""

    def __init__(self):
        super().__init__()
        self.conv = nn.ConvTranspose2d(CHANNELS, CHANNELS, 2, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(CHANNELS, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Neck(nn.Module):
    """Top-down path: index 0 is the finest level (stride 4), 3 the coarsest (stride 32)."""

    def __init__(self, in_channels: tuple[int, ...] = (24, 32, 96, 320)):
        super().__init__()
        self.lateral_layers = nn.ModuleList(Lateral(c) for c in in_channels)
        self.deconv_layers = nn.ModuleList(Upsample() for _ in in_channels[1:])

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral_layers[-1](taps[-1])
        for level in reversed(range(len(self.deconv_layers))):
            x = self.deconv_layers[level](x) + self.lateral_layers[level](taps[level])
        return x

    def graph_order(self) -> list[str]:
        """Module names in the order the exported graph runs them (the top lateral first, then per level)."""
        names = ["lateral_layers.3.conv"]
        for level in (2, 1, 0):
            names += [f"deconv_layers.{level}.conv", f"deconv_layers.{level}.bn", f"lateral_layers.{level}.conv"]
        return names


class Head(nn.Module):
    """3x3 conv + ReLU shared by four 1x1 predictors."""

    def __init__(self):
        super().__init__()
        self.feat_conv = _conv(CHANNELS, CHANNELS, 3)
        self.pos_conv = _conv(CHANNELS, 1)  # face centre heatmap (logits; sigmoid in forward)
        self.reg_conv = _conv(CHANNELS, 2)  # log(height / 4), log(width / 4)
        self.off_conv = _conv(CHANNELS, 2)  # sub-cell offset of the centre: y, x
        self.lm_conv = _conv(CHANNELS, 10)  # landmarks: (y, x) of five points, in units of the box size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = torch.relu(self.feat_conv(x))
        return torch.sigmoid(self.pos_conv(x)), self.reg_conv(x), self.off_conv(x), self.lm_conv(x)


class CenterFaceNet(nn.Module):
    """Image (B, 3, H, W), RGB 0-255, H and W multiples of 32 -> heatmap (B, 1, H/4, W/4), scale (B, 2, ...),
    offset (B, 2, ...), landmarks (B, 10, ...): the four outputs of the ONNX file ("537" to "540"), in its order."""

    def __init__(self):
        super().__init__()
        self.backbone = MobileNetV2()
        self.neck = Neck()
        self.head = Head()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head(self.neck(self.backbone(x)))

    def graph_order(self) -> list[str]:
        """Names of the conv, transposed-conv and BatchNorm modules in the order of the ONNX graph's nodes."""
        backbone = [f"backbone.{name}" for name, module in self.backbone.named_modules() if isinstance(module, nn.Conv2d)]
        head = [f"head.{name}" for name in ("feat_conv", "pos_conv", "reg_conv", "off_conv", "lm_conv")]
        return backbone + [f"neck.{name}" for name in self.neck.graph_order()] + head


# ----------------------------------------------------------------------------------------------------------------
# The ONNX file's weights as this module's state dict

_PARAMETERS = {
    "Conv": ("weight", "bias"),
    "ConvTranspose": ("weight",),
    "BatchNormalization": ("weight", "bias", "running_mean", "running_var"),
}
_MODULE_TYPES = {"Conv": nn.Conv2d, "ConvTranspose": nn.ConvTranspose2d, "BatchNormalization": nn.BatchNorm2d}


def state_dict_from_onnx(path: Path | str) -> dict[str, torch.Tensor]:
    """Read `centerface_bnmerged.onnx` and return the state dict of `CenterFaceNet` (float32, CPU tensors).

    Raises WeightsError, saying what differs, when the file is not ONNX or its graph is not this network's.
    """
    import onnx  # only needed once per file: the result is cached as a plain state dict
    from onnx import numpy_helper

    path = Path(path)
    try:
        graph = onnx.load(str(path)).graph
    except Exception as error:  # protobuf raises DecodeError, onnx its own errors; all mean "not an ONNX model"
        raise weights.WeightsError(f"{path.name} cannot be read as an ONNX model ({type(error).__name__}).") from None
    ops = Counter(node.op_type for node in graph.node)
    if ops != _GRAPH_OPS:
        raise weights.WeightsError(
            f"{path.name} is not CenterFace's graph: it has operators {dict(ops)}, expected {dict(_GRAPH_OPS)}.")
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    net = CenterFaceNet()
    modules = dict(net.named_modules())
    nodes = [node for node in graph.node if node.op_type in _PARAMETERS]
    state = {}
    for node, name in zip(nodes, net.graph_order(), strict=True):
        _check_node(node, name, modules[name], initializers, path.name)
        for field, tensor_name in zip(_PARAMETERS[node.op_type], node.input[1:]):
            state[f"{name}.{field}"] = torch.from_numpy(numpy_helper.to_array(initializers[tensor_name]).copy())
    for name, module in modules.items():
        if isinstance(module, nn.BatchNorm2d):  # a statistic of training; carried over so the state dict is complete
            tracked = initializers.get(f"{name}.num_batches_tracked")
            value = numpy_helper.to_array(tracked).copy() if tracked is not None else 0
            state[f"{name}.num_batches_tracked"] = torch.as_tensor(value, dtype=torch.long)
    weights.strict_load(net, state, "CenterFace", "the graph of centerface_bnmerged.onnx")
    return net.state_dict()


def _check_node(node, name: str, module: nn.Module, initializers: dict, file_name: str) -> None:
    """Refuse a node whose operator, attributes, weight names or shapes differ from the module it will fill."""
    import onnx

    def refuse(what: str):
        raise weights.WeightsError(f"{file_name} is not CenterFace's graph: node {node.op_type} for {name}: {what}.")

    if not isinstance(module, _MODULE_TYPES[node.op_type]):
        refuse(f"expected a {type(module).__name__}")
    attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
    if isinstance(module, nn.BatchNorm2d):
        # ONNX stores epsilon as float32 (1e-3 reads back as 0.0010000000474974513)
        expected = {"epsilon": round(module.eps, 7)}
        actual = {"epsilon": round(attributes.get("epsilon", 1e-5), 7)}
    else:
        expected = {"kernel_shape": list(module.kernel_size), "strides": list(module.stride),
                    "pads": list(module.padding) * 2, "group": module.groups, "dilations": list(module.dilation)}
        actual = {key: attributes.get(key, default) for key, default in
                  (("kernel_shape", None), ("strides", [1, 1]), ("pads", [0, 0, 0, 0]), ("group", 1),
                   ("dilations", [1, 1]))}
        if attributes.get("output_padding", [0, 0]) != [0, 0]:
            refuse(f"output_padding {attributes['output_padding']}")
    if actual != expected:
        refuse(f"attributes {actual}, expected {expected}")
    fields = _PARAMETERS[node.op_type]
    if len(node.input) - 1 != len(fields):
        refuse(f"{len(node.input) - 1} weight inputs, expected {len(fields)}")
    for field, tensor_name in zip(fields, node.input[1:]):
        key = f"{name}.{field}"
        if tensor_name not in initializers:
            refuse(f"input {tensor_name} is not a stored weight")
        if not tensor_name.isdigit() and tensor_name != key:  # a name from the training code must be ours
            refuse(f"weight named {tensor_name}, expected {key}")
        shape = list(initializers[tensor_name].dims)
        if shape != list(getattr(module, field).shape):
            refuse(f"{field} of shape {shape}, expected {list(getattr(module, field).shape)}")
