"""The super-resolution tab's "Why a GAN loss?" section: two tiny generators trained live, one with a pixel loss and
one against a discriminator, on inputs that each have two equally likely real answers (the model layer is
models/gan_lesson.py; this file only streams its reports)."""
from __future__ import annotations

import gradio as gr

from models import gan_lesson, gan_lesson_views

EXPLANATION = """
**Why a GAN loss?** Each input below has two equally likely real answers: an all-black or an all-white patch (or a
checker texture in one of its two phases). A generator trained with a pixel loss (L2, what PSNR rewards) learns their
average, a gray that is never real; a generator trained against a discriminator must look real, so it picks black or
white and uses both. This is the SRGAN result above in miniature: the pixel loss wins on PSNR with a blurry average,
while the GAN's sharp detail scores lower PSNR but looks like a real photo (its details are invented, not recovered).
"""


def build_section(tab_id: str) -> None:
    with gr.Accordion("Why a GAN loss? A live experiment (a few seconds on a CPU)", open=False):
        gr.Markdown(EXPLANATION)
        with gr.Row():
            variant = gr.Radio(list(gan_lesson.VARIANTS), value="black-white", label="Data",
                               elem_id=f"{tab_id}-lesson-variant")
            pixel_loss = gr.Radio([("L2 (MSE)", "l2"), ("L1", "l1")], value="l2", label="Pixel loss")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed (same seed, same run)")
            steps = gr.Slider(50, 1000, value=gan_lesson.DEFAULT_STEPS, step=50, label="Training steps")
        with gr.Row():
            start = gr.Button("Train both generators", variant="primary", elem_id=f"{tab_id}-lesson-start")
            stop = gr.Button("Stop (keeps what it has)", elem_id=f"{tab_id}-lesson-stop")
        status = gr.Markdown(elem_id=f"{tab_id}-lesson-status")
        with gr.Row():
            outputs = gr.Image(label="Outputs for fixed inputs", type="numpy", format="png",
                               elem_id=f"{tab_id}-lesson-outputs")
            histograms = gr.Image(label="Output values where the real answers differ", type="numpy", format="png",
                                  elem_id=f"{tab_id}-lesson-histograms")
        numbers = gr.JSON(label="Statistics (mean, share near 0 or 1, PSNR) per generator", visible=True)

    def gan_lesson_run(variant="black-white", pixel_loss="l2", seed=0, steps=gan_lesson.DEFAULT_STEPS):
        """Train a pixel-loss and a GAN generator on ambiguous data and stream their outputs and statistics."""
        for report in gan_lesson.run(variant, steps=int(steps), seed=int(seed or 0), report_every=25,
                                     pixel_loss=pixel_loss):
            stats = gan_lesson.final_stats(report)
            pixel, gan = stats[report.pixel_loss_name], stats["GAN"]
            line = (f"**Step {report.step} of {report.steps}** ({report.seconds:.1f} s). {report.pixel_loss_name}: "
                    f"mean {pixel['mean']:.2f}, {pixel['near_modes']:.0%} near black or white, PSNR "
                    f"{pixel['psnr']:.1f} dB · GAN: mean {gan['mean']:.2f}, {gan['near_modes']:.0%} near black or "
                    f"white, PSNR {gan['psnr']:.1f} dB")
            yield (line + (" · done" if report.done else ""), gan_lesson_views.side_by_side(report),
                   gan_lesson_views.histograms(report), stats)

    event = start.click(gan_lesson_run, [variant, pixel_loss, seed, steps], [status, outputs, histograms, numbers],
                        api_name="gan_lesson", concurrency_limit=1, concurrency_id="gan-lesson")
    stop.click(None, None, None, cancels=[event], api_visibility="private")
