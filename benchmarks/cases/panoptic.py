"""Mask2Former on an 800x600 photo (the processor resizes to the checkpoint's 384x384)."""
from __future__ import annotations

from . import RANDOM, Case, photo


def models() -> list[str]:
    return ["mask2former-swin-tiny-coco-panoptic"]


def case(model_name: str) -> Case:
    import torch

    from models import images, mask2former, runtime
    from models.tabs import panoptic as tab

    device = runtime.device()
    try:
        model, source = mask2former.load(model_name, device), "official"
    except Exception:  # no copy here: a random network of the same architecture (same speed)
        from transformers import Mask2FormerForUniversalSegmentation

        net = Mask2FormerForUniversalSegmentation(mask2former.swin_tiny_config()).to(device)
        model, source = mask2former.wrap(net), RANDOM
        runtime.MODELS.get(mask2former.cache_key(model_name, device), lambda: model)
    rgb = photo(800, 600)
    inputs = model.processor(images=rgb.copy(), return_tensors="pt")

    def forward():
        with torch.inference_mode():
            return model.net(pixel_values=inputs["pixel_values"].to(device))

    loaded = images.load(rgb)
    return Case(model.net, source, (800, 600), forward, lambda: mask2former.predict(model, rgb),
                lambda: tab.run(loaded, model_name))
