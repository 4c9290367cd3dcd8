"""CenterFace: the graph re-stated in PyTorch against OpenCV's run of the official ONNX file, the cached conversion,
decoding of hand-made maps, and faces in real photos."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import drawn_scene
from models import centerface as cf, centerface_arch, retinaface as rf, runtime, weights

ONNX_NAME = "centerface_bnmerged.onnx"
PHOTOS = ("people_demo.jpg", "faces_crowd.jpg", "flickr_16004479832_a748d55f21_k.jpg")
CPU = torch.device("cpu")  # fp32 everywhere, so the comparisons hold on a GPU machine too


def read_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area(a) + area(b) - inter)


def random_net() -> centerface_arch.CenterFaceNet:
    torch.manual_seed(0)
    return runtime.prepare(centerface_arch.CenterFaceNet(), CPU)


def assert_well_formed(faces: cf.CenterFaceDetections, width: int, height: int) -> None:
    n = len(faces)
    assert [faces.boxes.shape, faces.scores.shape, faces.landmarks.shape] == [(n, 4), (n,), (n, 5, 2)]
    for array in (faces.boxes, faces.scores, faces.landmarks):
        assert array.dtype == np.float32 and np.isfinite(array).all()
    assert faces.image_size == (width, height) and (np.diff(faces.scores) <= 0).all(), "sorted, highest first"
    assert (faces.boxes[:, 0::2] >= 0).all() and (faces.boxes[:, 0::2] <= width).all()
    assert (faces.boxes[:, 1::2] >= 0).all() and (faces.boxes[:, 1::2] <= height).all()
    assert (faces.boxes[:, 2:] >= faces.boxes[:, :2]).all()


# --- catalogue and architecture ---------------------------------------------------------------------------------


def test_checkpoint_is_catalogued_with_the_official_hash():
    entry = weights.get("centerface")
    assert entry is cf.CHECKPOINT and entry.task == "keypoint-detectors" and entry.kind == "file"
    assert entry.filename == ONNX_NAME and entry.bytes == 7_304_518 and entry.license == "MIT"
    assert entry.sha256 == "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
    assert entry.url == "https://github.com/Star-Clouds/CenterFace/raw/master/models/onnx/centerface_bnmerged.onnx"


def test_graph_order_names_every_weight_carrying_module_once():
    net = centerface_arch.CenterFaceNet()
    order = net.graph_order()
    carrying = [name for name, module in net.named_modules()
                if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.BatchNorm2d))]
    assert len(order) == len(set(order)) == 66 and sorted(order) == sorted(carrying)


def test_output_maps_are_at_stride_4_for_multiples_of_32():
    with torch.inference_mode():
        heatmap, scale, offset, landmarks = random_net()(torch.zeros(1, 3, 96, 160))
    assert [tuple(t.shape) for t in (heatmap, scale, offset, landmarks)] == [
        (1, 1, 24, 40), (1, 2, 24, 40), (1, 2, 24, 40), (1, 10, 24, 40)]
    assert ((heatmap >= 0) & (heatmap <= 1)).all()


# --- preprocessing and decoding ---------------------------------------------------------------------------------


def test_preprocess_pads_bottom_and_right_with_black_and_keeps_0_255():
    rgb = drawn_scene(100, 130)
    x = cf.preprocess(rgb)
    assert cf.padded_size(100, 130) == (128, 160) and cf.padded_size(96, 128) == (96, 128)
    assert x.shape == (1, 3, 128, 160) and x.dtype == torch.float32
    assert torch.equal(x[0, :, :100, :130], torch.tensor(rgb).permute(2, 0, 1).float()), "RGB order, no mean/std"
    assert x[0, :, 100:].abs().sum() == 0 and x[0, :, :, 130:].abs().sum() == 0


def hand_made_maps(height: int = 30, width: int = 40) -> tuple[torch.Tensor, ...]:
    """One face at cell (row 10, col 20): offset (0.25, 0.5), 20 px high and 12 px wide, landmarks at fixed spots."""
    heatmap = torch.zeros(height, width)
    scale = torch.zeros(2, height, width)
    offset = torch.zeros(2, height, width)
    landmarks = torch.zeros(10, height, width)
    heatmap[10, 20] = 0.9
    heatmap[10, 21] = 0.8  # a weaker neighbour of the same size: not a local maximum
    scale[:, 10, 20:22] = torch.tensor([math.log(20 / 4), math.log(12 / 4)])[:, None]
    offset[:, 10, 20] = torch.tensor([0.25, 0.5])
    landmarks[:, 10, 20] = torch.tensor([0.3, 0.25, 0.3, 0.75, 0.5, 0.5, 0.8, 0.25, 0.8, 0.75])  # (y, x) pairs
    return heatmap, scale, offset, landmarks


def test_a_hand_made_face_decodes_to_the_expected_box_and_landmarks():
    boxes, scores, points = cf.decode(*hand_made_maps(), threshold=0.5)
    # centre x = (20 + 0.5 + 0.5) * 4 = 84, y = (10 + 0.25 + 0.5) * 4 = 43; size 12 x 20
    assert torch.allclose(boxes, torch.tensor([[78.0, 33.0, 90.0, 53.0]]), atol=1e-4)
    assert torch.allclose(scores, torch.tensor([0.9]))
    expected = torch.tensor([[[81.0, 39.0], [87.0, 39.0], [84.0, 43.0], [81.0, 49.0], [87.0, 49.0]]])
    assert torch.allclose(points, expected, atol=1e-4)


def test_peaks_threshold_and_nms():
    maps = hand_made_maps()
    assert len(cf.decode(*maps, threshold=0.9)[1]) == 0, "the threshold is strict, as the reference's"
    # without the max-pool the neighbour is a candidate too; its box overlaps the first (IoU 190 / 290 = 0.66 > 0.3),
    # so NMS drops it, unless NMS allows more overlap
    assert len(cf.decode(*maps, threshold=0.5, peak_kernel=1)[1]) == 1
    assert len(cf.decode(*maps, threshold=0.5, nms_iou=0.7, peak_kernel=1)[1]) == 2
    heatmap, scale, offset, landmarks = maps
    heatmap[25, 5] = 0.7  # a second face, far away: scale 0 is a 4 x 4 box centred on (22, 102)
    boxes, scores, _ = cf.decode(heatmap, scale, offset, landmarks, threshold=0.5)
    assert scores.tolist() == pytest.approx([0.9, 0.7]) and boxes[1].tolist() == pytest.approx([20, 100, 24, 104])


def test_predict_with_random_weights_gives_well_formed_faces_and_maps():
    rgb = drawn_scene(100, 130)
    faces = cf.predict(random_net(), rgb, threshold=0.3)
    assert_well_formed(faces, 130, 100)
    maps = faces.maps
    assert maps.heatmap.shape == (32, 40) and maps.scale.shape == maps.offset.shape == (2, 32, 40)
    assert maps.landmarks.shape == (10, 32, 40) and maps.input_size == (160, 128) and maps.to_image == (1.0, 1.0)
    assert maps.stride == 4 and maps.heatmap.dtype == np.float32


def test_predict_refuses_what_is_not_an_rgb_image():
    with pytest.raises(ValueError, match="CenterFace needs an RGB uint8 array"):
        cf.predict(random_net(), np.zeros((32, 32), np.float32))


# --- the ONNX file: conversion, cache, refusals -----------------------------------------------------------------


def test_the_converted_weights_are_the_files_named_initializers(shared):
    from onnx import load, numpy_helper

    state = centerface_arch.state_dict_from_onnx(shared / "weights" / ONNX_NAME)
    initializers = {t.name: numpy_helper.to_array(t) for t in load(str(shared / "weights" / ONNX_NAME)).graph.initializer}
    for key in ("head.pos_conv.weight", "head.lm_conv.bias", "neck.deconv_layers.2.conv.weight",
                "neck.deconv_layers.0.bn.running_var"):
        assert np.array_equal(state[key].numpy(), initializers[key])
    assert np.array_equal(state["backbone.features.0.0.weight"].numpy(), initializers["542"]), "the first folded conv"
    assert len(state) == 138


def test_second_load_reads_the_cached_state_dict_with_weights_only(shared, tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "cache_dir", lambda: tmp_path)
    onnx_path = shared / "weights" / ONNX_NAME
    first = cf.net_from_onnx(onnx_path).eval()
    cached = tmp_path / cf.converted_name(onnx_path)
    assert cached.is_file() and cached.name.startswith("centerface_bnmerged.09189deaaf8646c5")

    calls = []
    real_load = torch.load
    monkeypatch.setattr(cf, "state_dict_from_onnx", lambda path: pytest.fail("converted again"))
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: calls.append(kwargs) or real_load(*args, **kwargs))
    second = cf.net_from_onnx(onnx_path).eval()
    assert calls and all(kwargs.get("weights_only") is True for kwargs in calls)
    x = cf.preprocess(drawn_scene(64, 96))
    with torch.inference_mode():
        for a, b in zip(first(x), second(x)):
            assert torch.equal(a, b)


def test_a_damaged_cache_is_converted_again(shared, tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "cache_dir", lambda: tmp_path)
    onnx_path = shared / "weights" / ONNX_NAME
    (tmp_path / cf.converted_name(onnx_path)).write_bytes(b"not a checkpoint")
    net = cf.net_from_onnx(onnx_path)
    assert torch.equal(net.head.pos_conv.bias, centerface_arch.state_dict_from_onnx(onnx_path)["head.pos_conv.bias"])
    assert weights.load_state_dict(tmp_path / cf.converted_name(onnx_path)).keys() == net.state_dict().keys()


def test_a_wrong_file_under_the_official_name_is_refused(tmp_path, monkeypatch):
    (tmp_path / ONNX_NAME).write_bytes(b"\x08\x04" + bytes(100))
    monkeypatch.setenv("CVPG_HOME", str(tmp_path))
    with pytest.raises(weights.ChecksumError, match="does not match centerface"):
        weights.fetch("centerface")


def test_a_user_file_that_is_not_onnx_is_refused(tmp_path):
    path = tmp_path / "mine.onnx"
    path.write_bytes(b"definitely not protobuf \xff\xfe")
    with pytest.raises(weights.WeightsError, match="mine.onnx cannot be read as an ONNX model"):
        cf.load(CPU, checkpoint_file=path)


def test_an_onnx_file_of_another_network_is_refused(tmp_path):
    from onnx import TensorProto, helper, numpy_helper, save

    weight = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 32, 32])], [weight])
    path = tmp_path / "tiny.onnx"
    save(helper.make_model(graph), str(path))
    with pytest.raises(weights.WeightsError, match="tiny.onnx is not CenterFace's graph"):
        cf.load(CPU, checkpoint_file=path)


# --- real weights on real photos --------------------------------------------------------------------------------


@pytest.mark.parametrize("photo", PHOTOS)
def test_every_map_equals_opencvs_run_of_the_onnx_file(shared_weights, shared, photo):
    import cv2

    x = cf.preprocess(read_rgb(shared / "images" / photo))
    reference = cv2.dnn.readNetFromONNX(str(shared_weights / ONNX_NAME))
    reference.setInput(x.numpy())
    expected = reference.forward(["537", "538", "539", "540"])  # heatmap, scale, offset, landmarks
    with torch.inference_mode():
        ours = [runtime.to_numpy(t) for t in cf.load(CPU)(x)]
    differences = [float(np.abs(a - b).max()) for a, b in zip(ours, expected)]
    print(f"{photo} at {x.shape[3]}x{x.shape[2]}: max |torch - cv2.dnn| heatmap, scale, offset, landmarks = "
          + ", ".join(f"{d:.2e}" for d in differences))
    assert [a.shape for a in ours] == [b.shape for b in expected]
    assert max(differences) < 1e-4


def test_the_waving_person_has_one_face_with_landmarks_inside(shared_weights, shared):
    rgb = read_rgb(shared / "images" / "people_demo.jpg")  # 310 x 458
    faces = cf.predict(cf.load(CPU), rgb)
    assert_well_formed(faces, 310, 458)
    assert len(faces) == 1 and faces.scores[0] > 0.85
    x1, y1, x2, y2 = faces.boxes[0]
    # the face spans about x 180-250, y 180-270 (hair to chin), as in the RetinaFace tests
    assert 165 < x1 < 200 and 235 < x2 < 265 and 165 < y1 < 200 and 250 < y2 < 290
    points = faces.landmarks[0]
    assert ((points[:, 0] > x1) & (points[:, 0] < x2) & (points[:, 1] > y1) & (points[:, 1] < y2)).all()
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    assert left_eye[0] < nose[0] < right_eye[0] and max(left_eye[1], right_eye[1]) < nose[1]
    assert nose[1] < min(mouth_left[1], mouth_right[1]) and mouth_left[0] < mouth_right[0]
    retina = rf.predict(rf.load("retinaface-mnet", CPU), rgb)
    assert iou(faces.boxes[0], retina.boxes[0]) > 0.5


def test_a_shrunk_input_maps_back_to_the_image(shared_weights, shared):
    rgb = read_rgb(shared / "images" / "people_demo.jpg")
    full = cf.predict(cf.load(CPU), rgb)
    small = cf.predict(cf.load(CPU), rgb, max_side=229)  # half size
    assert small.image_size == full.image_size == (310, 458) and small.maps.to_image == (2.0, 2.0)
    assert len(small) == 1 and iou(small.boxes[0], full.boxes[0]) > 0.7
    assert np.abs(small.landmarks[0] - full.landmarks[0]).max() < 8


def test_the_crowd_has_hundreds_of_faces(shared_weights, shared):
    rgb = read_rgb(shared / "images" / "faces_crowd.jpg")  # 1600 x 898
    faces = cf.predict(cf.load(CPU), rgb)
    print(f"faces_crowd.jpg at 1600x898: {len(faces)} faces above {cf.DEFAULT_THRESHOLD}")
    assert_well_formed(faces, 1600, 898)
    assert len(faces) > 250
    assert faces.maps.heatmap.shape == (232, 400) and faces.maps.input_size == (1600, 928)


# --- the teaching views (models/centerface_views.py) on hand-made maps --------------------------------------------


def hand_made_faces() -> cf.CenterFaceDetections:
    """The hand-made face of `hand_made_maps`, as `predict` returns it for a 160 x 120 photo."""
    heatmap, scale, offset, landmarks = hand_made_maps()
    boxes, scores, points, cells = cf.decode_with_cells(heatmap, scale, offset, landmarks, threshold=0.5)
    maps = cf.CenterFaceMaps(heatmap.numpy(), scale.numpy(), offset.numpy(), landmarks.numpy(), (160, 120),
                             (1.0, 1.0))
    return cf.CenterFaceDetections(boxes.numpy(), scores.numpy(), points.numpy(), (160, 120), maps, cells.numpy())


def test_decode_with_cells_says_where_each_face_was_read():
    maps = hand_made_maps()
    boxes, scores, points, cells = cf.decode_with_cells(*maps, threshold=0.5)
    assert cells.tolist() == [[10, 20]]
    for ours, plain in zip((boxes, scores, points), cf.decode(*maps, threshold=0.5)):
        assert torch.equal(ours, plain)


def test_readings_and_table_are_what_the_maps_hold_at_the_peak():
    from models import centerface_views as views

    faces = hand_made_faces()
    read = views.readings(faces)
    assert read["cells"].tolist() == [[10, 20]]
    np.testing.assert_allclose(read["offsets"], [[0.5, 0.25]])  # x, y (the map holds y, x)
    np.testing.assert_allclose(read["sizes"], [[12, 20]], rtol=1e-5)  # width, height in px
    np.testing.assert_allclose(read["centers"], [[84, 43]])  # (20 + 0.5 + 0.5) * 4, (10 + 0.25 + 0.5) * 4
    row = views.table(faces)[0]
    assert row["box"] == [78.0, 33.0, 90.0, 53.0] and row["center"] == [84.0, 43.0] and row["size"] == [12.0, 20.0]
    assert row["cell_row_col"] == [10, 20] and row["offset"] == [0.5, 0.25] and row["label"] == "face"
    assert list(row["landmarks"]) == list(views.LANDMARK_NAMES) and row["landmarks"]["nose"] == [84.0, 43.0]


def test_a_shrunk_input_scales_the_readings_back_to_the_photo():
    from models import centerface_views as views

    faces = hand_made_faces()
    faces.maps.to_image, faces.image_size = (2.0, 2.0), (320, 240)
    read = views.readings(faces)
    np.testing.assert_allclose(read["sizes"], [[24, 40]], rtol=1e-5)
    np.testing.assert_allclose(read["centers"], [[168, 86]])
    assert views.working_size(faces) == (160, 120)


def test_the_heatmap_warped_onto_the_photo_peaks_at_the_cells_centre():
    from models import centerface_views as views, detections

    found = views.as_detections(hand_made_faces())
    warped = detections.map_on_image(found, "center")
    assert warped.shape == (120, 160)
    y, x = np.unravel_index(np.argmax(warped), warped.shape)
    assert (x, y) == (82, 42)  # cell (row 10, col 20) stands for ((20 + 0.5) * 4, (10 + 0.5) * 4)
    width = detections.map_on_image(found, "width")
    assert width[42, 82] == pytest.approx(12, rel=1e-4) and width[10, 10] == pytest.approx(4, rel=1e-4)  # exp(0) * 4


def test_every_view_of_hand_made_faces_has_its_size():
    from models import centerface_views as views

    rgb = drawn_scene(120, 160)
    images = views.render(rgb, hand_made_faces())
    assert list(images) == [key for key, _ in views.VIEWS]
    assert all(images[key].shape == (120, 160, 3) for key in ("detections", "center_heatmap"))
    bar = views.color_bar(160, 4, 20, "px")
    assert images["width"].shape == images["height"].shape == (120 + bar.shape[0], 160, 3)
    side = views.ZOOM_CELLS * views.ZOOM_CELL_PX
    assert images["offsets"].shape == (side, side, 3)
    assert all(image.dtype == np.uint8 for image in images.values())
    low, high = views.size_range(hand_made_faces())
    assert low <= 4 and high >= 20  # the background's 4 px and the face's 20 px are both on the scale
    no_faces = cf.CenterFaceDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                                       np.zeros((0, 5, 2), np.float32), (160, 120), hand_made_faces().maps,
                                       np.zeros((0, 2), np.int64))
    assert views.render(rgb, no_faces)["offsets"].shape == (side, side, 3), "the hottest cell, even below threshold"
