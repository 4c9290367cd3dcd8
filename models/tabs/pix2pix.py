"""The Pix2Pix tab: a photo, sketch or painted label map through a paired generator, and videos frame by frame.

`run()` is the tab's pipeline (the UI and `python app.py predict pix2pix`): prepare the input, translate at 256x256
and back, report. The models are models/pix2pix.py.
"""
from __future__ import annotations

from .. import pix2pix, runtime, translation, video, weights
from ..images import LoadedImage
from ..tasks import Option, Task, TaskOutput

TASK_ID = pix2pix.TASK_ID


def run(loaded: LoadedImage, model: str = pix2pix.DEFAULT_MODEL, checkpoint: str | None = None,
        progress: weights.ProgressCallback | None = None, prepare: str = "none", noise: bool = False, seed: int = 0,
        statistics: str = "image") -> TaskOutput:
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = pix2pix.load(model, device, checkpoint, progress)
    source = pix2pix.prepare_input(loaded.rgb, prepare)
    with runtime.stopwatch(device) as model_time:
        translated = pix2pix.translate(net, source, noise, seed, statistics == "image")
    out = translation.run_output(TASK_ID, "pix2pix", model, checkpoint, loaded, {"input": source, "output": translated},
                                 (load_time, model_time), " via 256x256", prepare=prepare, noise=noise,
                                 seed=seed if noise else None, statistics=statistics)
    if noise:
        out.summary += f", noise seed {seed}"
    return out


TASK = Task(
    id=TASK_ID, title="Pix2Pix", models=pix2pix.MODELS, default_model=pix2pix.DEFAULT_MODEL,
    options=(
        Option("prepare", "none", "turn the input into what the model expects first: Canny edges (edges2shoes) or "
               "facade label colours (facades_label2photo)", choices=pix2pix.PREPARE, label="Prepare the photo"),
        Option("noise", False, "keep dropout on (the generator's only noise source), seeded",
               label="Noise (dropout on)"),
        Option("seed", 0, "seed of the dropout noise", minimum=0, maximum=2**31 - 1, label="Seed"),
        Option("statistics", "image", "BatchNorm statistics: this image's (reference default) or running averages",
               choices=("image", "running"), label="BatchNorm statistics"),
    ),
    max_side=1024,
    run=run,
    preload=lambda model: pix2pix.load(model),
    run_video=translation.video_runner(TASK_ID, run),
    video_suffixes=video.VIDEO_SUFFIXES,
)
