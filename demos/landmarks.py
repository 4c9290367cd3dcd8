"""Landmarks tab: human pose (Keypoint R-CNN) and 68 face landmarks (FAN), with the heatmaps behind the points, and
the face detector's five regressed points set beside FAN's."""
from __future__ import annotations

import gradio as gr

import assets
from models import face_points, fan, keypointrcnn

from . import _layout, _live, _ui, _widgets

ID = "landmarks"
TITLE = "Landmarks"
EXPLANATION = """
**Landmark localisation** finds the important points of a body or a face. Regressing 2N coordinates directly is simple
but inaccurate; the classic alternative predicts one **heatmap** per keypoint and takes its peak. Networks learn them
from **Gaussian targets** centred on the annotated points. Keypoint R-CNN (He et al., 2017) predicts a 56x56 heatmap per
keypoint inside each person's box; FAN (Bulat & Tzimiropoulos, 2017) stacks four **hourglasses**, each refining the
previous one's heatmaps: pick a point and watch it sharpen from stack 1 to 4.
"""
COMPARISON = f"""
- **Coordinate regression** (the face detector: RetinaFace or CenterFace): the detector's head outputs the ten
  numbers of five points directly, offsets from its anchor or face centre, in the same pass that finds the face:
  almost free, but one number per coordinate with no spatial map behind it, so ambiguous faces pull the points toward
  an average face.
- **Heatmap classification** (FAN): every pixel of a 64x64 map per point is scored "the point is here" and the peak
  is taken: spatially explicit and more accurate, at the cost of a large network run on every face crop.

<span style="color:{face_points.REGRESSED_COLOR}">●</span> the detector's regressed points,
<span style="color:{face_points.HEATMAP_COLOR}">●</span> FAN's (eye centres: the mean of each eye's six points; nose
tip: point 30; mouth corners: 48 and 54), joined by a white line. FAN's official weights are not shipped with the
project: without them FAN is random and its points are noise.
"""
LIVE_MAX_SIDE = 480
DETECTOR_LABELS = {"retinaface-mnet": "RetinaFace, MobileNet-0.25 (fast)", "retinaface-r50": "RetinaFace, ResNet-50",
                   "centerface": "CenterFace"}
_COMPARISON_HEADERS = ["point", "detector (x, y)", "FAN (x, y)", "distance (px)"]


def build() -> None:
    layout = _layout.TabLayout(ID, EXPLANATION)
    task = layout.task
    with layout.inputs() as panel:
        model = gr.Radio([("Human pose: Keypoint R-CNN (17 COCO keypoints)", keypointrcnn.MODEL),
                          ("Face: FAN, 4 stacked hourglasses (68 points)", fan.MODEL)],
                         value=task.default_model, label="Model", elem_id=f"{ID}-model")
        options = _widgets.option_widgets(
            task, ("face_detector", "keypoint"),
            face_detector=dict(choices=[(DETECTOR_LABELS.get(name, name), name)
                                        for name in task.option("face_detector").choices]),
            keypoint=dict(choices=_keypoint_choices(keypointrcnn.MODEL), kind=gr.Dropdown))
        instance = task.option("instance")  # a number box: a 0-999 slider would be all but unusable
        options["instance"] = gr.Number(value=instance.default, precision=0, minimum=instance.minimum,
                                        maximum=instance.maximum, label=_widgets.label_of(instance),
                                        info=instance.help, elem_id=f"{ID}-instance")
        options |= _widgets.option_widgets(task, ("sigma", "refine"))
        with gr.Accordion("Thresholds and checkpoints", open=False):
            options |= _widgets.option_widgets(
                task, ("person_threshold", "keypoint_threshold", "face_threshold", "max_faces"))
            checkpoint = gr.File(label="Your own checkpoint for the chosen model (.pth / .pth.tar)",
                                 file_types=[".pth", ".tar", ".pt"], elem_id=f"{ID}-checkpoint")
        run = gr.Button("Find landmarks", variant="primary", elem_id=f"{ID}-run")
        gr.Examples([[assets.skimage_photo("astronaut"), fan.MODEL]], [panel.image, model],
                    label="Example (scikit-image's astronaut photo, public domain)")
    with layout.outputs():
        drawing = gr.Image(label="Landmarks", type="numpy", format="png", elem_id=f"{ID}-drawing", height=460)
        status = gr.Markdown(elem_id=f"{ID}-status")
        heat = gr.Image(label="The chosen keypoint's heatmap, warped back onto the image", type="numpy",
                        format="png", elem_id=f"{ID}-heatmap", height=420)
        target = gr.Image(label="Gaussian training target (left) vs the network's heatmap (right)", type="numpy",
                          format="png", elem_id=f"{ID}-target")
        stacks = gr.Image(label="FAN: the chosen point's heatmap after hourglass 1, 2, 3, 4", type="numpy",
                          format="png", elem_id=f"{ID}-stacks", visible=False)
        with gr.Accordion("Regressed coordinates vs heatmap peaks: the same five face points two ways", open=True,
                          visible=False) as comparison_section:
            gr.Markdown(COMPARISON)
            comparison = gr.Image(label="The chosen face: detector (cyan) vs FAN (magenta)", type="numpy",
                                  format="png", elem_id=f"{ID}-comparison", height=384)
            distances = gr.Dataframe(headers=_COMPARISON_HEADERS, label="Distance between the two, in pixels",
                                     interactive=False, elem_id=f"{ID}-distances")
        table = gr.JSON(label="Points", elem_id=f"{ID}-points")
        record = _ui.record_view(ID)
        live_view = _ui.live_view(ID)

    model.change(lambda name: gr.update(choices=_keypoint_choices(name), value=-1), model, options["keypoint"],
                 queue=False, api_visibility="private")

    @_ui.friendly_errors
    def landmarks(image, model=task.default_model, checkpoint=None, progress=gr.Progress(), **values):
        """Find 17 body keypoints per person (Keypoint R-CNN) or 68 face landmarks per face (FAN) from heatmaps; for
        faces, also the face detector's five regressed points and their distance to FAN's."""
        _, out = _ui.run_task(task, image, model, values, checkpoint=checkpoint, progress=progress)
        record = out.record
        face = record["target"] == "face"
        rows = []
        if face and record["regressed_vs_heatmap"]["faces"]:
            chosen = record["regressed_vs_heatmap"]["faces"][record["view"]["instance"]]
            rows = [[row["name"], _xy(row["regressed"]), _xy(row["fan"]), row["distance_px"]]
                    for row in chosen["points"]]
        return (out.images["drawing"], _ui.result_line(out.summary, record["notes"]), out.images["heatmap"],
                out.images["target_vs_prediction"], gr.update(value=out.images.get("stacks"), visible=face),
                gr.update(visible=face), out.images.get("regressed_vs_heatmap"), rows,
                record.get("persons", record.get("faces")), record)

    _ui.bind(run.click, landmarks, [panel.image, model, checkpoint], options,
             [drawing, status, heat, target, stacks, comparison_section, comparison, distances, table, record],
             api_name="landmarks")
    _live.wire_live(task, panel, live_view, model, options, "drawing",
                    still_outputs=[drawing, heat, target, table, run], max_side=LIVE_MAX_SIDE)


def _xy(point: list[float]) -> str:
    return f"{point[0]:.1f}, {point[1]:.1f}"


def _keypoint_choices(model: str) -> list[tuple[str, int]]:
    names = keypointrcnn.KEYPOINT_NAMES if model == keypointrcnn.MODEL else fan.FACE68_NAMES
    return [("the nose", -1)] + [(f"{index}: {name}", index) for index, name in enumerate(names)]
