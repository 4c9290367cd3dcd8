"""Images in and out of the style networks: RGB uint8 <-> 1 x 3 x H x W tensors in [0, scale], and the padding and
size rules the networks' pooling imposes. Shared by fast neural style, AdaIN and Gatys."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def to_tensor(rgb: np.ndarray, device: torch.device, dtype: torch.dtype, scale: float) -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H x W in [0, scale]."""
    if not rgb.flags.writeable:  # e.g. a cached built-in style: torch wants memory it may write
        rgb = rgb.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
    return tensor.to(device=device, dtype=dtype).mul_(scale / 255.0).contiguous()


def to_uint8(tensor: torch.Tensor, scale: float) -> np.ndarray:
    """1 x 3 x H x W in [0, scale] -> H x W x 3 uint8 (clamped; NaN becomes 0)."""
    image = torch.nan_to_num(tensor[0].float(), 0.0).mul(255.0 / scale).clamp_(0, 255).round_()
    return image.byte().permute(1, 2, 0).cpu().numpy()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad bottom/right so H and W divide by `multiple`: the network's output then crops back exactly."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="reflect")


def first_parameter(net: nn.Module) -> torch.Tensor:
    """Any parameter of `net`: its device and dtype are the ones inputs must have."""
    return next(net.parameters())


def check_min_side(rgb: np.ndarray, minimum: int, method: str, what: str = "image") -> None:
    """Refuse an image too small for `method`'s pooling to leave a few feature pixels."""
    if min(rgb.shape[:2]) < minimum:
        raise ValueError(f"The {what} is {rgb.shape[1]}x{rgb.shape[0]} at the working size; {method} needs at least "
                         f"{minimum} px a side. Use a bigger image or working size.")
