"""CornerNet / CenterNet tab: objects (and, with CenterFace, faces) detected as keypoints, with the heatmaps that make
the boxes."""
from __future__ import annotations

import gradio as gr

from models.tabs import keypoint_detectors as tab

from . import _layout, _live, _ui, _widgets

ID = "keypoint-detectors"
TITLE = "CornerNet / CenterNet"
EXPLANATION = """
**Objects as keypoints.** CornerNet (Law & Deng, ECCV 2018) finds a box as a pair of corners: one heatmap per class for
top-left and one for bottom-right corners, *corner pooling* to see the edges that meet there, and an embedding per
corner so the two corners of one object get close values. CenterNet (Zhou et al., 2019) finds the box's centre as a
heatmap peak and regresses its width and height: no anchors, no NMS. The views show the heatmaps behind the boxes.
**CenterFace** (Xu et al., 2019) is CenterNet for faces: its views show the centre heatmap, the width and height it
predicts at every cell, the sub-cell offset of each peak, and five landmarks per face.
CornerNet's Hourglass-104 is a ~800 MB download and slow on a CPU (seconds per image): lower the working size.
"""
LIVE_MAX_SIDE = 480
_ROW_KEYS = ("label", "score", "box")
_MODEL_LABELS = {"centernet-r18": "CenterNet ResNet-18 (AP 25.9, fast)",
                 "centernet-r18-dcn": "CenterNet ResNet-18 + deformable convs (AP 29.5)",
                 "cornernet-hg104": "CornerNet Hourglass-104 (AP 41.2 with test-time flips; slow on CPU)",
                 "centerface": "CenterFace: faces and 5 landmarks (MobileNetV2, fast)"}


def build() -> None:
    layout = _layout.TabLayout(ID, EXPLANATION)
    task = layout.task
    with layout.inputs() as panel:
        model = gr.Radio([(_MODEL_LABELS.get(name, name), name) for name in task.models], value=task.default_model,
                         label="Model", elem_id=f"{ID}-model")
        options = _widgets.option_widgets(
            task, ("score_threshold", "classes", "heatmap_class", "working_size"),
            classes=dict(choices=["people", "vehicles", "animals", *tab.COCO_CLASSES], multiselect=True, value=[],
                         kind=gr.Dropdown))
        run = gr.Button("Detect", variant="primary", elem_id=f"{ID}-run")
        _widgets.scene_examples(panel.image)
    with layout.outputs():
        slider = gr.ImageSlider(label="Photo (left) vs detections (right)", format="png", type="numpy",
                                elem_id=f"{ID}-slider", max_height=520)
        status = gr.Markdown(elem_id=f"{ID}-status")
        views = gr.Gallery(label="How the boxes come out of the heatmaps", columns=2, height=420,
                           elem_id=f"{ID}-views", format="jpeg")
        table = gr.Dataframe(headers=list(_ROW_KEYS), label="Detections", interactive=False, elem_id=f"{ID}-table")
        record = _ui.record_view(ID)
        live_view = _ui.live_view(ID)

    @_ui.friendly_errors
    def keypoint_detectors(image, model=task.default_model, progress=gr.Progress(), **values):
        """Detect COCO objects as heatmap peaks (CenterNet: centres; CornerNet: corner pairs) or faces with five
        landmarks (CenterFace): the boxes, the heatmap views behind them, a table and the record."""
        loaded, out = _ui.run_task(task, image, model, values, progress=progress)
        gallery = [(out.images[key], caption) for key, caption in tab.views(model)[1:] if key in out.images]
        rows = [[row[key] for key in _ROW_KEYS] for row in out.record["detections"]]
        return ((loaded.rgb, out.images["detections"]), _ui.result_line(out.summary, out.record["notes"]), gallery,
                rows, out.record)

    _ui.bind(run.click, keypoint_detectors, [panel.image, model], options, [slider, status, views, table, record],
             api_name="keypoint_detectors")

    def grey_out_unused(model_name):
        unused = tab.ignored_options(model_name)
        return [gr.update(interactive=name not in unused) for name in options]

    model.change(grey_out_unused, model, list(options.values()), queue=False, api_visibility="private")
    _live.wire_live(task, panel, live_view, model, options, "detections", still_outputs=[slider, views, table, run],
                    max_side=LIVE_MAX_SIDE)
