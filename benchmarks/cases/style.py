"""Fast style and AdaIN on a 512x512 photo; Gatys: one optimisation step at 256 px (its per-step cost)."""
from __future__ import annotations

from . import Case, official_or_random, photo


def models() -> list[str]:
    return ["mosaic", "adain", "gatys"]


def case(model_name: str) -> Case:
    from models import adain, fast_style, gatys, images, runtime, style_images
    from models.adain_arch import adain_decoder, adain_encoder
    from models.fast_style_arch import TransformerNet
    from models.tabs import style as tab

    device = runtime.device()
    if model_name == "gatys":
        net, source = official_or_random(lambda: gatys.load(device), gatys.gatys_vgg,
                                         runtime.model_key("gatys", "vgg19", device))
    elif model_name == "adain":
        net, source = official_or_random(lambda: adain.load(device),
                                         lambda: adain.AdaIN(adain_encoder(full=False), adain_decoder()),
                                         runtime.model_key("adain", "adain", device))
    else:
        net, source = official_or_random(lambda: fast_style.load(model_name, device), TransformerNet,
                                         runtime.model_key("fast_style", model_name, device))
    style = style_images.builtin_style("stained-glass", 512)
    if model_name == "gatys":
        content = photo(256, 256)

        def one_step():
            for _ in gatys.gatys_steps(content, style, net, steps=1, every=1, max_side=256, optimizer="adam"):
                pass

        return Case(net, source, (256, 256), None, one_step, None)
    rgb = photo(512, 512)
    loaded = images.load(rgb)
    predict = (lambda: adain.stylize_adain(net, rgb, style)) if model_name == "adain" else (
        lambda: fast_style.stylize_fast(net, rgb))
    return Case(net, source, (512, 512), None, predict, lambda: tab.run(loaded, model_name, max_side=512))
