"""CycleGAN tab: unpaired translation, and the cycle X -> Y -> X' with its error map made visible."""
from __future__ import annotations

import gradio as gr

import assets
from models import cyclegan
from models.tasks import get_task

from . import _ui

ID = "cyclegan"
TITLE = "CycleGAN"
EXPLANATION = """
**CycleGAN** (Zhu et al., ICCV 2017) learns to translate between two domains without paired examples. Two generators,
G: X -> Y and F: Y -> X, are trained with a GAN loss each, plus a **cycle-consistency loss** ||F(G(x)) - x||: whatever
G does, F must be able to undo, so the content survives. For models trained as a pair (horse2zebra / zebra2horse, ...)
this tab runs both and shows the reconstruction X' and the per-pixel |X - X'|: the cycle loss, on your photo.
"""


def build() -> None:
    task = get_task(ID)
    gr.Markdown(EXPLANATION)
    with gr.Row():
        with gr.Column(scale=1):
            panel = _ui.input_panel(ID, task.max_side)
            model = gr.Dropdown(
                [(f"{name}  ⟲ {cyclegan.REVERSE[name]}" if name in cyclegan.REVERSE else name, name)
                 for name in task.models], value=task.default_model, label="Model (⟲: has a reverse model)",
                elem_id=f"{ID}-model")
            show_cycle = gr.Checkbox(value=True, label="Show the cycle X -> Y -> X' (runs the reverse model too)",
                                     elem_id=f"{ID}-show-cycle")
            working = gr.Slider(0, 2048, value=task.option("working_side").default, step=32,
                                label="Working size (longest side, 0 = as uploaded)")
            with gr.Accordion("Your own generator", open=False):
                checkpoint = gr.File(label="A resnet_9blocks generator trained with the reference code (.pth)",
                                     file_types=[".pth", ".pt"], elem_id=f"{ID}-checkpoint")
            run = gr.Button("Translate", variant="primary", elem_id=f"{ID}-run")
            gr.Examples([[assets.skimage_photo("chelsea", 512), "style_vangogh"],
                         [assets.skimage_photo("coffee", 512), "apple2orange"]], [panel.image, model],
                        label="Examples (scikit-image sample photos, CC0)")
        with gr.Column(scale=2):
            slider = gr.ImageSlider(label="X (left) vs G(X) (right)", format="png", type="numpy",
                                    elem_id=f"{ID}-slider", max_height=520)
            status = gr.Markdown(elem_id=f"{ID}-status")
            with gr.Row(visible=False) as cycle_row:
                reconstructed = gr.Image(label="X' = F(G(X))", type="numpy", format="png", elem_id=f"{ID}-reconstructed", height=320)
                error = gr.Image(label="|X - X'| (bright = lost in the cycle)", type="numpy", format="png",
                                 elem_id=f"{ID}-cycle-error", height=320)
            live_view = _ui.live_view(ID)
            videos = _ui.video_section(ID, "translated")

    events = dict(concurrency_id=_ui.MODEL_CONCURRENCY_ID, concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT)

    @_ui.friendly_errors
    def translate(image, model_name, cycle_on, working_side, own_checkpoint, progress=gr.Progress()):
        loaded = _ui.load_input(image, task.max_side)
        out = task.run(loaded, model=task.check_model(model_name), checkpoint=own_checkpoint,
                       progress=_ui.progress_callback(progress), show_cycle=bool(cycle_on),
                       working_side=int(working_side))
        has_cycle = "reconstructed" in out.images
        return ((out.images["input"], out.images["output"]), _ui.result_line(out.summary, out.record["notes"]),
                gr.update(visible=has_cycle), out.images.get("reconstructed"), out.images.get("cycle_error"))

    run.click(translate, [panel.image, model, show_cycle, working, checkpoint],
              [slider, status, cycle_row, reconstructed, error], api_name="cyclegan", **events)

    @_ui.friendly_errors
    def from_video(clip, model_name, working_side, progress=gr.Progress()):
        if not clip:
            raise gr.Error("Upload a video first.")
        record = task.run_video(clip, _ui.video_target(model_name), model=task.check_model(model_name),
                                progress=_ui.progress_callback(progress), working_side=int(working_side))
        return record["output"], _ui.video_summary(record)

    videos.run.click(from_video, [videos.video_in, model, working], [videos.video_out, videos.status],
                     api_name="cyclegan_video", **events)

    def live_frame(frame, mirror, model_name, working_side):
        loaded = _ui.load_input(frame, 256, mirror_back=not mirror)
        out = task.run(loaded, model=task.check_model(model_name), show_cycle=False,
                       working_side=min(int(working_side) or 256, 256))  # live frames stay small on a CPU
        return out.images["output"], out.summary

    _ui.wire_live(panel, live_view, live_frame, [model, working], still_outputs=[slider, run])
