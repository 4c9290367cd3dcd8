"""Mask R-CNN and YOLACT on an 800x600 photo (the tab's default working size; YOLACT at its 550x550)."""
from __future__ import annotations

from . import RANDOM, Case, forward_of, official_or_random, photo


def models() -> list[str]:
    return ["maskrcnn-r50-fpn-v2", "maskrcnn-r50-fpn", "yolact-r101", "yolact-r50"]


def case(model_name: str) -> Case:
    import torch

    from models import images, maskrcnn, runtime, yolact
    from models.tabs import instance as tab

    device = runtime.device()
    rgb = photo(800, 600)
    loaded = images.load(rgb)
    run = lambda: tab.run(loaded, model_name, score_threshold=0.05)  # noqa: E731
    if model_name.startswith("yolact"):
        net, source = official_or_random(lambda: yolact.load(model_name, device), lambda: yolact.build(model_name),
                                         yolact.cache_key(model_name, device))
        tensor = yolact.preprocess(rgb, 550, device, next(net.parameters()).dtype)
        return Case(net, source, (800, 600), forward_of(net, tensor), lambda: yolact.predict(net, rgb, 0.05), run)
    net, source = official_or_random(lambda: maskrcnn.load(model_name, device), lambda: maskrcnn.build(model_name),
                                     maskrcnn.cache_key(model_name, device))
    if source == RANDOM:
        net.roi_heads.detections_per_img = 10  # random heads keep 100 "objects"; a photo has a few
    tensor = [torch.from_numpy(rgb.copy()).permute(2, 0, 1).to(device, next(net.parameters()).dtype) / 255]
    return Case(net, source, (800, 600), forward_of(net, tensor), lambda: maskrcnn.predict(net, rgb, 0.05), run)
