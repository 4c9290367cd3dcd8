"""Panoptic segmentation tab: Mask2Former labels every pixel; stuff and things shown apart and merged."""
from __future__ import annotations

import gradio as gr

import assets
from models import mask2former
from models.tasks import get_task

from . import _ui

ID = "panoptic"
TITLE = "Panoptic segmentation"
EXPLANATION = """
**Panoptic segmentation** (Kirillov et al., CVPR 2019) labels every pixel: amorphous **stuff** (sky, road, grass) by
class, countable **things** (people, cars) by class *and* instance. UPSNet built it from a semantic head for stuff and
an instance head for things, merged at the end — the three views below. **Mask2Former** (Cheng et al., CVPR 2022)
predicts one set of masks with classes for both, using masked attention in a transformer decoder.
"""
LIVE_MAX_SIDE = 480
_LEGEND_KEYS = ("name", "kind", "area_pct", "score", "color")


def build() -> None:
    task = get_task(ID)
    option = task.option
    gr.Markdown(EXPLANATION)
    with gr.Row():
        with gr.Column(scale=1):
            panel = _ui.input_panel(ID, task.max_side)
            model = gr.Dropdown([(mask2former.LABELS[name], name) for name in task.models],
                                value=task.default_model, label="Model", elem_id=f"{ID}-model")
            threshold = gr.Slider(0, 1, value=option("threshold").default, step=0.01, label="Label-mask threshold",
                                  info=option("threshold").help)
            overlap = gr.Slider(0, 1, value=option("overlap_threshold").default, step=0.01, label="Overlap threshold",
                                info=option("overlap_threshold").help)
            mask_threshold = gr.Slider(0, 0.99, value=option("mask_threshold").default, step=0.01,
                                       label="Mask threshold")
            opacity = gr.Slider(0, 1, value=option("opacity").default, step=0.05, label="Opacity")
            labels = gr.Checkbox(value=True, label="Write labels on segments")
            working = gr.Slider(0, 1333, value=0, step=32, label="Working size (0 = the checkpoint's 384x384)")
            run = gr.Button("Segment every pixel", variant="primary", elem_id=f"{ID}-run")
            gr.Examples([[assets.skimage_photo("astronaut")], [assets.skimage_photo("coffee")]], [panel.image],
                        label="Examples (scikit-image sample photos, public domain / CC0)")
        with gr.Column(scale=2):
            merged = gr.ImageSlider(label="Photo (left) vs panoptic map (right)", format="png", type="numpy",
                                    elem_id=f"{ID}-slider", max_height=520)
            status = gr.Markdown(elem_id=f"{ID}-status")
            with gr.Row():
                stuff = gr.Image(label="Stuff layer (semantic)", type="numpy", format="jpeg", elem_id=f"{ID}-stuff")
                things = gr.Image(label="Things layer (instances)", type="numpy", format="jpeg",
                                  elem_id=f"{ID}-things")
            legend = gr.Dataframe(headers=list(_LEGEND_KEYS), label="Legend (largest first)", interactive=False,
                                  elem_id=f"{ID}-legend")
            label_file = gr.File(label="Segment map (PNG: 0 = void, n = legend id)", elem_id=f"{ID}-labels")
            live_view = _ui.live_view(ID)

    settings = [model, threshold, overlap, mask_threshold, opacity, labels, working]

    def options_from(label_min, overlap_min, mask_min, alpha, show_labels, side) -> dict:
        values = dict(threshold=float(label_min), overlap_threshold=float(overlap_min), mask_threshold=float(mask_min),
                      opacity=float(alpha), show_labels=bool(show_labels), working_size=int(side))
        return task.check_options(**values)

    @_ui.friendly_errors
    def segment(progress=gr.Progress(), image=None, model_name=None, *values):
        loaded = _ui.load_input(image, task.max_side)
        out = task.run(loaded, model=task.check_model(model_name), progress=_ui.progress_callback(progress),
                       **options_from(*values))
        rows = [[row[key] for key in _LEGEND_KEYS] for row in out.record["segments"]]
        return ((loaded.rgb, out.images["panoptic"]), _ui.result_line(out.summary, out.record["notes"]),
                out.images["stuff"], out.images["things"], rows, _ui.save_png(out.images["labels"], "segments"))

    run.click(segment, [panel.image, *settings], [merged, status, stuff, things, legend, label_file],
              api_name="panoptic", concurrency_id=_ui.MODEL_CONCURRENCY_ID,
              concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT)

    def live_frame(frame, mirror, model_name, *values):
        loaded = _ui.load_input(frame, LIVE_MAX_SIDE, mirror_back=not mirror)
        out = task.run(loaded, model=task.check_model(model_name), **options_from(*values))
        return out.images["panoptic"], out.summary

    _ui.wire_live(panel, live_view, live_frame, settings, still_outputs=[merged, stuff, things, legend, run])
