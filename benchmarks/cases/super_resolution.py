"""Super-resolution: every model on a 128x128 input (x4 or x2 upscaled)."""
from __future__ import annotations

from . import Case, forward_of, official_or_random, photo


def models() -> list[str]:
    from models import sr

    return list(sr.MODELS)


def case(model_name: str, size: int = 128) -> Case:
    import torch

    from models import images, runtime, sr
    from models.tabs import super_resolution as tab

    spec, device = sr.MODELS[model_name], runtime.device()
    rgb = photo(size, size)
    net, source, forward = None, "none", None
    if spec.arch != "bicubic":
        net, source = official_or_random(lambda: sr.load(model_name, device), lambda: sr.build(model_name),
                                         sr.cache_key(model_name, device))
        tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].to(device, next(net.parameters()).dtype) / 255
        forward = forward_of(net, tensor)
    loaded = images.load(rgb)
    return Case(net, source, (size, size), forward, lambda: sr.predict(net, rgb, spec.scale, tile=spec.default_tile),
                lambda: tab.run(loaded, model_name))
