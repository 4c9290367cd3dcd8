"""The CornerNet / CenterNet tab: objects as keypoints.

CornerNet (Law & Deng, ECCV 2018) finds a box as a pair of corners: one heatmap per class for top-left corners, one for
bottom-right corners, an embedding per corner that is close for the two corners of one object, and a sub-pixel
offset. CenterNet (Zhou et al., "Objects as Points", 2019) finds a box as its centre: one heatmap per class, plus the
box's width and height and an offset regressed at the centre. Neither needs anchors or (for CenterNet) NMS: a 3x3
max-pool keeps the local maxima of the heatmaps, and the top k maxima become boxes.

CenterFace (Xu et al. 2019) is CenterNet's idea applied to faces, with a real checkpoint: one centre heatmap, the
box's log size, the sub-cell offset and five landmarks at every cell. Its views show each of those maps on the photo.

`run()` dispatches each model to its family (`models/centernet.py`, `models/cornernet.py`, `models/centerface.py`)
and its views, and builds the record. Importing this module registers every checkpoint the tab uses (`app.py
download` relies on it).
"""
from __future__ import annotations

from types import ModuleType
from typing import Callable, NamedTuple

from .. import (centerface, centerface_views, centernet, centernet_views, cornernet, cornernet_views, detections,
                runtime)
from ..detections import COCO_CLASSES, class_index, expand_classes
from ..images import LoadedImage
from ..tasks import Option, Task, TaskOutput

TASK_ID = centernet.TASK_ID
DEFAULT_MODEL = "centernet-r18"
DEFAULT_WORKING_SIZE = centernet.DEFAULT_WORKING_SIZE


def run_objects(family: Family, loaded: LoadedImage, model: str, checkpoint: str | None, progress,
                options: dict) -> TaskOutput:
    """CenterNet or CornerNet: COCO objects, the class filter and the heatmap of one class or all."""
    allowed = expand_classes(options["classes"])
    class_id = class_index(options["heatmap_class"])
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = family.pipeline.load(model, device, checkpoint, progress)
    with runtime.stopwatch(device) as model_time:
        found = family.pipeline.predict(net, loaded.rgb, options["score_threshold"], allowed, options["working_size"])
    with runtime.stopwatch() as draw_time:
        images = family.views.render(loaded.rgb, found, class_id, options["score_threshold"])
    geometry = found.geometry
    record = {
        **_record_head(loaded, model, checkpoint, device), "size": list(geometry.image_size),
        "working_size": list(geometry.working_size), "network_input": list(geometry.input_size),
        "heatmap_size": list(geometry.feature_size), "border_top_bottom_left_right": list(geometry.border),
        "classes": sorted(allowed) if allowed else "all", "heatmap_class": options["heatmap_class"],
        "detections": detections.table(found), "detection_count": len(found), "notes": loaded.notes,
        "ms": _milliseconds(load_time, model_time, draw_time),
    }
    found_text = f"{len(found)} object{'s' if len(found) != 1 else ''}" if len(found) else "nothing found"
    return TaskOutput(images, record, _summary(record, found_text, model_time))


def run_faces(family: Family, loaded: LoadedImage, model: str, checkpoint: str | None, progress,
              options: dict) -> TaskOutput:
    """CenterFace: faces with five landmarks; one class, so the COCO class options do not apply."""
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = centerface.load(device, checkpoint, progress)
    with runtime.stopwatch(device) as model_time:
        faces = centerface.predict(net, loaded.rgb, options["score_threshold"], centerface.NMS_IOU,
                                   options["working_size"] or None)
    with runtime.stopwatch() as draw_time:
        images = family.views.render(loaded.rgb, faces)
    maps = faces.maps
    record = {
        **_record_head(loaded, model, checkpoint, device), "size": list(faces.image_size),
        "working_size": list(centerface_views.working_size(faces)), "network_input": list(maps.input_size),
        "heatmap_size": [maps.heatmap.shape[1], maps.heatmap.shape[0]], "stride": maps.stride,
        "score_threshold": options["score_threshold"],
        "nms_iou": centerface.NMS_IOU, "ignored_options": list(family.ignores),
        "landmark_names": list(centerface_views.LANDMARK_NAMES),
        "detections": centerface_views.table(faces), "detection_count": len(faces), "notes": loaded.notes,
        "ms": _milliseconds(load_time, model_time, draw_time),
    }
    found_text = f"{len(faces)} face{'s' if len(faces) != 1 else ''}" if len(faces) else "no faces found"
    return TaskOutput(images, record, _summary(record, found_text, model_time))


def _record_head(loaded: LoadedImage, model: str, checkpoint: str | None, device) -> dict:
    return {"task": TASK_ID, "model": model, "checkpoint": checkpoint or model, "device": runtime.describe(device),
            "input_size": list(loaded.original_size)}


def _milliseconds(load_time: dict, model_time: dict, draw_time: dict) -> dict:
    return {"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1), "draw": round(draw_time["ms"], 1)}


def _summary(record: dict, found_text: str, model_time: dict) -> str:
    (w, h), (map_w, map_h) = record["network_input"], record["heatmap_size"]
    return (f"{record['model']} on {record['device']}: {found_text} (network input {w}x{h}, heatmaps "
            f"{map_w}x{map_h}), {model_time['ms']:.0f} ms")


class Family(NamedTuple):
    pipeline: ModuleType  # the family's module: its checkpoints, load and predict
    views: ModuleType  # VIEWS (key, caption) and render(...)
    run: Callable[..., TaskOutput]  # run(family, loaded, model, checkpoint, progress, options): one photo
    preload: Callable[[str], object]  # preload(model): fetch the weights and keep the network in the cache
    ignores: tuple[str, ...] = ()  # options that mean nothing to this family (the UI greys them out)


CENTERNET = Family(centernet, centernet_views, run_objects, centernet.load)
CORNERNET = Family(cornernet, cornernet_views, run_objects, cornernet.load)
CENTERFACE = Family(centerface, centerface_views, run_faces, lambda model: centerface.load(),
                    ignores=("classes", "heatmap_class"))  # one class: faces
# Which family implements each model of the tab, in the order the tab lists them.
FAMILIES = {"centernet-r18": CENTERNET, "centernet-r18-dcn": CENTERNET, "cornernet-hg104": CORNERNET,
            "centerface": CENTERFACE}


def family(model: str) -> Family:
    """The pipeline and views that implement `model`."""
    try:
        return FAMILIES[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(FAMILIES)}") from None


def ignored_options(model: str) -> tuple[str, ...]:
    """The options `model` does not use (CenterFace has no COCO classes)."""
    return family(model).ignores


def views(model: str) -> tuple[tuple[str, str], ...]:
    """The images a run of `model` returns, in display order, with a caption for the UI."""
    return family(model).views.VIEWS


def run(loaded: LoadedImage, model: str = DEFAULT_MODEL, checkpoint: str | None = None, progress=None,
        **options) -> TaskOutput:
    options = {**TASK.parse_options([]), **options}
    chosen = family(model)
    return chosen.run(chosen, loaded, model, checkpoint, progress, options)


def _preload(model: str) -> None:
    family(model).preload(model)


TASK = Task(
    id=TASK_ID,
    title="CornerNet / CenterNet: objects as keypoints",
    models=tuple(FAMILIES),
    default_model=DEFAULT_MODEL,
    options=(
        Option("score_threshold", 0.3, "boxes (and heatmap peaks) scoring below this are not shown", minimum=0.0,
               maximum=1.0, step=0.01),
        Option("classes", "", "comma-separated COCO names or the groups people, vehicles, animals (empty: all; "
               "CenterFace finds faces only and ignores it)", label="Only these classes (empty: all)"),
        Option("working_size", DEFAULT_WORKING_SIZE, "longest side the network sees, px: larger photos are scaled "
               "down to it (0: the photo's own size, as mmdetection tests). CornerNet-Hourglass104 is slow on a "
               "CPU: several seconds at 512 on two cores; 256 is about 4x faster", minimum=0, maximum=2048, step=32,
               label="Working size (0: the photo's own size)"),
        Option("heatmap_class", "all", "which class the heatmap views show (all: the maximum over the 80 classes; "
               "CenterFace has one class, faces)", choices=("all",) + COCO_CLASSES,
               label="Heatmap of class (all: maximum over the 80)"),
    ),
    max_side=2048,
    run=run,
    preload=_preload,
)
