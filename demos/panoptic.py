"""Panoptic segmentation tab: Mask2Former labels every pixel; stuff and things shown apart and merged."""
from __future__ import annotations

import gradio as gr

from models import mask2former

from . import _layout, _live, _ui, _widgets

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
    layout = _layout.TabLayout(ID, EXPLANATION)
    task = layout.task
    with layout.inputs() as panel:
        model = _widgets.model_widget(task, mask2former.LABELS)
        options = _widgets.option_widgets(task, ("threshold", "overlap_threshold", "mask_threshold", "opacity",
                                                 "show_labels", "working_size"))
        run = gr.Button("Segment every pixel", variant="primary", elem_id=f"{ID}-run")
        _widgets.scene_examples(panel.image)
    with layout.outputs():
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
        record = _ui.record_view(ID)
        live_view = _ui.live_view(ID)

    @_ui.friendly_errors
    def panoptic(image, model=task.default_model, progress=gr.Progress(), **values):
        """Label every pixel with Mask2Former (COCO panoptic): stuff by class, things by class and instance, with a
        legend and a segment map."""
        loaded, out = _ui.run_task(task, image, model, values, progress=progress)
        rows = [[row[key] for key in _LEGEND_KEYS] for row in out.record["segments"]]
        return ((loaded.rgb, out.images["panoptic"]), _ui.result_line(out.summary, out.record["notes"]),
                out.images["stuff"], out.images["things"], rows, _ui.save_png(out.images["labels"], "segments"),
                out.record)

    _ui.bind(run.click, panoptic, [panel.image, model], options,
             [merged, status, stuff, things, legend, label_file, record], api_name="panoptic")
    _live.wire_live(task, panel, live_view, model, options, "panoptic",
                    still_outputs=[merged, stuff, things, legend, run], max_side=LIVE_MAX_SIDE)
