"""Super-resolution tab: bicubic vs SRGAN / Real-ESRGAN on a slider, and a PSNR/SSIM check against a sharp original."""
from __future__ import annotations

import gradio as gr

import assets
from models import sr

from . import _layout, _live, _ui, _widgets, gan_lesson

ID = "super-resolution"
TITLE = "Super-resolution"
EXPLANATION = """
**Super-resolution** guesses the missing detail when an image is enlarged. SRGAN (Ledig et al., CVPR 2017) trains a
residual generator with a perceptual loss on VGG features plus an adversarial loss, so it invents plausible texture
instead of the blur that a pixel (MSE) loss produces; ESRGAN (Wang et al., 2018) sharpens this with
residual-in-residual dense blocks, and Real-ESRGAN trains on realistically degraded photos. *Check against the
original* shrinks a sharp photo, enlarges it back, and measures PSNR/SSIM: pixel losses win on PSNR, GAN losses
look sharper. The lecture's point, on your own photo.
"""
LIVE_MAX_SIDE = 160  # live frames are shrunk to this, then enlarged x4 (about 640 px out)
_MODES = [("Upscale my image", "upscale"), ("Check against the original (shrink, enlarge, measure)", "check")]


def build() -> None:
    layout = _layout.TabLayout(ID, EXPLANATION)
    task = layout.task
    with layout.inputs() as panel:
        model = _widgets.model_widget(task, {name: spec.label for name, spec in sr.MODELS.items()})
        options = _widgets.option_widgets(task, ("mode", "denoise"), mode=dict(choices=_MODES, label="Mode"),
                                          denoise=dict(visible=False))
        with gr.Accordion("Advanced", open=False):
            options |= _widgets.option_widgets(task, ("tile",), tile=dict(kind=gr.Number))
            checkpoint = gr.File(label="Your own checkpoint (.pth, official format of the chosen model)",
                                 file_types=[".pth", ".pt"], elem_id=f"{ID}-checkpoint")
        run = gr.Button("Enlarge", variant="primary", elem_id=f"{ID}-run")
        gr.Examples(
            [[assets.skimage_photo("chelsea", 160), "srgan-x4", "upscale"],
             [assets.skimage_photo("coffee", 200), "realesr-general-x4v3", "upscale"],
             [assets.skimage_photo("astronaut"), "srgan-x4", "check"]],
            [panel.image, model, options["mode"]],
            label="Examples (scikit-image sample photos, CC0 / public domain)",
        )
    with layout.outputs():
        slider = gr.ImageSlider(label="Bicubic (left) vs model (right)", format="png", type="numpy",
                                elem_id=f"{ID}-slider", max_height=640)
        status = gr.Markdown(elem_id=f"{ID}-status")
        metrics = gr.Dataframe(headers=["method", "PSNR (dB)", "SSIM"], label="Against the original",
                               visible=False, elem_id=f"{ID}-metrics", interactive=False)
        download = gr.File(label="Full-size result (PNG)", elem_id=f"{ID}-download")
        record = _ui.record_view(ID)
        live_view = _ui.live_view(ID)

    model.change(lambda name: gr.update(visible=sr.MODELS[name].blend_checkpoint is not None), model,
                 options["denoise"], queue=False, api_visibility="private")

    @_ui.friendly_errors
    def super_resolution(image, model=task.default_model, checkpoint=None, progress=gr.Progress(), **values):
        """Enlarge a photo x2/x4/x8 with SRGAN or Real-ESRGAN beside bicubic; mode=check measures PSNR/SSIM."""
        loaded, out = _ui.run_task(task, image, model, values, checkpoint=checkpoint, progress=progress)
        table = gr.update(visible=False)
        if "metrics" in out.record:
            rows = [[name, round(scores["psnr_db"], 2), round(scores["ssim"], 4)]
                    for name, scores in out.record["metrics"].items() if isinstance(scores, dict)]
            table = gr.update(value=rows, visible=True)
        return ((out.images["bicubic"], out.images["model"]), _ui.result_line(out.summary, out.record["notes"]),
                table, _ui.save_png(out.images["model"], model), out.record)

    _ui.bind(run.click, super_resolution, [panel.image, model, checkpoint], options,
             [slider, status, metrics, download, record], api_name="super_resolution")
    _live.wire_live(task, panel, live_view, model, options, "model", still_outputs=[slider, download, run],
                    max_side=LIVE_MAX_SIDE, mode="upscale")
    gan_lesson.build_section(ID)
