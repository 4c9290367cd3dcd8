"""Instance segmentation tab: Mask R-CNN's masks, filters, a table, the label image, and its RPN proposals."""
from __future__ import annotations

import gradio as gr

from models import instances, maskrcnn, yolact

from . import _layout, _live, _ui, _widgets

ID = "instance"
TITLE = "Instance segmentation"
EXPLANATION = """
**Instance segmentation** is semantic segmentation plus telling the instances apart: every person, car or dog gets
its own mask. **Mask R-CNN** (He et al., ICCV 2017) is Faster R-CNN plus a mask branch: a region proposal network
suggests boxes (*How it works* shows them), RoIAlign crops their features without quantisation, and small heads
classify each box, refine it and paint a 28x28 mask inside it.
"""
LIVE_MAX_SIDE = 480
_ROW_KEYS = ("id", "label", "score", "box", "mask_area_px")


def build() -> None:
    layout = _layout.TabLayout(ID, EXPLANATION)
    task = layout.task
    labels = {name: spec.label for name, spec in {**maskrcnn.MODELS, **yolact.MODELS}.items()}
    with layout.inputs() as panel:
        model = _widgets.model_widget(task, labels)
        options = _widgets.option_widgets(
            task, ("classes", "score_threshold", "mask_threshold", "opacity"),
            classes=dict(choices=list(instances.CLASS_GROUPS) + list(instances.CLASS_NAMES), multiselect=True,
                         value=[], kind=gr.Dropdown))
        with gr.Row():
            options |= _widgets.option_widgets(task, ("show_boxes", "show_labels"))
        with gr.Accordion("Speed and the proposals view", open=False):
            options |= _widgets.option_widgets(task, ("working_size", "proposals", "rpn_top_n"))
        run = gr.Button("Segment", variant="primary", elem_id=f"{ID}-run")
        _widgets.scene_examples(panel.image)
    with layout.outputs():
        slider = gr.ImageSlider(label="Photo (left) vs instances (right)", format="png", type="numpy",
                                elem_id=f"{ID}-slider", max_height=560)
        status = gr.Markdown(elem_id=f"{ID}-status")
        table = gr.Dataframe(headers=list(_ROW_KEYS), label="Instances", interactive=False, elem_id=f"{ID}-table")
        with gr.Accordion("How it works: the RPN's proposals (Mask R-CNN) or the prior boxes (YOLACT)",
                          open=False):
            proposals_view = gr.Image(type="numpy", format="jpeg", elem_id=f"{ID}-proposals", show_label=False)
        with gr.Accordion("YOLACT: masks as linear combinations of prototypes", open=True,
                          visible=False) as prototype_section:
            gr.Markdown("YOLACT (Bolya et al., ICCV 2019) makes 32 **prototype** masks for the whole image once; "
                        "each detection predicts 32 **coefficients**. Its mask is sigmoid(prototypes x "
                        "coefficients), cropped to its box.")
            options |= _widgets.option_widgets(task, ("detection",))
            prototypes = gr.Image(label="The 32 prototypes of this image", type="numpy", format="png",
                                  elem_id=f"{ID}-prototypes")
            coefficients = gr.Image(label="Its coefficients", type="numpy", format="png",
                                    elem_id=f"{ID}-coefficients")
            assembly = gr.Image(label="Assembled step by step: weighted prototypes, sum, sigmoid, crop",
                                type="numpy", format="png", elem_id=f"{ID}-assembly")
        label_file = gr.File(label="Masks as a label image (PNG: 0 = background, n = row n)",
                             elem_id=f"{ID}-labels")
        record = _ui.record_view(ID)
        live_view = _ui.live_view(ID)

    @_ui.friendly_errors
    def instance(image, model=task.default_model, progress=gr.Progress(), **values):
        """Segment every object instance (COCO's 80 classes) with Mask R-CNN or YOLACT: masks, boxes, a table."""
        loaded, out = _ui.run_task(task, image, model, values, progress=progress)
        rows = [[row[key] for key in _ROW_KEYS] for row in out.record["instances"]]
        has_prototypes = "prototypes" in out.images
        return ((loaded.rgb, out.images["overlay"]), _ui.result_line(out.summary, out.record["notes"]), rows,
                out.images["proposals"], _ui.save_png(out.images["labels"], "instances"),
                gr.update(visible=has_prototypes), out.images.get("prototypes"), out.images.get("coefficients"),
                out.images.get("assembly"), out.record)

    _ui.bind(run.click, instance, [panel.image, model], options,
             [slider, status, table, proposals_view, label_file, prototype_section, prototypes, coefficients,
              assembly, record], api_name="instance")
    _live.wire_live(task, panel, live_view, model, options, "overlay", still_outputs=[slider, table, run],
                    max_side=LIVE_MAX_SIDE)
