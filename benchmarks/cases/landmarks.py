"""Keypoint R-CNN on a 640x480 photo; FAN on one face crop (256x256), which is the per-face cost."""
from __future__ import annotations

import numpy as np

from . import RANDOM, Case, forward_of, official_or_random, photo


def models() -> list[str]:
    return ["keypointrcnn-resnet50-fpn", "2dfan4"]


def case(model_name: str) -> Case:
    import torch

    from models import fan, heatmaps, images, keypointrcnn, runtime
    from models.tabs import landmarks as tab

    device = runtime.device()
    family = keypointrcnn if model_name == keypointrcnn.MODEL else fan
    net, source = official_or_random(lambda: family.load(model_name, device), family.build,
                                     family.cache_key(model_name, device))
    dtype = next(net.parameters()).dtype
    if family is keypointrcnn:
        if source == RANDOM:
            net.roi_heads.detections_per_img = 5  # random heads keep 100 "people"; a photo has a few
        rgb = photo(640, 480)
        tensor = [torch.from_numpy(rgb.copy()).permute(2, 0, 1).to(device, dtype) / 255]
        loaded = images.load(rgb)
        return Case(net, source, (640, 480), forward_of(net, tensor), lambda: keypointrcnn.predict(net, rgb, 0.05),
                    lambda: tab.run(loaded, model_name, person_threshold=0.05))
    crop = torch.rand(1, 3, heatmaps.CROP_SIZE, heatmaps.CROP_SIZE, device=device, dtype=dtype)
    face = photo(256, 256)
    box = np.array([[48.0, 40.0, 208.0, 220.0]], np.float32)
    return Case(net, source, (256, 256), forward_of(net, crop), lambda: fan.predict(net, face, box), None)
