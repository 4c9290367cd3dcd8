"""CornerNet / CenterNet tab: objects detected as keypoints, with the heatmaps that make the boxes."""
from __future__ import annotations

import gradio as gr

import assets
from models.tabs import keypoint_detectors as tab
from models.tasks import get_task

from . import _ui

ID = "keypoint-detectors"
TITLE = "CornerNet / CenterNet"
EXPLANATION = """
**Objects as keypoints.** CornerNet (Law & Deng, ECCV 2018) finds a box as a pair of corners: one heatmap per class for
top-left and one for bottom-right corners, *corner pooling* to see the edges that meet there, and an embedding per
corner so the two corners of one object get close values. CenterNet (Zhou et al., 2019) finds the box's centre as a
heatmap peak and regresses its width and height: no anchors, no NMS. The views show the heatmaps behind the boxes.
CornerNet's Hourglass-104 is a ~800 MB download and slow on a CPU (seconds per image): lower the working size.
"""
LIVE_MAX_SIDE = 480
_ROW_KEYS = ("label", "score", "box")
_MODEL_LABELS = {"centernet-r18": "CenterNet ResNet-18 (AP 25.9, fast)",
                 "centernet-r18-dcn": "CenterNet ResNet-18 + deformable convs (AP 29.5)",
                 "cornernet-hg104": "CornerNet Hourglass-104 (AP 41.2 with test-time flips; slow on CPU)"}


def build() -> None:
    task = get_task(ID)
    option = task.option
    gr.Markdown(EXPLANATION)
    with gr.Row():
        with gr.Column(scale=1):
            panel = _ui.input_panel(ID, task.max_side)
            model = gr.Radio([(_MODEL_LABELS.get(name, name), name) for name in task.models], value=task.default_model,
                             label="Model", elem_id=f"{ID}-model")
            score = gr.Slider(0, 1, value=option("score_threshold").default, step=0.01, label="Score threshold",
                              elem_id=f"{ID}-score")
            classes = gr.Dropdown(["people", "vehicles", "animals", *tab.COCO_CLASSES], multiselect=True, value=[],
                                  label="Only these classes (empty: all)")
            heatmap_class = gr.Dropdown(list(option("heatmap_class").choices), value="all",
                                        label="Heatmap of class (all: maximum over the 80)")
            working = gr.Slider(0, 2048, value=option("working_size").default, step=32,
                                label="Working size (0: the photo's own size)", elem_id=f"{ID}-working")
            run = gr.Button("Detect", variant="primary", elem_id=f"{ID}-run")
            gr.Examples([[assets.skimage_photo("astronaut")], [assets.skimage_photo("coffee")]], [panel.image],
                        label="Examples (scikit-image sample photos, public domain / CC0)")
        with gr.Column(scale=2):
            slider = gr.ImageSlider(label="Photo (left) vs detections (right)", format="png", type="numpy",
                                    elem_id=f"{ID}-slider", max_height=520)
            status = gr.Markdown(elem_id=f"{ID}-status")
            views = gr.Gallery(label="How the boxes come out of the heatmaps", columns=2, height=420,
                               elem_id=f"{ID}-views", format="jpeg")
            table = gr.Dataframe(headers=list(_ROW_KEYS), label="Detections", interactive=False, elem_id=f"{ID}-table")
            live_view = _ui.live_view(ID)

    settings = [model, score, classes, heatmap_class, working]

    def options_from(score_min, chosen, heat_class, side) -> dict:
        values = dict(score_threshold=float(score_min), classes=",".join(chosen or []), heatmap_class=heat_class,
                      working_size=int(side))
        return task.check_options(**values)

    @_ui.friendly_errors
    def detect(progress=gr.Progress(), image=None, model_name=None, *values):
        loaded = _ui.load_input(image, task.max_side)
        model_name = task.check_model(model_name)
        out = task.run(loaded, model=model_name, progress=_ui.progress_callback(progress), **options_from(*values))
        gallery = [(out.images[key], caption) for key, caption in tab.views(model_name)[1:] if key in out.images]
        rows = [[row[key] for key in _ROW_KEYS] for row in out.record["detections"]]
        return ((loaded.rgb, out.images["detections"]), _ui.result_line(out.summary, out.record["notes"]), gallery,
                rows)

    run.click(detect, [panel.image, *settings], [slider, status, views, table], api_name="keypoint_detectors",
              concurrency_id=_ui.MODEL_CONCURRENCY_ID, concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT)

    def live_frame(frame, mirror, model_name, *values):
        loaded = _ui.load_input(frame, LIVE_MAX_SIDE, mirror_back=not mirror)
        out = task.run(loaded, model=task.check_model(model_name), **options_from(*values))
        return out.images["detections"], out.summary

    _ui.wire_live(panel, live_view, live_frame, settings, still_outputs=[slider, views, table, run])
