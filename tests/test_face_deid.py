"""Face de-identification pipeline: photos, videos, bad inputs, the endpoint and the command line."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, drawn_scene
from models import anonymize, images, retinaface, video
from models.tabs import face_deid

TASK = face_deid.TASK


def _options(**changes) -> dict:
    return {**TASK.parse_options([]), **changes}


@pytest.fixture(scope="module")
def random_mnet_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("user-checkpoints") / "my_retinaface.pth"
    torch.save(retinaface.build("retinaface-mnet").state_dict(), path)
    return str(path)


def _write_video(path, frames: list[np.ndarray], fps: float = 10.0) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _read_video(path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


def _outside_regions_unchanged(before: np.ndarray, after: np.ndarray, faces: list[dict], enlarge: float) -> bool:
    inside = np.zeros(before.shape[:2], bool)
    for face in faces:
        x0, y0, x1, y1 = anonymize.region_box(np.array(face["box"]), enlarge + 0.01, before.shape[1], before.shape[0])
        inside[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = True
    return np.array_equal(before[~inside], after[~inside])


# --- random weights, drawn images --------------------------------------------------------------------------------


def test_pipeline_with_random_weights_is_consistent(random_mnet_checkpoint):
    scene = images.load(drawn_scene(120, 160))
    out = TASK.run(scene, checkpoint=random_mnet_checkpoint, **_options(score_threshold=0.3))
    record = out.record
    assert out.images["anonymized"].shape == out.images["detections"].shape == (120, 160, 3)
    assert record["face_count"] == len(record["faces"]) and record["working_size"] == [160, 120]
    for face in record["faces"]:
        assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and 0.3 <= face["score"] <= 1
    assert _outside_regions_unchanged(scene.rgb, out.images["anonymized"], record["faces"], 1.2)
    json.dumps(record)


def test_user_checkpoint_through_the_endpoint(served_app, random_mnet_checkpoint, tmp_path):
    from gradio_client import Client, handle_file

    Image.fromarray(drawn_scene(120, 160)).save(tmp_path / "scene.png")
    settings = ["retinaface-mnet", "blur", 0.5, 0, 1.2, "ellipse", 0.1, 0.9, 0.4, 0, 0, False,
                handle_file(random_mnet_checkpoint)]
    (before, after), status, _, _ = Client(served_app, verbose=False).predict(
        handle_file(str(tmp_path / "scene.png")), *settings, api_name="/face_deid")
    assert Image.open(after).size == (160, 120) and "retinaface-mnet" in status


def test_video_with_random_weights_keeps_frames_rate_and_size(tmp_path, random_mnet_checkpoint):
    frames = [np.roll(drawn_scene(96, 128), shift * 4, axis=1) for shift in range(6)]
    _write_video(tmp_path / "clip.mp4", frames, fps=12)
    record = face_deid.run_video(tmp_path / "clip.mp4", tmp_path / "out.webm", checkpoint=random_mnet_checkpoint,
                                 **_options())
    written, fps = _read_video(tmp_path / "out.webm")
    assert record["frames"] == len(written) == 6 and record["size"] == [128, 96]
    assert written[0].shape == (96, 128, 3) and fps == pytest.approx(12, abs=0.5)
    assert record["audio"] == "dropped"


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00\x00\x18ftypmp42 but then garbage", "not a video this app can read"),
    (b"plain text, named like a video", "not a video this app can read"),
])
def test_corrupt_or_non_video_files_are_refused(tmp_path, content, message):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(video.VideoError, match=message):
        face_deid.run_video(bad, tmp_path / "out.webm", **_options())


def test_a_video_over_the_length_limit_is_refused_before_any_work(tmp_path):
    frames = [np.full((16, 16, 3), value % 255, np.uint8) for value in range(130)]
    _write_video(tmp_path / "long.mp4", frames, fps=1)  # 130 s
    with pytest.raises(video.VideoError, match="limit is 120 s"):
        face_deid.run_video(tmp_path / "long.mp4", tmp_path / "out.webm", **_options())
    assert not (tmp_path / "out.webm").exists()


# --- real weights ------------------------------------------------------------------------------------------------


@pytest.fixture
def people(shared) -> images.LoadedImage:
    return images.load(shared / "images" / "people_demo.jpg")


def test_one_face_found_at_the_face_and_only_it_is_changed(shared_weights, people):
    out = TASK.run(people, **_options(mode="pixelate"))
    faces = out.record["faces"]
    assert len(faces) == 1 and faces[0]["score"] > 0.9
    x1, y1, x2, y2 = faces[0]["box"]
    assert 150 < x1 < x2 < 280 and 150 < y1 < y2 < 300  # the player's face (the photo is 310 x 458)
    (lx, ly), (rx, ry) = faces[0]["landmarks"][:2]
    assert x1 < lx < rx < x2 and y1 < ly < y2  # eyes inside the box, image-left eye first
    assert _outside_regions_unchanged(people.rgb, out.images["anonymized"], faces, 1.2)
    assert not np.array_equal(people.rgb, out.images["anonymized"])
    assert "1 face" in out.summary


def test_crowd_at_original_resolution_and_blur_defeats_the_detector(shared_weights, shared):
    crowd = images.load(shared / "images" / "faces_crowd.jpg")
    before = TASK.run(crowd, **_options(mode="blur", strength=0.8))
    assert before.record["face_count"] > 400
    after = TASK.run(images.load(before.images["anonymized"]), **_options())
    print(f"crowd: {before.record['face_count']} faces before blur, {after.record['face_count']} after")
    assert after.record["face_count"] < before.record["face_count"] / 2


def test_no_faces_returns_the_image_unchanged_and_says_so(shared_weights):
    scene = images.load(drawn_scene(120, 160))
    out = TASK.run(scene, **_options())
    assert out.record["face_count"] == 0 and "no faces found" in out.summary
    assert np.array_equal(out.images["anonymized"], scene.rgb)


def test_real_video_finds_the_face_in_every_frame(shared_weights, people, tmp_path):
    frame = np.asarray(Image.fromarray(people.rgb).resize((240, 352)))
    _write_video(tmp_path / "clip.mp4", [frame] * 5, fps=10)
    record = face_deid.run_video(tmp_path / "clip.mp4", tmp_path / "out.webm", **_options(mode="fill"))
    assert record["faces_per_frame"] == [1] * 5


# --- the endpoint and the command line ----------------------------------------------------------------------------


def test_endpoint_and_cli_with_real_weights(shared_weights, shared, served_app, tmp_path):
    from gradio_client import Client, handle_file

    settings = ["retinaface-mnet", "eye_bar", 0.5, 0, 1.2, "ellipse", 0.1, 0.5, 0.4, 0, 0, True, None]
    (before, after), status, detections, table = Client(served_app, verbose=False).predict(
        handle_file(str(shared / "images" / "people_demo.jpg")), *settings, api_name="/face_deid")
    assert Image.open(before).size == Image.open(after).size == (310, 458)
    assert "1 face" in status and len(table["data"]) == 1

    _write_video(tmp_path / "clip.mp4", [np.asarray(Image.open(shared / "images" / "people_demo.jpg"))] * 3)
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "predict", "face-deid", str(shared / "images" / "people_demo.jpg"),
         str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out"), "--offline", "--set", "mode=pixelate"],
        capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "CVPG_HOME": str(shared_weights)})
    assert result.returncode == 0, result.stderr
    photo = json.loads((tmp_path / "out" / "people_demo.json").read_text())
    assert photo["face_count"] == 1 and photo["style"]["mode"] == "pixelate"
    video = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert video["frames"] == 3 and (tmp_path / "out" / "clip.webm").stat().st_size > 0
