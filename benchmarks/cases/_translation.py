"""What the Pix2Pix and CycleGAN cases share: a generator alone, at a given size."""
from __future__ import annotations

from . import Case, forward_of, official_or_random, photo


def case(family, tab, model_name: str, size: int, work: int, **run_options) -> Case:
    from models import images, runtime, translation

    device = runtime.device()
    net, source = official_or_random(lambda: family.load(model_name, device), family.build,
                                     runtime.model_key(family.__name__.rsplit(".", 1)[-1], model_name, device))
    rgb = photo(size, size)
    tensor = translation.to_tensor(rgb[:work, :work], device, next(net.parameters()).dtype)
    loaded = images.load(rgb)
    return Case(net, source, (size, size), forward_of(net, tensor), lambda: family.translate(net, rgb),
                lambda: tab.run(loaded, model_name, **run_options))
