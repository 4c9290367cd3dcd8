"""Face de-identification tab: RetinaFace finds faces and landmarks; blur, pixelate, fill, eye bar or a drawn mask."""
from __future__ import annotations

import gradio as gr

import assets
from models import anonymize
from models.tabs import face_deid
from models.tasks import get_task

from . import _ui

ID = "face-deid"
TITLE = "Face de-identification"
EXPLANATION = """
**Face de-identification** hides the faces in a photo, a webcam stream or a video before you share it. The detector is
**RetinaFace** (Deng et al., CVPR 2020): a feature pyramid over a light MobileNet-0.25 (or a ResNet-50), and at every
anchor three small heads predict *is this a face*, *where is its box* and *where are its five landmarks* (eyes, nose,
mouth corners). The landmarks place the eye bar and the drawn mask; only pixels inside each face region change.
"""
LIVE_MAX_SIDE = 640
_MODE_LABELS = {"blur": "Blur", "pixelate": "Pixelate", "fill": "Solid fill", "eye_bar": "Eye bar", "mask": "Drawn mask"}


def build() -> None:
    task = get_task(ID)
    option = task.option
    gr.Markdown(EXPLANATION)
    with gr.Row():
        with gr.Column(scale=1):
            panel = _ui.input_panel(ID, task.max_side)
            model = gr.Dropdown([("RetinaFace MobileNet-0.25 (fast, 1.8 MB)", "retinaface-mnet"),
                                 ("RetinaFace ResNet-50 (accurate, 105 MB)", "retinaface-r50")],
                                value=task.default_model, label="Detector", elem_id=f"{ID}-model")
            mode = gr.Radio([(label, name) for name, label in _MODE_LABELS.items()], value="blur", label="Hide faces with",
                            elem_id=f"{ID}-mode")
            strength = gr.Slider(0, 1, value=option("strength").default, step=0.05, label="Strength",
                                 info="blur radius; for pixelate, larger blocks")
            show = gr.Checkbox(value=True, label="Show detections (boxes, scores, landmarks)")
            with gr.Accordion("Region and detection", open=False):
                shape = gr.Radio(list(anonymize.SHAPES), value=option("shape").default, label="Region shape")
                enlarge = gr.Slider(1.0, 2.5, value=option("enlarge").default, step=0.05, label="Enlarge region")
                feather = gr.Slider(0, 0.5, value=option("feather").default, step=0.02, label="Feather (soft edge)")
                block = gr.Slider(0, 64, value=0, step=1, label="Pixelate block (px, 0 = from strength)")
                score = gr.Slider(0.05, 0.99, value=option("score_threshold").default, step=0.01,
                                  label="Face score threshold")
                nms = gr.Slider(0.1, 0.9, value=option("nms_iou").default, step=0.05, label="NMS IoU")
                working = gr.Slider(0, 2048, value=0, step=32, label="Working resolution (longest side, 0 = original)",
                                    info="smaller is faster; small faces need the original")
                min_face = gr.Slider(0, 200, value=0, step=1, label="Minimum face size (px)")
                checkpoint = gr.File(label="Your own RetinaFace checkpoint (.pth, biubug6 format of the chosen detector)",
                                     file_types=[".pth", ".pt"], elem_id=f"{ID}-checkpoint")
            run = gr.Button("Hide faces", variant="primary", elem_id=f"{ID}-run")
            gr.Examples([[assets.skimage_photo("astronaut")]], [panel.image],
                        label="Example (scikit-image's astronaut photo, public domain)")
        with gr.Column(scale=2):
            slider = gr.ImageSlider(label="Before / after", format="png", type="numpy", elem_id=f"{ID}-slider",
                                    max_height=640)
            status = gr.Markdown(elem_id=f"{ID}-status")
            detections = gr.Image(label="Detections", type="numpy", format="png", elem_id=f"{ID}-detections",
                                  height=420)
            table = gr.Dataframe(headers=["#", "score", "box (x1, y1, x2, y2)", "landmarks"], label="Faces",
                                 interactive=False, elem_id=f"{ID}-table")
            live_view = _ui.live_view(ID)
            videos = _ui.video_section(ID, "anonymised")

    settings = [model, mode, strength, block, enlarge, shape, feather, score, nms, working, min_face, show]

    def options_from(mode_name, strength_value, block_px, enlarge_by, shape_name, feather_by, score_min, nms_iou,
                     working_side, min_face_px, show_detections) -> dict:
        values = dict(mode=mode_name, strength=float(strength_value), block=int(block_px), enlarge=float(enlarge_by),
                      shape=shape_name, feather=float(feather_by), score_threshold=float(score_min),
                      nms_iou=float(nms_iou), working_side=int(working_side), min_face=int(min_face_px),
                      show_detections=bool(show_detections))
        return task.check_options(**values)

    @_ui.friendly_errors
    def hide_faces(progress=gr.Progress(), image=None, model_name=None, *values):
        *values, own_checkpoint = values
        loaded = _ui.load_input(image, task.max_side)
        out = task.run(loaded, model=task.check_model(model_name), checkpoint=own_checkpoint,
                       progress=_ui.progress_callback(progress), **options_from(*values))
        rows = [[index + 1, face["score"], ", ".join(f"{v:.0f}" for v in face["box"]),
                 "; ".join(f"({x:.0f}, {y:.0f})" for x, y in face["landmarks"])]
                for index, face in enumerate(out.record["faces"])]
        return ((loaded.rgb, out.images["anonymized"]), _ui.result_line(out.summary, out.record["notes"]),
                gr.update(value=out.images.get("detections"), visible="detections" in out.images), rows)

    run.click(hide_faces, [panel.image, *settings, checkpoint], [slider, status, detections, table], api_name="face_deid",
              concurrency_id=_ui.MODEL_CONCURRENCY_ID, concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT)

    @_ui.friendly_errors
    def hide_in_video(progress=gr.Progress(), clip=None, model_name=None, *values):
        if not clip:
            raise gr.Error("Upload a video first.")
        record = face_deid.run_video(clip, _ui.video_target("anonymised"), model=task.check_model(model_name),
                                     progress=_ui.progress_callback(progress), **options_from(*values))
        faces = f"{record['max_faces']} face{'s' if record['max_faces'] != 1 else ''}"
        return record["output"], _ui.video_summary(record, f", up to {faces} in a frame")

    videos.run.click(hide_in_video, [videos.video_in, *settings], [videos.video_out, videos.status],
                     api_name="face_deid_video", concurrency_id=_ui.MODEL_CONCURRENCY_ID,
                     concurrency_limit=_ui.MODEL_CONCURRENCY_LIMIT)

    def live_frame(frame, mirror, model_name, *values):
        loaded = _ui.load_input(frame, LIVE_MAX_SIDE, mirror_back=not mirror)
        options = options_from(*values)
        out = task.run(loaded, model=task.check_model(model_name), **{**options, "show_detections": False})
        return out.images["anonymized"], out.summary

    _ui.wire_live(panel, live_view, live_frame, settings, still_outputs=[slider, detections, table, run])
