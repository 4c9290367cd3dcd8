"""Style transfer tab: fast neural style, Gatys optimisation streamed step by step, and AdaIN for any style image."""
from __future__ import annotations

import math
import threading

import gradio as gr
import pandas as pd

import assets
from models import style_images
from models.tabs.style import MODEL_LABELS
from models.tasks import get_task

from . import _ui

ID = "style"
TITLE = "Style transfer"
EXPLANATION = """
**Neural style transfer** compares images through a fixed loss network (VGG): the *content* loss compares feature maps,
the *style* loss compares their **Gram matrices** (which features fire together, wherever they are). **Gatys** et al.
(2016) optimise the pixels of the output against both, step by step — watch the losses fall. **Fast neural style**
(Johnson et al., 2016) trains a feed-forward network against that *perceptual loss* once per style, then stylises in
one pass. **AdaIN** (Huang & Belongie, 2017) takes any style in one pass, by giving the content features the style
features' channel means and standard deviations.
"""
LIVE_SIDE = 384


# Per browser session: set by the Stop button, read by that session's running Gatys optimisation between steps.
# (gr.State cannot hold it: Gradio deep-copies state values, and an Event cannot be copied.)
_STOP_FLAGS: dict[str, threading.Event] = {}
_STOP_GUARD = threading.Lock()


def _stop_flag(request: gr.Request | None) -> threading.Event:
    key = getattr(request, "session_hash", None) or "no-session"
    with _STOP_GUARD:
        return _STOP_FLAGS.setdefault(key, threading.Event())


def build() -> None:
    task = get_task(ID)
    option = task.option
    gr.Markdown(EXPLANATION)
    with gr.Row():
        with gr.Column(scale=1):
            panel = _ui.input_panel(ID, task.max_side)
            model = gr.Dropdown([(label, name) for name, label in MODEL_LABELS.items()], value=task.default_model,
                                label="Method and style", elem_id=f"{ID}-model")
            style = _ui.ImageInput(sources=["upload", "clipboard"], type="filepath", image_mode=None,
                                   label="Style image (AdaIN, Gatys)", elem_id=f"{ID}-style-image", height=200)
            gr.Examples([[style_images.builtin_style_path(name)] for name in style_images.BUILTIN_STYLES]
                        + [[assets.skimage_photo("hubble_deep_field", 512)]], [style],
                        label="Styles (painted by the app; Hubble deep field: public domain)")
            alpha = gr.Slider(0, 1, value=1.0, step=0.05, label="Style strength alpha (AdaIN)", elem_id=f"{ID}-alpha")
            preserve = gr.Checkbox(value=False, label="Keep the content's colours")
            with gr.Accordion("Gatys settings", open=False):
                steps = gr.Slider(1, 500, value=option("steps").default, step=1, label="Steps", elem_id=f"{ID}-steps")
                content_weight = gr.Number(value=option("content_weight").default, label="Content weight")
                style_weight = gr.Number(value=option("style_weight").default, label="Style weight")
                optimizer = gr.Radio(list(option("optimizer").choices), value=option("optimizer").default,
                                     label="Optimiser")
                init = gr.Radio(["content", "noise"], value="content", label="Start from")
                working = gr.Slider(0, 1024, value=0, step=32, label="Working size (0 = the method's default)",
                                    elem_id=f"{ID}-working")
            gram_layer = gr.Dropdown(list(option("gram_layer").choices), value=option("gram_layer").default,
                                     label="VGG layer of the Gram matrix view")
            checkpoint = gr.File(label="Your own TransformerNet (fast style) or AdaIN decoder (.pth)",
                                 file_types=[".pth", ".model", ".pt"], elem_id=f"{ID}-checkpoint")
            with gr.Row():
                run = gr.Button("Stylise", variant="primary", elem_id=f"{ID}-run")
                stop = gr.Button("Stop (keep the best)", elem_id=f"{ID}-stop")
            gr.Examples([[assets.skimage_photo("chelsea", 512)], [assets.skimage_photo("coffee", 512)]], [panel.image],
                        label="Content photos (scikit-image, CC0)")
        with gr.Column(scale=2):
            slider = gr.ImageSlider(label="Content (left) vs stylised (right)", format="png", type="numpy",
                                    elem_id=f"{ID}-slider", max_height=540)
            status = gr.Markdown(elem_id=f"{ID}-status")
            losses = gr.LinePlot(x="step", y="log10 loss", color="loss", label="Gatys: losses per step",
                                 elem_id=f"{ID}-losses", height=260)
            with gr.Row():
                used_style = gr.Image(label="Style image used", type="numpy", elem_id=f"{ID}-used-style", height=260)
                gram = gr.Image(label="Its Gram matrix (channels x channels)", type="numpy", format="png",
                                elem_id=f"{ID}-gram", height=260)
            live_view = _ui.live_view(ID)

    settings = [model, style, alpha, preserve, steps, content_weight, style_weight, optimizer, init, working,
                gram_layer]

    def options_from(style_file, alpha_value, keep_colours, step_count, content_w, style_w, optimiser, start,
                     working_side, layer) -> dict:
        values = dict(alpha=float(alpha_value), preserve_color=bool(keep_colours), steps=int(step_count),
                      content_weight=float(content_w), style_weight=float(style_w), optimizer=optimiser, init=start,
                      max_side=int(working_side), gram_layer=layer)
        values = task.check_options(**values)
        return {**values, "style": _ui.load_input(style_file, 1024) if style_file else ""}

    @_ui.friendly_errors
    def stylise(request: gr.Request, progress=gr.Progress(), image=None, model_name=None, *values):
        *values, own_checkpoint = values
        flag = _stop_flag(request)
        flag.clear()
        loaded = _ui.load_input(image, task.max_side)
        options = options_from(*values)
        model_name = task.check_model(model_name)
        if model_name != "gatys":
            out = task.run(loaded, model=model_name, checkpoint=own_checkpoint,
                           progress=_ui.progress_callback(progress), **options)
            yield ((out.images["content"], out.images["stylized"]), _ui.result_line(out.summary, out.record["notes"]),
                   None, out.images.get("style"), out.images.get("gram"))
            return
        # Gatys: the optimisation runs in the model layer; each report is shown as it comes, Stop ends it early
        for out in task.stream(loaded, model=model_name, progress=_ui.progress_callback(progress),
                               should_stop=flag.is_set, **options):
            report = out.record["gatys"]
            yield ((out.images["content"], out.images["stylized"]), _gatys_line(out.record["style"], report),
                   _loss_frame(report["history"]), out.images["style"], out.images["gram"])

    run.click(stylise, [panel.image, *settings, checkpoint], [slider, status, losses, used_style, gram],
              api_name="style", concurrency_id=_ui.MODEL_CONCURRENCY_ID,
              concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT)
    def stop_optimising(request: gr.Request):
        _stop_flag(request).set()

    stop.click(stop_optimising, None, None, queue=False, api_name="style_stop")

    def live_frame(frame, mirror, model_name, *values):
        if model_name == "gatys":
            raise gr.Error("Gatys optimises for many seconds per image: choose a fast style or AdaIN for Live.")
        loaded = _ui.load_input(frame, LIVE_SIDE, mirror_back=not mirror)
        out = task.run(loaded, model=task.check_model(model_name), **{**options_from(*values), "max_side": LIVE_SIDE})
        return out.images["stylized"], out.summary

    _ui.wire_live(panel, live_view, live_frame, settings, still_outputs=[slider, run, stop])


def _gatys_line(style_label: str, report: dict) -> str:
    """One Gatys report as the status line: step, losses, time; at the end, which image is shown."""
    loss = report["loss"]
    line = (f"**Gatys, step {report['steps_done']} of {report['steps']}** on {style_label}: content "
            f"{loss['content']:.3g}, style {loss['style']:.3g}, total {loss['total']:.3g}, {report['seconds']:.1f} s")
    if report["done"]:
        line += (f". {'Stopped; ' if report['stopped'] else ''}showing the best image (step {report['best_step']}, "
                 f"total {report['best_loss']:.3g}).")
    return line


def _loss_frame(history: list[dict]) -> pd.DataFrame:
    """The record's loss history as the plot's long table: one row per step and loss, log10 scaled."""
    rows = [(entry["step"], name, math.log10(max(entry[name], 1e-12)))
            for entry in history for name in ("content", "style", "total")]
    return pd.DataFrame(rows, columns=["step", "loss", "log10 loss"])
