"""Landmarks tab: human pose (Keypoint R-CNN) and 68 face landmarks (FAN), with the heatmaps behind the points."""
from __future__ import annotations

import gradio as gr

import assets
from models import fan, keypointrcnn
from models.tasks import get_task

from . import _ui

ID = "landmarks"
TITLE = "Landmarks"
EXPLANATION = """
**Landmark localisation** finds the important points of a body or a face. Regressing 2N coordinates directly is simple
but inaccurate; the classic alternative predicts one **heatmap** per keypoint and takes its peak. Networks learn them
from **Gaussian targets** centred on the annotated points. Keypoint R-CNN (He et al., 2017) predicts a 56x56 heatmap per
keypoint inside each person's box; FAN (Bulat & Tzimiropoulos, 2017) stacks four **hourglasses**, each refining the
previous one's heatmaps: pick a point and watch it sharpen from stack 1 to 4.
"""
LIVE_MAX_SIDE = 480


def build() -> None:
    task = get_task(ID)
    option = task.option
    gr.Markdown(EXPLANATION)
    with gr.Row():
        with gr.Column(scale=1):
            panel = _ui.input_panel(ID, task.max_side)
            model = gr.Radio([("Human pose: Keypoint R-CNN (17 COCO keypoints)", keypointrcnn.MODEL),
                              ("Face: FAN, 4 stacked hourglasses (68 points)", fan.MODEL)],
                             value=task.default_model, label="Model", elem_id=f"{ID}-model")
            keypoint = gr.Dropdown(_keypoint_choices(keypointrcnn.MODEL), value=-1, label="Keypoint for the heatmaps",
                                   elem_id=f"{ID}-keypoint")
            instance = gr.Number(value=0, precision=0, minimum=0, label="Person / face (0 = best scoring)")
            sigma = gr.Slider(0.5, 10, value=option("sigma").default, step=0.25, label="Gaussian target sigma (px)")
            refine = gr.Checkbox(value=True, label="Quarter-pixel refinement (face)",
                                 info="off: plain arg-max of the heatmap")
            with gr.Accordion("Thresholds and checkpoints", open=False):
                person_threshold = gr.Slider(0.05, 0.99, value=option("person_threshold").default, step=0.01,
                                             label="Person score threshold")
                keypoint_threshold = gr.Slider(-10, 30, value=option("keypoint_threshold").default, step=0.5,
                                               label="Keypoint score threshold (heatmap logit)")
                face_threshold = gr.Slider(0.05, 0.99, value=option("face_threshold").default, step=0.01,
                                           label="Face score threshold")
                max_faces = gr.Slider(1, 64, value=option("max_faces").default, step=1, label="At most this many faces")
                checkpoint = gr.File(label="Your own checkpoint for the chosen model (.pth / .pth.tar)",
                                     file_types=[".pth", ".tar", ".pt"], elem_id=f"{ID}-checkpoint")
            run = gr.Button("Find landmarks", variant="primary", elem_id=f"{ID}-run")
            gr.Examples([[assets.skimage_photo("astronaut"), fan.MODEL]], [panel.image, model],
                        label="Example (scikit-image's astronaut photo, public domain)")
        with gr.Column(scale=2):
            drawing = gr.Image(label="Landmarks", type="numpy", format="png", elem_id=f"{ID}-drawing", height=460)
            status = gr.Markdown(elem_id=f"{ID}-status")
            heat = gr.Image(label="The chosen keypoint's heatmap, warped back onto the image", type="numpy",
                            format="png", elem_id=f"{ID}-heatmap", height=420)
            target = gr.Image(label="Gaussian training target (left) vs the network's heatmap (right)", type="numpy",
                              format="png", elem_id=f"{ID}-target")
            stacks = gr.Image(label="FAN: the chosen point's heatmap after hourglass 1, 2, 3, 4", type="numpy",
                              format="png", elem_id=f"{ID}-stacks", visible=False)
            table = gr.JSON(label="Points", elem_id=f"{ID}-points")
            live_view = _ui.live_view(ID)

    model.change(lambda name: gr.update(choices=_keypoint_choices(name), value=-1), model, keypoint, queue=False,
                 api_visibility="private")
    settings = [model, keypoint, instance, sigma, refine, person_threshold, keypoint_threshold, face_threshold,
                max_faces]

    def options_from(keypoint_index, instance_index, sigma_px, refine_on, person_min, keypoint_min, face_min,
                     faces) -> dict:
        values = dict(keypoint=int(keypoint_index), instance=int(instance_index or 0), sigma=float(sigma_px),
                      refine=bool(refine_on), person_threshold=float(person_min), keypoint_threshold=float(keypoint_min),
                      face_threshold=float(face_min), max_faces=int(faces))
        return task.check_options(**values)

    @_ui.friendly_errors
    def find(progress=gr.Progress(), image=None, model_name=None, *values):
        *values, own_checkpoint = values
        loaded = _ui.load_input(image, task.max_side)
        out = task.run(loaded, model=task.check_model(model_name), checkpoint=own_checkpoint,
                       progress=_ui.progress_callback(progress), **options_from(*values))
        points = out.record.get("persons", out.record.get("faces"))
        return (out.images["drawing"], _ui.result_line(out.summary, out.record["notes"]), out.images["heatmap"],
                out.images["target_vs_prediction"],
                gr.update(value=out.images.get("stacks"), visible="stacks" in out.images), points)

    run.click(find, [panel.image, *settings, checkpoint], [drawing, status, heat, target, stacks, table],
              api_name="landmarks", concurrency_id=_ui.MODEL_CONCURRENCY_ID,
              concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT)

    def live_frame(frame, mirror, model_name, *values):
        loaded = _ui.load_input(frame, LIVE_MAX_SIDE, mirror_back=not mirror)
        out = task.run(loaded, model=task.check_model(model_name), **options_from(*values))
        return out.images["drawing"], out.summary

    _ui.wire_live(panel, live_view, live_frame, settings, still_outputs=[drawing, heat, target, table, run])


def _keypoint_choices(model: str) -> list[tuple[str, int]]:
    names = keypointrcnn.KEYPOINT_NAMES if model == keypointrcnn.MODEL else fan.FACE68_NAMES
    return [("the nose", -1)] + [(f"{index}: {name}", index) for index, name in enumerate(names)]
