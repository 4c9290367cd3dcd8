"""RetinaFace: official layouts, anchors and decoding on hand-made outputs, random-weight pipeline, real faces."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import drawn_scene
from models import retinaface as rf, runtime, weights

MANIFESTS = {"retinaface-mnet": "retinaface_mnet", "retinaface-r50": "retinaface_r50"}


def read_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area(a) + area(b) - inter)


def assert_well_formed(faces: rf.FaceDetections, width: int, height: int) -> None:
    n = len(faces)
    assert faces.boxes.shape == (n, 4) and faces.scores.shape == (n,) and faces.landmarks.shape == (n, 5, 2)
    assert faces.boxes.dtype == faces.scores.dtype == faces.landmarks.dtype == np.float32
    assert faces.image_size == (width, height)
    assert np.isfinite(faces.boxes).all() and np.isfinite(faces.landmarks).all()
    assert ((faces.scores >= 0) & (faces.scores <= 1)).all()
    assert (np.diff(faces.scores) <= 0).all(), "sorted by score, highest first"
    assert (faces.boxes[:, 2] >= faces.boxes[:, 0]).all() and (faces.boxes[:, 3] >= faces.boxes[:, 1]).all()


# --- architecture and checkpoints ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_state_dict_layout_equals_the_reference_manifest(shared, name):
    manifest = json.loads((shared / "layouts" / f"{MANIFESTS[name]}.json").read_text())
    expected = [[key, list(shape), dtype] for key, shape, dtype in manifest["keys"]]
    actual = [[key, list(value.shape), str(value.dtype).removeprefix("torch.")]
              for key, value in rf.build(name).state_dict().items()]
    assert actual == expected


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_anchor_settings_match_the_manifest_config(shared, name):
    cfg = json.loads((shared / "layouts" / f"{MANIFESTS[name]}.json").read_text())["config"]["cfg"]
    variant = rf.VARIANTS[name]
    assert [list(sizes) for sizes in variant.min_sizes] == cfg["min_sizes"]
    assert list(variant.steps) == cfg["steps"] and list(variant.variance) == cfg["variance"]
    assert variant.out_channels == cfg["out_channel"]


def test_checkpoints_are_catalogued_for_the_face_tab():
    mnet, r50 = weights.get("retinaface-mnet"), weights.get("retinaface-r50")
    assert mnet.task == r50.task == "face-deid"
    assert mnet.sha256.startswith("ed6fa7d4") and mnet.bytes == 1_789_735
    assert r50.url.endswith("/detection_Resnet50_Final.pth") and r50.bytes == 109_497_761


def test_dataparallel_prefix_is_stripped_and_the_dict_loads_strictly():
    torch.manual_seed(0)
    state = {f"module.{key}": value for key, value in rf.build("retinaface-mnet").state_dict().items()}
    net = rf._from_state("retinaface-mnet", weights.unwrap(state))
    assert torch.equal(net.LandmarkHead[2].conv1x1.weight, state["module.LandmarkHead.2.conv1x1.weight"])


def test_a_user_checkpoint_in_the_official_format_loads_and_is_cached_by_content(tmp_path):
    torch.manual_seed(1)
    state = {f"module.{key}": value for key, value in rf.build("retinaface-mnet").state_dict().items()}
    path = tmp_path / "my_retinaface.pth"
    torch.save(state, path)
    net = rf.load("retinaface-mnet", torch.device("cpu"), checkpoint_file=str(path))
    assert torch.equal(net.BboxHead[0].conv1x1.weight, state["module.BboxHead.0.conv1x1.weight"])
    assert rf.load("retinaface-mnet", torch.device("cpu"), checkpoint_file=str(path)) is net
    assert not net.training


def test_a_checkpoint_of_the_other_variant_is_refused_with_a_reason():
    state = rf.build("retinaface-mnet").state_dict()
    with pytest.raises(weights.WeightsError, match="does not fit retinaface-r50"):
        rf._from_state("retinaface-r50", state)


def test_missing_weights_offline_name_the_file():
    with pytest.raises(weights.MissingWeightsError, match="detection_Resnet50_Final.pth"):
        rf.load("retinaface-r50", torch.device("cpu"))


# --- anchors and decoding --------------------------------------------------------------------------------------


def reference_priors(height: int, width: int, min_sizes, steps) -> list[list[float]]:
    """The anchor order of the reference, spelled out as loops: level, row, column, anchor size."""
    out = []
    for sizes, step in zip(min_sizes, steps):
        for row, col in itertools.product(range(math.ceil(height / step)), range(math.ceil(width / step))):
            for size in sizes:
                out.append([(col + 0.5) * step / width, (row + 0.5) * step / height, size / width, size / height])
    return out


def test_prior_count_and_shape_for_a_vga_frame():
    priors = rf.prior_boxes(480, 640)
    assert priors.shape == (2 * (80 * 60 + 40 * 30 + 20 * 15), 4) == (12600, 4)
    assert priors.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_priors_follow_the_reference_order_on_an_odd_size(name):
    variant = rf.VARIANTS[name]
    priors = rf.prior_boxes(100, 150, variant.min_sizes, variant.steps)
    expected = torch.tensor(reference_priors(100, 150, variant.min_sizes, variant.steps))
    assert priors.shape == (2 * (13 * 19 + 7 * 10 + 4 * 5), 4)
    torch.testing.assert_close(priors, expected)


def test_network_predicts_one_row_per_prior_on_an_odd_size():
    net = rf.build("retinaface-mnet").eval()
    with torch.inference_mode():
        loc, conf, landm = net(torch.zeros(1, 3, 100, 150))
    count = len(rf.prior_boxes(100, 150))
    assert loc.shape == (1, count, 4) and conf.shape == (1, count, 2) and landm.shape == (1, count, 10)
    torch.testing.assert_close(conf.sum(-1), torch.ones(1, count))


def test_zero_offsets_decode_to_the_prior_boxes_themselves():
    priors = rf.prior_boxes(64, 96)
    boxes = rf.decode_boxes(torch.zeros(len(priors), 4), priors)
    torch.testing.assert_close(boxes[:, :2], priors[:, :2] - priors[:, 2:] / 2)
    torch.testing.assert_close(boxes[:, 2:], priors[:, :2] + priors[:, 2:] / 2)
    points = rf.decode_landmarks(torch.zeros(len(priors), 10), priors)
    torch.testing.assert_close(points, priors[:, None, :2].expand(-1, 5, 2))


def test_a_known_offset_decodes_to_the_expected_box_and_points():
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.1]])
    # centre moves by offset * 0.1 * prior size; width doubles (exp(0.2 * ln2 / 0.2)); height unchanged
    loc = torch.tensor([[1.0, 2.0, math.log(2) / 0.2, 0.0]])
    torch.testing.assert_close(rf.decode_boxes(loc, prior), torch.tensor([[0.32, 0.47, 0.72, 0.57]]))
    landm = torch.tensor([[1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 3.0, -3.0]])
    expected = torch.tensor([[[0.52, 0.51], [0.48, 0.50], [0.50, 0.50], [0.50, 0.52], [0.56, 0.47]]])
    torch.testing.assert_close(rf.decode_landmarks(landm, prior), expected)


def hand_made_outputs(scores: list[float], priors: torch.Tensor):
    count = len(priors)
    conf = torch.tensor([[1 - s, s] for s in scores])
    return torch.zeros(count, 4), conf, torch.zeros(count, 10)


def test_detections_are_scaled_to_pixels_sorted_and_nms_drops_the_weaker_duplicate():
    priors = torch.tensor([
        [0.25, 0.50, 0.20, 0.40],  # a face
        [0.26, 0.51, 0.20, 0.40],  # the same face again, weaker: NMS removes it
        [0.75, 0.50, 0.10, 0.20],  # another face, separate
        [0.50, 0.10, 0.10, 0.10],  # below the score threshold
    ])
    loc, conf, landm = hand_made_outputs([0.8, 0.7, 0.9, 0.3], priors)
    faces = rf.detections_from_outputs(loc, conf, landm, priors, image_size=(200, 100))
    assert len(faces) == 2 and faces.image_size == (200, 100)
    np.testing.assert_allclose(faces.scores, [0.9, 0.8], rtol=1e-6)
    np.testing.assert_allclose(faces.boxes, [[140, 40, 160, 60], [30, 30, 70, 70]], atol=1e-4)
    np.testing.assert_allclose(faces.landmarks[1], np.tile([50.0, 50.0], (5, 1)), atol=1e-4)
    assert_well_formed(faces, 200, 100)
    looser = rf.detections_from_outputs(loc, conf, landm, priors, image_size=(200, 100), nms_iou=0.95)
    assert len(looser) == 3  # the duplicate survives when the overlap allowed is higher than theirs


def test_min_face_drops_small_boxes_and_nothing_found_is_well_formed():
    priors = torch.tensor([[0.25, 0.50, 0.20, 0.40], [0.75, 0.50, 0.10, 0.20]])
    loc, conf, landm = hand_made_outputs([0.8, 0.9], priors)
    faces = rf.detections_from_outputs(loc, conf, landm, priors, image_size=(200, 100), min_face=30)
    np.testing.assert_allclose(faces.boxes, [[30, 30, 70, 70]], atol=1e-4)  # the 20 x 20 px face is gone
    empty = rf.detections_from_outputs(loc, conf, landm, priors, image_size=(200, 100), score_threshold=0.95)
    assert len(empty) == 0
    assert_well_formed(empty, 200, 100)


# --- preprocessing ---------------------------------------------------------------------------------------------


def test_preprocessing_is_bgr_minus_the_means_without_scaling():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[...] = (10, 20, 30)
    x = rf.preprocess(rgb)
    assert x.shape == (1, 3, 4, 6) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([30 - 104.0, 20 - 117.0, 10 - 123.0]))


def test_working_size_only_ever_shrinks_to_the_longer_side():
    assert rf.working_size(1600, 898, None) == (1600, 898)
    assert rf.working_size(1600, 898, 640) == (640, 359)
    assert rf.working_size(310, 458, 229) == (155, 229)
    assert rf.working_size(310, 458, 1000) == (310, 458)
    assert rf.preprocess(drawn_scene(96, 128), max_side=64).shape == (1, 3, 48, 64)


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3))])
def test_inputs_other_than_rgb_uint8_are_refused(bad):
    with pytest.raises(ValueError, match="RGB uint8"):
        rf.preprocess(bad)


# --- random weights --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, height, width", [("retinaface-mnet", 96, 128), ("retinaface-r50", 64, 64)])
def test_random_weight_model_returns_well_formed_detections(name, height, width):
    torch.manual_seed(0)
    net = rf.build(name).eval()
    faces = rf.predict(net, drawn_scene(height, width), score_threshold=0.0, nms_iou=0.3)
    assert len(faces) > 0
    assert_well_formed(faces, width, height)


def test_random_weight_model_at_a_working_size_reports_original_coordinates():
    torch.manual_seed(0)
    net = rf.build("retinaface-mnet").eval()
    scene = drawn_scene(120, 200)
    faces = rf.predict(net, scene, score_threshold=0.0, max_side=100)
    assert_well_formed(faces, 200, 120)
    # the anchors of a 100 x 60 input, mapped to 200 x 120, span the whole original image
    centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    assert centres[:, 0].max() > 100 and centres[:, 1].max() > 60


# --- real weights ----------------------------------------------------------------------------------------------


@pytest.fixture
def mnet(shared_weights):
    return rf.load("retinaface-mnet", torch.device("cpu"))


def test_load_gives_one_shared_eval_model(mnet):
    assert rf.load("retinaface-mnet", torch.device("cpu")) is mnet
    assert rf.cache_key("retinaface-mnet", torch.device("cpu")) in runtime.MODELS
    assert not mnet.training and next(mnet.parameters()).dtype == torch.float32


def test_the_waving_player_has_exactly_one_face_at_his_face(shared, mnet):
    faces = rf.predict(mnet, read_rgb(shared / "images" / "people_demo.jpg"))  # 310 x 458 photo
    assert len(faces) == 1 and faces.scores[0] > 0.9
    x1, y1, x2, y2 = faces.boxes[0]
    # the face spans about x 180-250, y 180-270 (hair to chin); the raised hand is far above and left
    assert 165 < x1 < 200 and 235 < x2 < 265 and 165 < y1 < 200 and 250 < y2 < 290
    left_eye, right_eye, nose, mouth_left, mouth_right = faces.landmarks[0]
    for x, y in (left_eye, right_eye):
        assert x1 < x < x2 and y1 < y < (y1 + y2) / 2, "eyes inside the box, in its upper half"
    assert left_eye[0] < nose[0] < right_eye[0], "left eye is the one on the image's left"
    assert mouth_left[0] < mouth_right[0] and nose[1] < (mouth_left[1] + mouth_right[1]) / 2
    assert 200 < left_eye[0] < 215 and 228 < right_eye[0] < 242 and 205 < left_eye[1] < 230


def test_a_downscaled_working_size_maps_faces_back_to_the_original(shared, mnet):
    rgb = read_rgb(shared / "images" / "people_demo.jpg")
    full = rf.predict(mnet, rgb)
    small = rf.predict(mnet, rgb, max_side=229)  # half size
    assert len(small) == 1 and small.image_size == full.image_size == (310, 458)
    assert iou(small.boxes[0], full.boxes[0]) > 0.8
    assert np.abs(small.landmarks[0] - full.landmarks[0]).max() < 8


def test_the_crowd_selfie_has_hundreds_of_faces(shared, mnet):
    rgb = read_rgb(shared / "images" / "faces_crowd.jpg")  # 1600 x 898
    faces = rf.predict(mnet, rgb)
    print(f"faces_crowd.jpg at 1600x898: {len(faces)} faces above 0.5")
    assert len(faces) > 400
    assert_well_formed(faces, 1600, 898)
    assert len(rf.predict(mnet, rgb, min_face=40)) < len(faces) // 4  # most of the crowd is small and far away
