"""The CycleGAN tab: a photo through an unpaired generator and, for a trained pair, back again: X -> Y -> X'.

`run()` is the tab's pipeline (the UI and `python app.py predict cyclegan`): scale to the working size, translate,
run the reverse model where one exists and show |X - X'|, report. The models are models/cyclegan.py.
"""
from __future__ import annotations

from .. import cyclegan, runtime, translation, video, weights
from ..images import LoadedImage
from ..tasks import Option, Task, TaskOutput

TASK_ID = cyclegan.TASK_ID
CPU_WORKING_SIDE = 512  # the generator runs at the input's size; a CPU takes seconds a frame beyond this


def run(loaded: LoadedImage, model: str = cyclegan.DEFAULT_MODEL, checkpoint: str | None = None,
        progress: weights.ProgressCallback | None = None, show_cycle: bool = True,
        working_side: int | None = None) -> TaskOutput:
    device = runtime.device()
    if working_side is None:
        working_side = TASK.defaults()["working_side"]
    rgb, scaled_from = cyclegan.working_image(loaded.rgb, working_side)
    with runtime.stopwatch(device) as load_time:
        net = cyclegan.load(model, device, checkpoint, progress)
        backward = None
        if show_cycle and model in cyclegan.REVERSE and checkpoint is None:  # a user's own file has no known pair
            backward = cyclegan.load(cyclegan.REVERSE[model], device, None, progress)
    with runtime.stopwatch(device) as model_time:
        if backward is not None:
            result = cyclegan.cycle(net, backward, rgb)
            translated = result.translated
        else:
            translated = cyclegan.translate(net, rgb)
    cpu_compromise = device.type == "cpu" and working_side == CPU_WORKING_SIDE
    notes = loaded.notes + ([f"working size {rgb.shape[1]}x{rgb.shape[0]}"
                             + (" (the CPU default; a GPU translates the photo as uploaded)" if cpu_compromise else "")]
                            if scaled_from else [])
    out = translation.run_output(TASK_ID, "CycleGAN", model, checkpoint, loaded, {"input": rgb, "output": translated},
                                 (load_time, model_time), working_size=list(rgb.shape[1::-1]), notes=notes)
    if backward is not None:
        reverse = cyclegan.REVERSE[model]
        out.images.update(reconstructed=result.reconstructed, cycle_error=cyclegan.error_heatmap(result.error))
        out.record["cycle"] = {"reverse_model": reverse, "mean_abs_error": round(result.mean_error, 5),
                               "units": "|X - F(G(X))| in the networks' [-1, 1] range, averaged over pixels and "
                                        "channels"}
        out.summary += f" (with the cycle through {reverse}: mean |X - X'| = {result.mean_error:.3f})"
    return out


TASK = Task(
    id=TASK_ID, title="CycleGAN", models=cyclegan.MODELS, default_model=cyclegan.DEFAULT_MODEL,
    options=(
        Option("show_cycle", True, "also run the reverse model (where one exists): X -> Y -> X'",
               label="Show the cycle X -> Y -> X' (runs the reverse model too)"),
        Option("working_side", 0, "translate at most this many pixels a side (0: the input's size, as the official "
               f"test with --preprocess none; the default on a GPU, {CPU_WORKING_SIDE} on a CPU)", minimum=0,
               maximum=2048, label="Working size (longest side, 0 = as uploaded)", step=32,
               cpu_default=CPU_WORKING_SIDE),
    ),
    max_side=2048,
    run=run,
    preload=lambda model: cyclegan.load(model),
    run_video=translation.video_runner(TASK_ID, run, show_cycle=False),  # frames without the cycle
    video_suffixes=video.VIDEO_SUFFIXES,
)
