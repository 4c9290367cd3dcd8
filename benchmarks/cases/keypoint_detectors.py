"""CenterNet / CornerNet on a 640x480 photo at the tab's working size 512."""
from __future__ import annotations

from . import Case, forward_of, official_or_random, photo


def models() -> list[str]:
    return ["centernet-r18", "centernet-r18-dcn", "cornernet-hg104"]


def case(model_name: str) -> Case:
    from models import centernet, cornernet, images, mmdet, runtime
    from models.tabs import keypoint_detectors as tab

    family = centernet if model_name.startswith("centernet") else cornernet
    device = runtime.device()
    net, source = official_or_random(lambda: family.load(model_name, device), lambda: family.build(model_name),
                                     family.cache_key(model_name, device))
    rgb = photo(640, 480)
    tensor = mmdet.preprocess(rgb, family.PAD, 512, device, next(net.parameters()).dtype)[0]
    loaded = images.load(rgb)
    return Case(net, source, (640, 480), forward_of(net, tensor), lambda: family.predict(net, rgb, 0.3, None, 512),
                lambda: tab.TASK.run(loaded, model=model_name))
