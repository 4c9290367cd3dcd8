"""Super-resolution tab: bicubic vs SRGAN / Real-ESRGAN on a slider, and a PSNR/SSIM check against a sharp original."""
from __future__ import annotations

import gradio as gr

import assets
from models import sr
from models.tasks import get_task

from . import _ui

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
    task = get_task(ID)
    gr.Markdown(EXPLANATION)
    with gr.Row():
        with gr.Column(scale=1):
            panel = _ui.input_panel(ID, task.max_side)
            model = gr.Dropdown([(spec.label, name) for name, spec in sr.MODELS.items()], value=task.default_model,
                                label="Model", elem_id=f"{ID}-model")
            mode = gr.Radio(_MODES, value="upscale", label="Mode", elem_id=f"{ID}-mode")
            denoise = gr.Slider(0, 1, value=task.option("denoise").default, step=0.05, label="Denoise strength",
                                info=task.option("denoise").help, visible=False, elem_id=f"{ID}-denoise")
            with gr.Accordion("Advanced", open=False):
                tile = gr.Number(value=0, precision=0, minimum=0, maximum=4096, label="Tile size (input px, 0 = auto)",
                                 info=task.option("tile").help)
                checkpoint = gr.File(label="Your own checkpoint (.pth, official format of the chosen model)",
                                     file_types=[".pth", ".pt"], elem_id=f"{ID}-checkpoint")
            run = gr.Button("Enlarge", variant="primary", elem_id=f"{ID}-run")
            gr.Examples(
                [[assets.skimage_photo("chelsea", 160), "srgan-x4", "upscale"],
                 [assets.skimage_photo("coffee", 200), "realesr-general-x4v3", "upscale"],
                 [assets.skimage_photo("astronaut"), "srgan-x4", "check"]],
                [panel.image, model, mode], label="Examples (scikit-image sample photos, CC0 / public domain)",
            )
        with gr.Column(scale=2):
            slider = gr.ImageSlider(label="Bicubic (left) vs model (right)", format="png", type="numpy",
                                    elem_id=f"{ID}-slider", max_height=640)
            status = gr.Markdown(elem_id=f"{ID}-status")
            metrics = gr.Dataframe(headers=["method", "PSNR (dB)", "SSIM"], label="Against the original",
                                   visible=False, elem_id=f"{ID}-metrics", interactive=False)
            download = gr.File(label="Full-size result (PNG)", elem_id=f"{ID}-download")
            live_view = _ui.live_view(ID)

    model.change(lambda name: gr.update(visible=sr.MODELS[name].blend_checkpoint is not None), model, denoise,
                 queue=False, api_visibility="private")

    @_ui.friendly_errors
    def enlarge(image, model_name, mode_name, strength, tile_size, own_checkpoint, progress=gr.Progress()):
        loaded = _ui.load_input(image, task.max_side)
        out = task.run(loaded, model=task.check_model(model_name), checkpoint=own_checkpoint,
                       progress=_ui.progress_callback(progress), mode=task.option("mode").check(mode_name),
                       denoise=float(strength), tile=int(tile_size or 0))
        table = gr.update(visible=False)
        if "metrics" in out.record:
            rows = [[name, round(values["psnr_db"], 2), round(values["ssim"], 4)]
                    for name, values in out.record["metrics"].items() if isinstance(values, dict)]
            table = gr.update(value=rows, visible=True)
        return ((out.images["bicubic"], out.images["model"]), _ui.result_line(out.summary, out.record["notes"]),
                table, _ui.save_png(out.images["model"], f"{model_name}"))

    run.click(enlarge, [panel.image, model, mode, denoise, tile, checkpoint], [slider, status, metrics, download],
              api_name="super_resolution", concurrency_id=_ui.MODEL_CONCURRENCY_ID,
              concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT)

    def live_frame(frame, mirror, model_name, strength):
        loaded = _ui.load_input(frame, LIVE_MAX_SIDE, mirror_back=not mirror)
        out = task.run(loaded, model=task.check_model(model_name), denoise=float(strength))
        return out.images["model"], out.summary

    _ui.wire_live(panel, live_view, live_frame, [model, denoise], still_outputs=[slider, download, run])
