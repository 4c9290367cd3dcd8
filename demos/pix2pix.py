"""Pix2Pix tab: paired translation (edges -> shoes, labels -> facades, maps <-> satellite, day -> night).

Three ways to make an input: a photo (optionally turned into edges or facade labels), a sketchpad for edges2shoes,
and a label painter with the facade classes' colours.
"""
from __future__ import annotations

import gradio as gr

import assets
from models import pix2pix
from models.tasks import get_task

from . import _ui

ID = "pix2pix"
TITLE = "Pix2Pix"
EXPLANATION = """
**Pix2Pix** (Isola et al., CVPR 2017) learns a mapping from paired examples: a U-Net generator (skip connections carry
the input's layout straight to the output) is trained with a conditional GAN loss, which makes it sharp, plus an L1
loss to the true output, which keeps it faithful. Draw shoe edges, paint a facade with the label colours, or give it a
photo. The model was trained with dropout as its only noise: switch *noise* on to see how much it changes.
"""
_PREPARE = [("as it is", "none"), ("edges from the photo (Canny), for edges2shoes", "edges"),
            ("snap to the facade label colours, for facades_label2photo", "labels")]


def build() -> None:
    task = get_task(ID)
    gr.Markdown(EXPLANATION)
    with gr.Row():
        with gr.Column(scale=1, min_width=420):  # wide enough for the three input sub-tabs to show
            with gr.Tabs():
                with gr.Tab("Photo or webcam"):
                    panel = _ui.input_panel(ID, task.max_side)
                    prepare = gr.Radio(_PREPARE, value="none", label="Prepare the photo", elem_id=f"{ID}-prepare")
                    run_photo = gr.Button("Translate photo", variant="primary", elem_id=f"{ID}-run")
                with gr.Tab("Sketch (edges2shoes)"):
                    sketch = gr.Sketchpad(type="numpy", format="png", canvas_size=(256, 256), elem_id=f"{ID}-sketch",
                                          brush=gr.Brush(colors=["#000000"], default_size=3, color_mode="fixed"),
                                          label="Draw a shoe outline in black")
                    run_sketch = gr.Button("Translate sketch", variant="primary", elem_id=f"{ID}-run-sketch")
                with gr.Tab("Label painter (facades)"):
                    painter = gr.ImageEditor(
                        type="numpy", format="png", canvas_size=(256, 256), sources=[], elem_id=f"{ID}-painter",
                        brush=gr.Brush(colors=[_hex(colour) for _, colour in pix2pix.FACADE_PALETTE],
                                       default_color=_hex(pix2pix.FACADE_PALETTE[1][1]),  # facade, not background
                                       default_size=12, color_mode="fixed"),
                        label="Paint facade parts; unpainted is background")
                    gr.Markdown(" · ".join(f"<span style='color:{_hex(colour)}'>■</span> {name}"
                                           for name, colour in pix2pix.FACADE_PALETTE))
                    run_painter = gr.Button("Translate labels", variant="primary", elem_id=f"{ID}-run-painter")
            model = gr.Dropdown(list(task.models), value=task.default_model, label="Model", elem_id=f"{ID}-model")
            with gr.Row():
                noise = gr.Checkbox(value=False, label="Noise (dropout on)", elem_id=f"{ID}-noise")
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            statistics = gr.Radio([("this image's (reference default)", "image"), ("running averages", "running")],
                                  value="image", label="BatchNorm statistics")
            gr.Examples([[assets.skimage_photo("chelsea", 256), "edges"]], [panel.image, prepare],
                        label="Example (scikit-image's cat, CC0): try edges2shoes on its edges")
        with gr.Column(scale=1):
            slider = gr.ImageSlider(label="What the model saw (left) vs its output (right)", format="png",
                                    type="numpy", elem_id=f"{ID}-slider", max_height=560)
            status = gr.Markdown(elem_id=f"{ID}-status")
            live_view = _ui.live_view(ID)
            videos = _ui.video_section(ID, "translated")

    settings = [model, noise, seed, statistics]

    def translate(loaded, model_name, prepare_as, noise_on, seed_value, stats, progress=None):
        out = task.run(loaded, model=task.check_model(model_name), progress=progress,
                       prepare=task.option("prepare").check(prepare_as), noise=bool(noise_on),
                       seed=int(seed_value or 0), statistics=task.option("statistics").check(stats))
        return out

    @_ui.friendly_errors
    def from_photo(progress=gr.Progress(), image=None, prepare_as=None, *values):
        out = translate(_ui.load_input(image, task.max_side), *values[:1], prepare_as, *values[1:],
                        progress=_ui.progress_callback(progress))
        return (out.images["input"], out.images["output"]), _ui.result_line(out.summary, out.record["notes"])

    def from_canvas(canvas, prepare_canvas, values, progress):
        drawing = (canvas or {}).get("composite")
        if drawing is None:
            raise gr.Error("Draw something first.")
        out = translate(_ui.load_input(prepare_canvas(drawing), task.max_side), values[0], "none", *values[1:],
                        progress=_ui.progress_callback(progress))
        return (out.images["input"], out.images["output"]), _ui.result_line(out.summary, [])

    @_ui.friendly_errors
    def from_sketch(progress=gr.Progress(), canvas=None, *values):
        return from_canvas(canvas, pix2pix.sketch_to_edges, values, progress)

    @_ui.friendly_errors
    def from_labels(progress=gr.Progress(), canvas=None, *values):
        return from_canvas(canvas, pix2pix.snap_to_palette, values, progress)

    events = dict(concurrency_id=_ui.MODEL_CONCURRENCY_ID, concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT)
    run_photo.click(from_photo, [panel.image, prepare, *settings], [slider, status], api_name="pix2pix", **events)
    run_sketch.click(from_sketch, [sketch, *settings], [slider, status], api_name="pix2pix_sketch", **events)
    run_painter.click(from_labels, [painter, *settings], [slider, status], api_name="pix2pix_labels", **events)
    sketch.change(lambda: gr.update(value="edges2shoes"), None, model, queue=False, api_visibility="private")
    painter.change(lambda: gr.update(value="facades_label2photo"), None, model, queue=False, api_visibility="private")

    @_ui.friendly_errors
    def from_video(clip, prepare_as, model_name, noise_on, seed_value, stats, progress=gr.Progress()):
        if not clip:
            raise gr.Error("Upload a video first.")
        record = task.run_video(clip, _ui.video_target(model_name), model=task.check_model(model_name),
                                progress=_ui.progress_callback(progress), prepare=prepare_as, noise=bool(noise_on),
                                seed=int(seed_value or 0), statistics=stats)
        return record["output"], _ui.video_summary(record)

    videos.run.click(from_video, [videos.video_in, prepare, *settings], [videos.video_out, videos.status],
                     api_name="pix2pix_video", **events)

    def live_frame(frame, mirror, prepare_as, model_name, noise_on, seed_value, stats):
        loaded = _ui.load_input(frame, 256, mirror_back=not mirror)
        out = translate(loaded, model_name, prepare_as, noise_on, seed_value, stats)
        return out.images["output"], out.summary

    _ui.wire_live(panel, live_view, live_frame, [prepare, *settings], still_outputs=[slider, run_photo])


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)
