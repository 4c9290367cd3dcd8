"""CycleGAN tab: unpaired translation, and the cycle X -> Y -> X' with its error map made visible."""
from __future__ import annotations

import gradio as gr

import gpu

import assets
from models.cyclegan import REVERSE

from . import _layout, _live, _ui, _widgets

ID = "cyclegan"
TITLE = "CycleGAN"
EXPLANATION = """
**CycleGAN** (Zhu et al., ICCV 2017) learns to translate between two domains without paired examples. Two generators,
G: X -> Y and F: Y -> X, are trained with a GAN loss each, plus a **cycle-consistency loss** ||F(G(x)) - x||: whatever
G does, F must be able to undo, so the content survives. For models trained as a pair (horse2zebra / zebra2horse, ...)
this tab runs both and shows the reconstruction X' and the per-pixel |X - X'|: the cycle loss, on your photo.
"""
# Live frames stay small for a CPU: below this, the working size still applies; above it, it changes nothing.
LIVE_MAX_SIDE = 256


def build() -> None:
    layout = _layout.TabLayout(ID, EXPLANATION)
    task = layout.task
    labels = {name: f"{name}  ⟲ {REVERSE[name]}" for name in task.models if name in REVERSE}
    with layout.inputs() as panel:
        model = _widgets.model_widget(task, labels, label="Model (⟲: has a reverse model)")
        options = _widgets.option_widgets(task, ("show_cycle", "working_side"))
        with gr.Accordion("Your own generator", open=False):
            checkpoint = gr.File(label="A resnet_9blocks generator trained with the reference code (.pth)",
                                 file_types=[".pth", ".pt"], elem_id=f"{ID}-checkpoint")
        run = gr.Button("Translate", variant="primary", elem_id=f"{ID}-run")
        gr.Examples([[assets.skimage_photo("chelsea", 512), "style_vangogh"],
                     [assets.skimage_photo("coffee", 512), "apple2orange"]], [panel.image, model],
                    label="Examples (scikit-image sample photos, CC0)")
    with layout.outputs():
        slider = gr.ImageSlider(label="X (left) vs G(X) (right)", format="png", type="numpy",
                                elem_id=f"{ID}-slider", max_height=520)
        status = gr.Markdown(elem_id=f"{ID}-status")
        with gr.Row(visible=False) as cycle_row:
            reconstructed = gr.Image(label="X' = F(G(X))", type="numpy", format="png",
                                     elem_id=f"{ID}-reconstructed", height=320)
            error = gr.Image(label="|X - X'| (bright = lost in the cycle)", type="numpy", format="png",
                             elem_id=f"{ID}-cycle-error", height=320)
        record = _ui.record_view(ID)
        live_view = _ui.live_view(ID)
        videos = _ui.video_section(ID, "translated")

    @_ui.friendly_errors
    def cyclegan(image, model=task.default_model, checkpoint=None, progress=gr.Progress(), **values):
        """Translate a photo with a CycleGAN generator (horse2zebra, style_vangogh, ...); for a model trained as one
        direction of a pair, also run the reverse model and show X' = F(G(X)) and |X - X'|, the cycle loss."""
        _, out = _ui.run_task(task, image, model, values, checkpoint=checkpoint, progress=progress)
        has_cycle = "reconstructed" in out.images
        return ((out.images["input"], out.images["output"]), _ui.result_line(out.summary, out.record["notes"]),
                gr.update(visible=has_cycle), out.images.get("reconstructed"), out.images.get("cycle_error"),
                out.record)

    _ui.bind(run.click, cyclegan, [panel.image, model, checkpoint], options,
             [slider, status, cycle_row, reconstructed, error, record], api_name="cyclegan")

    @_ui.friendly_errors
    def cyclegan_video(video, model=task.default_model, checkpoint=None, progress=gr.Progress(), **values):
        """Translate every frame of a video file (MP4, WebM, MOV) with a CycleGAN generator, without the cycle; the
        result is a WebM without audio."""
        if not video:
            raise gr.Error("Upload a video first.")
        record = gpu.on_gpu(task.id, task.run_video, "video")(video, _ui.video_target(model), model=task.check_model(model), checkpoint=checkpoint,
                                progress=_ui.progress_callback(progress), **task.check_options(**values))
        return record["output"], _ui.video_summary(record), record

    _ui.bind(videos.run.click, cyclegan_video, [videos.video_in, model, checkpoint],
             {"working_side": options["working_side"]}, [videos.video_out, videos.status, record],
             api_name="cyclegan_video")
    _live.wire_live(task, panel, live_view, model, options, "output", still_outputs=[slider, run],
                    max_side=LIVE_MAX_SIDE, show_cycle=False)
