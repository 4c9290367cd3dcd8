"""Style transfer tab: fast neural style, Gatys optimisation streamed step by step, and AdaIN for any style image."""
from __future__ import annotations

import dataclasses
import threading

import gradio as gr

import gpu
import pandas as pd

import assets
from models import style_images
from models.tabs import style as style_tab

from . import _layout, _live, _ui, _widgets

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
STYLE_MAX_SIDE = 1024  # a style upload is scaled to at most this before the method's own working size
# The UI's (and so the API's) ranges stop below the command line's: on a shared server, Gatys at many steps or a
# large working size would hold a worker for minutes.
UI_MAX_STEPS = 500
UI_MAX_SIDE = 1024


# Per browser session: set by the Stop button, read by that session's running Gatys optimisation between steps.
# (gr.State cannot hold it: Gradio deep-copies state values, and an Event cannot be copied.)
_STOP_FLAGS: dict[str, threading.Event] = {}
_STOP_GUARD = threading.Lock()


def _stop_flag(request: gr.Request | None) -> threading.Event:
    key = getattr(request, "session_hash", None) or "no-session"
    with _STOP_GUARD:
        return _STOP_FLAGS.setdefault(key, threading.Event())


def _style_input(style_image) -> object:
    """The `style` option's value for an uploaded style image: the decoded upload, or "" (the default pattern)."""
    return _ui.load_input(style_image, STYLE_MAX_SIDE) if style_image else ""


def _capped_widget(task, name: str, maximum: int, **overrides) -> gr.Slider:
    """The option's slider with a lower maximum than the option's own."""
    return _widgets.option_widget(dataclasses.replace(task.option(name), maximum=maximum), task.id, **overrides)


def build() -> None:
    layout = _layout.TabLayout(ID, EXPLANATION)
    task = layout.task
    with layout.inputs() as panel:
        model = _widgets.model_widget(task, style_tab.MODEL_LABELS, label="Method and style")
        style_image = _ui.ImageInput(sources=["upload", "clipboard"], type="filepath", image_mode=None,
                                     label=task.option("style").label, elem_id=f"{ID}-style-image", height=200)
        gr.Examples([[style_images.builtin_style_path(name)] for name in style_images.BUILTIN_STYLES]
                    + [[assets.skimage_photo("hubble_deep_field", 512)]], [style_image],
                    label="Styles (painted by the app; Hubble deep field: public domain)")
        options = _widgets.option_widgets(task, ("alpha", "preserve_color"))
        with gr.Accordion("Gatys settings", open=False):
            options["steps"] = _capped_widget(task, "steps", UI_MAX_STEPS)
            options |= _widgets.option_widgets(
                task, ("content_weight", "style_weight", "optimizer", "init", "content_layers", "style_layers"))
            options["max_side"] = _capped_widget(task, "max_side", UI_MAX_SIDE, elem_id=f"{ID}-working")
        options |= _widgets.option_widgets(task, ("gram_layer",))
        checkpoint = gr.File(label="Your own TransformerNet (fast style) or AdaIN decoder (.pth)",
                             file_types=[".pth", ".model", ".pt"], elem_id=f"{ID}-checkpoint")
        with gr.Row():
            run = gr.Button("Stylise", variant="primary", elem_id=f"{ID}-run")
            stop = gr.Button("Stop (keep the best)", elem_id=f"{ID}-stop")
        gr.Examples([[assets.skimage_photo("chelsea", 512)], [assets.skimage_photo("coffee", 512)]], [panel.image],
                    label="Content photos (scikit-image, CC0)")
    with layout.outputs():
        slider = gr.ImageSlider(label="Content (left) vs stylised (right)", format="png", type="numpy",
                                elem_id=f"{ID}-slider", max_height=540)
        status = gr.Markdown(elem_id=f"{ID}-status")
        losses = gr.LinePlot(x="step", y="log10 loss", color="loss", label="Gatys: losses per step",
                             elem_id=f"{ID}-losses", height=260)
        with gr.Row():
            used_style = gr.Image(label="Style image used", type="numpy", elem_id=f"{ID}-used-style", height=260)
            gram = gr.Image(label="Its Gram matrix (channels x channels)", type="numpy", format="png",
                            elem_id=f"{ID}-gram", height=260)
        record = _ui.record_view(ID)
        live_view = _ui.live_view(ID)

    @_ui.friendly_errors
    def style(image, model=task.default_model, style_image=None, checkpoint=None, request: gr.Request = None,
              progress=gr.Progress(), **values):
        """Stylise a photo: a fast style (candy, mosaic, rain_princess, udnie), or AdaIN or Gatys with `style_image`
        (without one, a built-in pattern); Gatys optimises the pixels against VGG-19 and streams step by step."""
        flag = _stop_flag(request)
        flag.clear()
        if task.check_model(model) != "gatys":
            _, out = _ui.run_task(task, image, model, values, checkpoint=checkpoint, progress=progress,
                                  style=_style_input(style_image))
            yield ((out.images["content"], out.images["stylized"]), _ui.result_line(out.summary, out.record["notes"]),
                   None, out.images.get("style"), out.images.get("gram"), out.record)
            return
        # Gatys: the optimisation runs in the model layer; each report is shown as it comes, Stop ends it early
        # (it takes no checkpoint: one left in the upload box is not used)
        loaded = _ui.load_input(image, task.max_side)
        settings = {**task.defaults(), **task.check_options(**values), "style": _style_input(style_image)}
        for out in gpu.on_gpu(task.id, task.stream, "stream")(loaded, model=model, progress=_ui.progress_callback(progress),
                               should_stop=flag.is_set, **settings):
            report = out.record["gatys"]
            yield ((out.images["content"], out.images["stylized"]), _gatys_line(out.record["style"], report),
                   _loss_frame(report["history"]), out.images["style"], out.images["gram"], out.record)

    _ui.bind(run.click, style, [panel.image, model, style_image, checkpoint], options,
             [slider, status, losses, used_style, gram, record], api_name="style")

    def stop_optimising(request: gr.Request):
        _stop_flag(request).set()

    stop.click(stop_optimising, None, None, queue=False, api_name="style_stop", api_visibility="private")

    def live_run(loaded, model, style="", **values):
        """Live frames: the one-shot models at the live size, with the style upload as it is now."""
        if model == "gatys":
            raise gr.Error("Gatys optimises for many seconds per image: choose a fast style or AdaIN for Live.")
        return task.run(loaded, model=model, style=_style_input(style), **{**values, "max_side": LIVE_SIDE})

    _live.wire_live(dataclasses.replace(task, run=live_run), panel, live_view, model, {**options, "style": style_image},
                    "stylized", still_outputs=[slider, run, stop], max_side=LIVE_SIDE)


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
    """The record's loss history as the plot's table (one row per step and loss, log10 scaled)."""
    return pd.DataFrame(style_tab.loss_plot_rows(history), columns=["step", "loss", "log10 loss"])
