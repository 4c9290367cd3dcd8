"""The Panoptic segmentation tab: Mask2Former (COCO panoptic) labels every pixel; stuff and things shown apart and
merged, with a legend and a downloadable segment map (mask2former.py, mask2former_views.py)."""
from __future__ import annotations

import numpy as np

from .. import mask2former, runtime
from ..images import LoadedImage
from ..mask2former_views import over_photo, panoptic_views
from ..tasks import Option, Task, TaskOutput

TASK_ID = "panoptic"


def run(loaded: LoadedImage, model: str = mask2former.DEFAULT_MODEL, checkpoint: str | None = None, progress=None,
        **options) -> TaskOutput:
    options = {**TASK.parse_options([]), **options}
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = mask2former.load(model, device, checkpoint, progress)
    with runtime.stopwatch(device) as model_time:
        result = mask2former.predict(net, loaded.rgb, options["threshold"], options["mask_threshold"],
                                     options["overlap_threshold"], options["working_size"])
    with runtime.stopwatch() as draw_time:
        views = panoptic_views(result.segmentation, result.segments, net.id2label, net.thing_ids)
        opacity, seg = options["opacity"], result.segmentation
        stuff_rows = [row for row in views.legend if row["kind"] == "stuff"]
        thing_rows = [row for row in views.legend if row["kind"] == "thing"]
        labels = options["show_labels"]
        images = {
            "panoptic": over_photo(loaded.rgb, views.merged, views.stuff_mask | views.things_mask, opacity, seg,
                                   views.legend if labels else None),
            "stuff": over_photo(loaded.rgb, views.stuff, views.stuff_mask, opacity, seg,
                                stuff_rows if labels else None),
            "things": over_photo(loaded.rgb, views.things, views.things_mask, opacity, seg,
                                 thing_rows if labels else None),
            "segments": views.merged,
            "labels": seg.astype(np.uint8 if seg.max(initial=0) <= 255 else np.uint16),  # one channel, for download
        }
    w, h = loaded.size
    record = {
        "task": TASK_ID, "model": model, "checkpoint": checkpoint or net.source, "device": runtime.describe(device),
        "input_size": list(loaded.original_size), "size": [w, h], "working_size": list(result.working_size),
        "segments": views.legend, "segment_count": len(views.legend),
        "things": len(thing_rows), "stuff": len(stuff_rows), "void_pct": views.void_pct,
        "label_image": f"{images['labels'].dtype} ids: 0 = void, n = segment n", "notes": loaded.notes,
        "ms": {"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1),
               "draw": round(draw_time["ms"], 1)},
    }
    summary = (f"{model} on {record['device']}: {len(thing_rows)} things, {len(stuff_rows)} stuff segments in "
               f"{w}x{h} (network at {result.working_size[0]}x{result.working_size[1]}), {model_time['ms']:.0f} ms")
    return TaskOutput(images, record, summary)


TASK = Task(
    id=TASK_ID,
    title="Panoptic segmentation",
    models=tuple(mask2former.CHECKPOINTS),
    default_model=mask2former.DEFAULT_MODEL,
    options=(
        Option("threshold", mask2former.DEFAULT_THRESHOLD, "class probability a predicted mask needs to become a "
               "segment", minimum=0.0, maximum=1.0, label="Label-mask threshold"),
        Option("mask_threshold", 0.5, "a pixel belongs to a mask above this probability", minimum=0.0, maximum=0.99,
               label="Mask threshold", step=0.01),
        Option("overlap_threshold", mask2former.DEFAULT_OVERLAP, "a segment must keep more than this fraction of its "
               "mask after overlaps are resolved (removes fragments)", minimum=0.0, maximum=1.0,
               label="Overlap threshold"),
        Option("opacity", 0.6, "colour opacity over the photo", minimum=0.0, maximum=1.0, step=0.05),
        Option("show_labels", True, "write each segment's label on it", label="Write labels on segments"),
        Option("working_size", 0, "longest side the network sees in px, aspect kept (0: the checkpoint's own "
               "384 x 384)", minimum=0, maximum=1333, label="Working size (0 = the checkpoint's 384x384)", step=32),
    ),
    max_side=1333,
    run=run,
    preload=lambda model: mask2former.load(model),
)
