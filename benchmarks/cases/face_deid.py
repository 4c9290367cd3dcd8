"""Face de-identification: each detector on a 640x480 frame, and the whole live-frame pipeline (detect + hide)."""
from __future__ import annotations

from . import RANDOM, Case, forward_of, official_or_random, photo


def models() -> list[str]:
    from models.tabs import face_deid

    return [model for model in face_deid.TASK.models if model.startswith("retinaface")]


def case(model_name: str, width: int = 640, height: int = 480) -> Case:
    from models import images, retinaface, runtime
    from models.tabs import face_deid

    device = runtime.device()
    net, source = official_or_random(lambda: retinaface.load(model_name, device),
                                     lambda: retinaface.build(model_name), retinaface.cache_key(model_name, device))
    rgb = photo(width, height)
    forward = forward_of(net, retinaface.preprocess(rgb, None, device, next(net.parameters()).dtype))
    if source == RANDOM:  # random heads "detect" thousands of faces: decoding and hiding them says nothing
        return Case(net, source, (width, height), forward, None, None)
    loaded = images.load(rgb)
    options = {**face_deid.TASK.defaults(), "show_detections": False, "verify": False}  # as a live frame runs it
    return Case(net, source, (width, height), forward, lambda: retinaface.predict(net, rgb),
                lambda: face_deid.TASK.run(loaded, model=model_name, **options))
