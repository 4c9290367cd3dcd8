"""Pix2Pix tab: paired translation (edges -> shoes, labels -> facades, maps <-> satellite, day -> night).

Three ways to make an input: a photo (optionally turned into edges or facade labels), a sketchpad for edges2shoes,
and a label painter with the facade classes' colours. The canvases are plumbing: the drawing becomes the model's
input (models/pix2pix.py) and then runs like a photo, so the one public endpoint is `pix2pix`, plus `pix2pix_video`.
"""
from __future__ import annotations

from dataclasses import replace

import gradio as gr

import gpu

import assets
from models.pix2pix import FACADE_PALETTE, sketch_to_edges, snap_to_palette
from models.tasks import get_task

from . import _live, _ui, _widgets

ID = "pix2pix"
TITLE = "Pix2Pix"
EXPLANATION = """
**Pix2Pix** (Isola et al., CVPR 2017) learns a mapping from paired examples: a U-Net generator (skip connections carry
the input's layout straight to the output) is trained with a conditional GAN loss, which makes it sharp, plus an L1
loss to the true output, which keeps it faithful. Draw shoe edges, paint a facade with the label colours, or give it a
photo. The model was trained with dropout as its only noise: switch *noise* on to see how much it changes.
"""
LIVE_MAX_SIDE = 256  # the generator works at 256x256: larger webcam frames would only cost time
_PREPARE = [("as it is", "none"), ("edges from the photo (Canny), for edges2shoes", "edges"),
            ("snap to the facade label colours, for facades_label2photo", "labels")]
_STATISTICS = [("this image's (reference default)", "image"), ("running averages", "running")]
_DRAWN = ("noise", "seed", "statistics")  # the options a drawing takes: it is already what the model expects


def build() -> None:
    task = get_task(ID)
    gr.Markdown(EXPLANATION)
    with gr.Row():
        with gr.Column(scale=1, min_width=420):  # wide enough for the three input sub-tabs to show
            with gr.Tabs():
                with gr.Tab("Photo or webcam"):
                    panel = _ui.input_panel(ID, task.max_side)
                    options = _widgets.option_widgets(task, ("prepare",), prepare=dict(choices=_PREPARE))
                    run_photo = gr.Button("Translate photo", variant="primary", elem_id=f"{ID}-run")
                with gr.Tab("Sketch (edges2shoes)"):
                    sketch = gr.Sketchpad(type="numpy", format="png", canvas_size=(256, 256), elem_id=f"{ID}-sketch",
                                          brush=gr.Brush(colors=["#000000"], default_size=3, color_mode="fixed"),
                                          label="Draw a shoe outline in black")
                    run_sketch = gr.Button("Translate sketch", variant="primary", elem_id=f"{ID}-run-sketch")
                with gr.Tab("Label painter (facades)"):
                    painter = gr.ImageEditor(
                        type="numpy", format="png", canvas_size=(256, 256), sources=[], elem_id=f"{ID}-painter",
                        brush=gr.Brush(colors=[_hex(colour) for _, colour in FACADE_PALETTE],
                                       default_color=_hex(FACADE_PALETTE[1][1]),  # facade, not background
                                       default_size=12, color_mode="fixed"),
                        label="Paint facade parts; unpainted is background")
                    gr.Markdown(" · ".join(f"<span style='color:{_hex(colour)}'>■</span> {name}"
                                           for name, colour in FACADE_PALETTE))
                    run_painter = gr.Button("Translate labels", variant="primary", elem_id=f"{ID}-run-painter")
            # No own-generator upload here: a unet_256 file (about 218 MB) is over the app's upload limit; the
            # command line takes one (--checkpoint).
            model = _widgets.model_widget(task)
            with gr.Row():
                options |= _widgets.option_widgets(task, ("noise",))
                # A seed is typed, not slid: without its maximum the option becomes a number box (run checks it).
                options["seed"] = _widgets.option_widget(replace(task.option("seed"), maximum=None), ID)
            options |= _widgets.option_widgets(task, ("statistics",), statistics=dict(choices=_STATISTICS))
            gr.Examples([[assets.skimage_photo("chelsea", 256), "edges"]], [panel.image, options["prepare"]],
                        label="Example (scikit-image's cat, CC0): try edges2shoes on its edges")
        with gr.Column(scale=1):
            slider = gr.ImageSlider(label="What the model saw (left) vs its output (right)", format="png",
                                    type="numpy", elem_id=f"{ID}-slider", max_height=560)
            status = gr.Markdown(elem_id=f"{ID}-status")
            record = _ui.record_view(ID)
            live_view = _ui.live_view(ID)
            videos = _ui.video_section(ID, "translated")

    @_ui.friendly_errors
    def pix2pix(image, model=task.default_model, progress=gr.Progress(), **values):
        """Translate an image with a Pix2Pix generator (edges2shoes, facades_label2photo, maps, day2night), optionally
        turned into Canny edges or facade label colours first; returns what the model saw and its output."""
        _, out = _ui.run_task(task, image, model, values, progress=progress)
        return ((out.images["input"], out.images["output"]), _ui.result_line(out.summary, out.record["notes"]),
                out.record)

    def from_canvas(to_model_input):
        """Canvas plumbing: the drawing becomes what the model expects (the maths is models/pix2pix.py), then runs
        as an image that needs no preparing."""

        @_ui.friendly_errors
        def translate_drawing(canvas, model=task.default_model, progress=gr.Progress(), **values):
            drawing = (canvas or {}).get("composite")
            if drawing is None:
                raise gr.Error("Draw something first.")
            return pix2pix(to_model_input(drawing), model, progress, **values)

        return translate_drawing

    drawn_options = {name: options[name] for name in _DRAWN}
    outputs = [slider, status, record]
    _ui.bind(run_photo.click, pix2pix, [panel.image, model], options, outputs, api_name="pix2pix")
    _ui.bind(run_sketch.click, from_canvas(sketch_to_edges), [sketch, model], drawn_options, outputs,
             api_name="pix2pix_sketch", api_visibility="private")
    _ui.bind(run_painter.click, from_canvas(snap_to_palette), [painter, model], drawn_options, outputs,
             api_name="pix2pix_labels", api_visibility="private")
    sketch.change(lambda: gr.update(value="edges2shoes"), None, model, queue=False, api_visibility="private")
    painter.change(lambda: gr.update(value="facades_label2photo"), None, model, queue=False, api_visibility="private")

    @_ui.friendly_errors
    def pix2pix_video(video, model=task.default_model, progress=gr.Progress(), **values):
        """Translate every frame of a video file (MP4, WebM, MOV) with a Pix2Pix generator and the same settings as
        a photo; the result is a WebM without audio."""
        if not video:
            raise gr.Error("Upload a video first.")
        record = gpu.on_gpu(task.id, task.run_video, "video")(video, _ui.video_target(model), model=task.check_model(model),
                                progress=_ui.progress_callback(progress), **task.check_options(**values))
        return record["output"], _ui.video_summary(record), record

    _ui.bind(videos.run.click, pix2pix_video, [videos.video_in, model], options,
             [videos.video_out, videos.status, record], api_name="pix2pix_video")
    _live.wire_live(task, panel, live_view, model, options, "output", still_outputs=[slider, run_photo],
                    max_side=LIVE_MAX_SIDE)


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)
