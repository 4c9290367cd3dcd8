"""Instance segmentation tab: Mask R-CNN's masks, filters, a table, the label image, and its RPN proposals."""
from __future__ import annotations

import gradio as gr

import assets
from models import instances, maskrcnn, yolact
from models.tasks import get_task

from . import _ui

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
    task = get_task(ID)
    option = task.option
    gr.Markdown(EXPLANATION)
    with gr.Row():
        with gr.Column(scale=1):
            panel = _ui.input_panel(ID, task.max_side)
            model = gr.Dropdown([(spec.label, name) for name, spec in maskrcnn.MODELS.items()]
                                + [(spec.label, name) for name, spec in yolact.MODELS.items()],
                                value=task.default_model, label="Model", elem_id=f"{ID}-model")
            classes = gr.Dropdown(list(instances.CLASS_GROUPS) + list(instances.CLASS_NAMES), multiselect=True, value=[],
                                  label="Only these classes (empty: all)", elem_id=f"{ID}-classes")
            score = gr.Slider(0, 1, value=option("score_threshold").default, step=0.01, label="Score threshold",
                              elem_id=f"{ID}-score")
            mask_threshold = gr.Slider(0, 0.99, value=option("mask_threshold").default, step=0.01,
                                       label="Mask threshold")
            opacity = gr.Slider(0, 1, value=option("opacity").default, step=0.05, label="Mask opacity")
            with gr.Row():
                boxes = gr.Checkbox(value=True, label="Boxes")
                labels = gr.Checkbox(value=True, label="Labels")
            with gr.Accordion("Speed and the proposals view", open=False):
                working = gr.Slider(320, 1333, value=option("working_size").default, step=32,
                                    label="Working size (longest side the network sees)")
                proposals = gr.Slider(0, 1000, value=option("proposals").default, step=10,
                                      label="RPN proposals to show")
                rpn_top_n = gr.Slider(50, 2000, value=option("rpn_top_n").default, step=50,
                                      label="Proposals the box head examines")
            run = gr.Button("Segment", variant="primary", elem_id=f"{ID}-run")
            gr.Examples([[assets.skimage_photo("astronaut")], [assets.skimage_photo("coffee")]], [panel.image],
                        label="Examples (scikit-image sample photos, public domain / CC0)")
        with gr.Column(scale=2):
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
                detection = gr.Slider(1, 100, value=1, step=1, label="Detection to assemble (row of the table)",
                                      elem_id=f"{ID}-detection")
                prototypes = gr.Image(label="The 32 prototypes of this image", type="numpy", format="png",
                                      elem_id=f"{ID}-prototypes")
                coefficients = gr.Image(label="Its coefficients", type="numpy", format="png",
                                        elem_id=f"{ID}-coefficients")
                assembly = gr.Image(label="Assembled step by step: weighted prototypes, sum, sigmoid, crop",
                                    type="numpy", format="png", elem_id=f"{ID}-assembly")
            label_file = gr.File(label="Masks as a label image (PNG: 0 = background, n = row n)",
                                 elem_id=f"{ID}-labels")
            live_view = _ui.live_view(ID)

    settings = [model, classes, score, mask_threshold, opacity, boxes, labels, working, proposals, rpn_top_n,
                detection]

    def options_from(chosen, score_min, mask_min, alpha, show_boxes, show_labels, side, shown, top_n,
                     which) -> dict:
        values = dict(classes=",".join(chosen or []), score_threshold=float(score_min),
                      mask_threshold=float(mask_min), opacity=float(alpha), show_boxes=bool(show_boxes),
                      show_labels=bool(show_labels), working_size=int(side), proposals=int(shown),
                      rpn_top_n=int(top_n), detection=int(which))
        return task.check_options(**values)

    @_ui.friendly_errors
    def segment(progress=gr.Progress(), image=None, model_name=None, *values):
        loaded = _ui.load_input(image, task.max_side)
        out = task.run(loaded, model=task.check_model(model_name), progress=_ui.progress_callback(progress),
                       **options_from(*values))
        rows = [[row[key] for key in _ROW_KEYS] for row in out.record["instances"]]
        has_prototypes = "prototypes" in out.images
        return ((loaded.rgb, out.images["overlay"]), _ui.result_line(out.summary, out.record["notes"]), rows,
                out.images["proposals"], _ui.save_png(out.images["labels"], "instances"),
                gr.update(visible=has_prototypes), out.images.get("prototypes"), out.images.get("coefficients"),
                out.images.get("assembly"))

    run.click(segment, [panel.image, *settings],
              [slider, status, table, proposals_view, label_file, prototype_section, prototypes, coefficients,
               assembly],
              api_name="instance", concurrency_id=_ui.MODEL_CONCURRENCY_ID,
              concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT)

    def live_frame(frame, mirror, model_name, *values):
        loaded = _ui.load_input(frame, LIVE_MAX_SIDE, mirror_back=not mirror)
        out = task.run(loaded, model=task.check_model(model_name), **options_from(*values))
        return out.images["overlay"], out.summary

    _ui.wire_live(panel, live_view, live_frame, settings, still_outputs=[slider, table, run])
