"""The instance segmentation tab: Mask R-CNN (two-stage, RPN proposals) or YOLACT (one stage, masks from prototypes).

Both give the same overlay, label image and instance table (models/instances.py); the "how it works" picture is the
RPN's proposals for Mask R-CNN and each detection's prior box for YOLACT, which also shows its prototypes, the chosen
detection's coefficients and that detection's mask assembled step by step.
"""
from __future__ import annotations

from .. import instances, maskrcnn, runtime, yolact, yolact_views
from ..images import LoadedImage
from ..tasks import Option, Task, TaskOutput

ID = "instance"


def run(loaded: LoadedImage, model: str = maskrcnn.DEFAULT_MODEL, checkpoint: str | None = None, progress=None,
        **options) -> TaskOutput:
    """The tab's pipeline: detect, then draw the overlay, the boxes before the box head and the label image.
    Options that only one family uses are accepted and ignored by the other (YOLACT always works at 550 x 550)."""
    options = {**TASK.parse_options([]), **options}
    allowed = instances.expand_classes(options["classes"])
    device = runtime.device()
    family = yolact if model in yolact.MODELS else maskrcnn
    with runtime.stopwatch(device) as load_time:
        net = family.load(model, device, checkpoint, progress)
    with runtime.stopwatch(device) as model_time:
        if family is yolact:
            result = yolact.predict(net, loaded.rgb, options["score_threshold"], allowed, options["mask_threshold"])
            found = result.instances
        else:
            found = maskrcnn.predict(net, loaded.rgb, options["score_threshold"], options["mask_threshold"], allowed,
                                     options["working_size"], options["proposals"], options["rpn_top_n"])
    with runtime.stopwatch() as draw_time:
        images = {
            "overlay": instances.overlay(loaded.rgb, found, options["opacity"], options["show_boxes"],
                                         options["show_labels"]),
            "proposals": instances.proposals_view(loaded.rgb, found),  # RPN proposals or YOLACT's prior boxes
            "labels": instances.label_image(found),  # one channel: instance ids for download, not for display
        }
        if family is yolact:
            chosen, views = _prototype_views(loaded, result, options["detection"])
            images.update(views)
    w, h = loaded.size
    record = {
        "task": ID, "model": model, "checkpoint": checkpoint or family.MODELS[model].checkpoint,
        "device": runtime.describe(device), "input_size": list(loaded.original_size), "size": [w, h],
        "working_size": list(found.working_size), "classes": sorted(allowed) if allowed else "all",
        "instances": instances.instance_table(found), "instance_count": len(found),
    }
    if family is maskrcnn:
        record["proposals_shown"] = len(found.proposals)
    record.update({"label_image": f"{images['labels'].dtype} ids: 0 = background, n = row n of instances",
                   "notes": loaded.notes})
    if family is yolact:
        record.update({
            "prototypes": {"count": int(result.prototypes.shape[0]), "size": list(result.prototypes.shape[1:])},
            "coefficients": [[round(float(v), 4) for v in row] for row in result.coefficients],
            "detection": None if chosen is None else chosen + 1,
        })
    record["ms"] = {"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1),
                    "draw": round(draw_time["ms"], 1)}
    found_text = f"{len(found)} instance{'s' if len(found) != 1 else ''}" if len(found) else "nothing found"
    if family is yolact:
        size = net.config.input_size
        network = f"network at {size}x{size}, {result.prototypes.shape[0]} prototypes"
    else:
        record["working_size_choice"] = _size_choice(options["working_size"], device.type != "cpu")
        network = f"network at {found.working_size[0]}x{found.working_size[1]}, {record['working_size_choice']}"
    summary = f"{model} on {record['device']}: {found_text} in {w}x{h} ({network}), {model_time['ms']:.0f} ms"
    return TaskOutput(images, record, summary)


def _size_choice(working_size: int, on_gpu: bool) -> str:
    """Which working size this was, for the result line: torchvision's official test size, or the CPU compromise."""
    if working_size >= maskrcnn.OFFICIAL_WORKING_SIZE:
        return "torchvision's official test size (shorter side 800, longer at most 1333)"
    if not on_gpu and working_size == TASK.option("working_size").cpu_default:
        return f"reduced for a CPU ({maskrcnn.OFFICIAL_WORKING_SIZE} on a GPU, torchvision's official test size)"
    return f"reduced (torchvision's official test size is {maskrcnn.OFFICIAL_WORKING_SIZE})"


def _prototype_views(loaded: LoadedImage, result: yolact.YolactResult, detection: int) -> tuple[int | None, dict]:
    """YOLACT's pictures: the prototype grid, the chosen detection's coefficients as a chart and its mask assembled
    step by step (`detection` counts from 1 and is clamped to what was found). Returns (chosen index, images)."""
    chosen = min(max(int(detection), 1), len(result)) - 1 if len(result) else None
    coefficients = result.coefficients[chosen] if chosen is not None else None
    return chosen, {
        "prototypes": yolact_views.prototype_grid(result.prototypes, coefficients),
        "assembly": (yolact_views.assembly_view(loaded.rgb, result, chosen) if chosen is not None
                     else yolact_views.message_image("Nothing detected: no mask to assemble")),
        "coefficients": (yolact_views.coefficient_chart(coefficients) if coefficients is not None
                         else yolact_views.message_image("Nothing detected: no coefficients")),
    }


def _preload(model: str) -> None:
    (yolact if model in yolact.MODELS else maskrcnn).load(model)


TASK = Task(
    id=ID,
    title="Instance segmentation",
    models=tuple(maskrcnn.MODELS) + tuple(yolact.MODELS),
    default_model=maskrcnn.DEFAULT_MODEL,
    options=(
        Option("score_threshold", 0.5, "instances scoring at or below this are dropped", minimum=0.0, maximum=1.0,
               step=0.01),
        Option("mask_threshold", 0.5, "a pixel belongs to a mask where the mask probability is above this",
               minimum=0.0, maximum=0.99, step=0.01),
        Option("classes", "", "comma-separated COCO names or the groups people, vehicles, animals (empty: all)",
               label="Only these classes (empty: all)"),
        Option("opacity", 0.5, "mask opacity", minimum=0.0, maximum=1.0, label="Mask opacity", step=0.05),
        Option("show_boxes", True, "draw each instance's box", label="Boxes"),
        Option("show_labels", True, "write class and score on each box", label="Labels"),
        Option("working_size", maskrcnn.OFFICIAL_WORKING_SIZE, "longest side the network sees in px: smaller is "
               f"faster (default {maskrcnn.OFFICIAL_WORKING_SIZE}, torchvision's official test size, on a GPU; "
               f"{maskrcnn.CPU_WORKING_SIZE} on a CPU)", minimum=320, maximum=maskrcnn.OFFICIAL_WORKING_SIZE,
               label="Working size (longest side the network sees)", step=1, cpu_default=maskrcnn.CPU_WORKING_SIZE),
        Option("proposals", maskrcnn.DEFAULT_PROPOSALS, "how many RPN proposals the \"how it works\" view shows",
               minimum=0, maximum=1000, label="RPN proposals to show", step=10),
        Option("rpn_top_n", maskrcnn.DEFAULT_RPN_TOP_N, "proposals the box head examines (fewer is faster on a CPU; "
               "torchvision uses 1000)", minimum=50, maximum=2000, label="Proposals the box head examines", step=50),
        Option("detection", 1, "YOLACT: which detection (row of the table) the prototype view assembles",
               minimum=1, maximum=100, label="Detection to assemble (row of the table)"),
    ),
    max_side=1333,
    run=run,
    preload=_preload,
)
