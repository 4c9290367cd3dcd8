"""CenterNet / CornerNet on a 640x480 photo at the tab's working size 512."""
from __future__ import annotations

from . import Case, forward_of, official_or_random, photo


def models() -> list[str]:
    return ["centernet-r18", "centernet-r18-dcn", "cornernet-hg104", "centerface"]


def case(model_name: str) -> Case:
    from models import centernet, cornernet, images, mmdet, runtime
    from models.tabs import keypoint_detectors as tab

    if model_name == "centerface":
        return centerface_case()
    family = centernet if model_name.startswith("centernet") else cornernet
    device = runtime.device()
    net, source = official_or_random(lambda: family.load(model_name, device), lambda: family.build(model_name),
                                     family.cache_key(model_name, device))
    rgb = photo(640, 480)
    tensor = mmdet.preprocess(rgb, family.PAD, 512, device, next(net.parameters()).dtype)[0]
    loaded = images.load(rgb)
    return Case(net, source, (640, 480), forward_of(net, tensor), lambda: family.predict(net, rgb, 0.3, None, 512),
                lambda: tab.TASK.run(loaded, model=model_name))


def centerface_case() -> Case:
    """CenterFace (real weights where ../shared or the cache has them) on a 640x480 frame at working size 512."""
    from models import centerface, images, runtime
    from models.tabs import keypoint_detectors as tab

    device = runtime.device()
    net = centerface.load(device)
    rgb = photo(640, 480)
    tensor = centerface.preprocess(rgb, device, next(net.parameters()).dtype)
    loaded = images.load(rgb)
    return Case(net, "official", (640, 480), forward_of(net, tensor),
                lambda: centerface.predict(net, rgb, 0.3, centerface.NMS_IOU, 512),
                lambda: tab.TASK.run(loaded, model="centerface"))
