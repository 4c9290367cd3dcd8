"""The CornerNet / CenterNet tab: objects as keypoints.

CornerNet (Law & Deng, ECCV 2018) finds a box as a pair of corners: one heatmap per class for top-left corners, one for
bottom-right corners, an embedding per corner that is close for the two corners of one object, and a sub-pixel
offset. CenterNet (Zhou et al., "Objects as Points", 2019) finds a box as its centre: one heatmap per class, plus the
box's width and height and an offset regressed at the centre. Neither needs anchors or (for CenterNet) NMS: a 3x3
max-pool keeps the local maxima of the heatmaps, and the top k maxima become boxes.

`run()` dispatches each model to its family (`models/centernet.py`, `models/cornernet.py`) and its views, and builds
the record. Importing this module registers every checkpoint the tab uses (`app.py download` relies on it).
"""
from __future__ import annotations

from types import ModuleType
from typing import NamedTuple

from .. import centernet, centernet_views, cornernet, cornernet_views, detections, runtime
from ..detections import COCO_CLASSES, class_index, expand_classes
from ..images import LoadedImage
from ..tasks import Option, Task, TaskOutput

TASK_ID = centernet.TASK_ID


class Family(NamedTuple):
    pipeline: ModuleType  # load(model, device, checkpoint, progress), predict(net, rgb, score, classes, size)
    views: ModuleType  # VIEWS (key, caption) and render(rgb, found, class_id, min_score)


CENTERNET = Family(centernet, centernet_views)
CORNERNET = Family(cornernet, cornernet_views)
# Which family implements each model of the tab, in the order the tab lists them.
FAMILIES = {"centernet-r18": CENTERNET, "centernet-r18-dcn": CENTERNET, "cornernet-hg104": CORNERNET}
DEFAULT_MODEL = "centernet-r18"
DEFAULT_WORKING_SIZE = centernet.DEFAULT_WORKING_SIZE


def family(model: str) -> Family:
    """The pipeline and views that implement `model`."""
    try:
        return FAMILIES[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(FAMILIES)}") from None


def views(model: str) -> tuple[tuple[str, str], ...]:
    """The images a run of `model` returns, in display order, with a caption for the UI."""
    return family(model).views.VIEWS


def run(loaded: LoadedImage, model: str = DEFAULT_MODEL, checkpoint: str | None = None, progress=None,
        **options) -> TaskOutput:
    options = {**TASK.parse_options([]), **options}
    chosen = family(model)
    allowed = expand_classes(options["classes"])
    class_id = class_index(options["heatmap_class"])
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = chosen.pipeline.load(model, device, checkpoint, progress)
    with runtime.stopwatch(device) as model_time:
        found = chosen.pipeline.predict(net, loaded.rgb, options["score_threshold"], allowed, options["working_size"])
    with runtime.stopwatch() as draw_time:
        images = chosen.views.render(loaded.rgb, found, class_id, options["score_threshold"])
    geometry = found.geometry
    record = {
        "task": TASK_ID, "model": model, "checkpoint": checkpoint or model, "device": runtime.describe(device),
        "input_size": list(loaded.original_size), "size": list(geometry.image_size),
        "working_size": list(geometry.working_size), "network_input": list(geometry.input_size),
        "heatmap_size": list(geometry.feature_size), "border_top_bottom_left_right": list(geometry.border),
        "classes": sorted(allowed) if allowed else "all", "heatmap_class": options["heatmap_class"],
        "detections": detections.table(found), "detection_count": len(found), "notes": loaded.notes,
        "ms": {"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1),
               "draw": round(draw_time["ms"], 1)},
    }
    found_text = f"{len(found)} object{'s' if len(found) != 1 else ''}" if len(found) else "nothing found"
    w, h = geometry.input_size
    summary = (f"{model} on {record['device']}: {found_text} (network input {w}x{h}, heatmaps "
               f"{geometry.feature_size[0]}x{geometry.feature_size[1]}), {model_time['ms']:.0f} ms")
    return TaskOutput(images, record, summary)


def _preload(model: str) -> None:
    family(model).pipeline.load(model)


TASK = Task(
    id=TASK_ID,
    title="CornerNet / CenterNet: objects as keypoints",
    models=tuple(FAMILIES),
    default_model=DEFAULT_MODEL,
    options=(
        Option("score_threshold", 0.3, "boxes (and heatmap peaks) scoring below this are not shown", minimum=0.0,
               maximum=1.0),
        Option("classes", "", "comma-separated COCO names or the groups people, vehicles, animals (empty: all)"),
        Option("working_size", DEFAULT_WORKING_SIZE, "longest side the network sees, px: larger photos are scaled "
               "down to it (0: the photo's own size, as mmdetection tests). CornerNet-Hourglass104 is slow on a "
               "CPU: several seconds at 512 on two cores; 256 is about 4x faster", minimum=0, maximum=2048, step=32),
        Option("heatmap_class", "all", "which class the heatmap views show (all: the maximum over the 80 classes)",
               choices=("all",) + COCO_CLASSES),
    ),
    max_side=2048,
    run=run,
    preload=_preload,
)
