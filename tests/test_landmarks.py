"""Landmarks: heatmap maths on hand-made maps, FAN layout, Keypoint R-CNN and FAN with random weights, the pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models.detection.roi_heads import heatmaps_to_keypoints

from conftest import drawn_scene
from models import face_points, fan, heatmaps as hm, images, keypointrcnn, retinaface, runtime, weights
from models.tabs import landmarks as lm

TASK = lm.TASK


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pose_net():
    """Random Keypoint R-CNN that works at the drawn scene's own size (no internal resize, so its keypoints and
    our heatmaps share one scale) and keeps 3 detections (the keypoint head is the slow part on a CPU)."""
    torch.manual_seed(0)
    net = keypointrcnn.build().eval()
    net.transform.min_size, net.transform.max_size = (96,), 128
    net.roi_heads.detections_per_img = 3
    return net


@pytest.fixture(scope="module")
def fan_net():
    torch.manual_seed(0)
    return fan.build().eval()


@pytest.fixture
def fresh_models(monkeypatch):
    """An empty model cache for this test, so networks seeded into it never leak into other tests."""
    cache = runtime.ModelCache()
    monkeypatch.setattr(runtime, "MODELS", cache)
    return cache


@pytest.fixture(scope="module")
def random_mnet_checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("user-checkpoints") / "my_retinaface.pth"
    torch.save(retinaface.build("retinaface-mnet").state_dict(), path)
    return str(path)


def _options(**changes) -> dict:
    return {**TASK.parse_options([]), **changes}


# --- Gaussian targets ----------------------------------------------------------------------------------------------


def test_gaussian_target_has_peak_one_at_the_point():
    points = np.array([[20.5, 30.5], [3.5, 60.5]])  # pixel centres: (col 20, row 30) and (col 3, row 60)
    maps = hm.gaussian_target(points, 64, sigma=2.0)
    assert maps.shape == (2, 64, 64) and maps.dtype == np.float32
    assert maps[0, 30, 20] == pytest.approx(1.0) and maps[1, 60, 3] == pytest.approx(1.0)
    assert maps.max() <= 1.0
    assert np.unravel_index(maps[0].argmax(), (64, 64)) == (30, 20)


def test_gaussian_target_off_grid_and_rectangular():
    maps = hm.gaussian_target([[10.2, 5.9]], (40, 20), sigma=1.5)
    assert maps.shape == (1, 20, 40)
    nearest = maps[0, 5, 10]  # the pixel holding the point, centre (10.5, 5.5): distance^2 = 0.3^2 + 0.4^2
    assert nearest == pytest.approx(np.exp(-(0.3**2 + 0.4**2) / (2 * 1.5**2)), rel=1e-5)
    assert maps.max() == nearest


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.5])
def test_sigma_measured_back_from_the_rendered_map(sigma):
    target = hm.gaussian_target([[31.3, 33.8]], 64, sigma)[0]
    assert hm.measure_sigma(target) == pytest.approx(sigma, rel=0.01)


def test_gaussian_target_rejects_a_non_positive_sigma():
    with pytest.raises(ValueError, match="sigma"):
        hm.gaussian_target([[1, 1]], 8, 0)


# --- decoding ------------------------------------------------------------------------------------------------------


def test_quarter_pixel_refinement_decodes_within_0_3_px_and_argmax_is_off_by_the_grid():
    true = np.array([30.85, 20.1])
    heatmap = hm.gaussian_target(true[None], 64, sigma=1.5)
    refined, _ = hm.decode(heatmap, refine=True)
    plain, scores = hm.decode(heatmap, refine=False)
    # Plain arg-max lands on the nearest pixel centre: (30.5, 20.5), off by (0.35, 0.4).
    assert plain[0] == pytest.approx([30.5, 20.5])
    assert np.abs(plain[0] - true) == pytest.approx([0.35, 0.4], abs=1e-6)
    # The quarter-pixel shift goes toward the higher neighbour: right in x, up in y.
    assert refined[0] == pytest.approx([30.75, 20.25])
    assert np.abs(refined[0] - true).max() < 0.3
    assert scores[0] == pytest.approx(heatmap.max())


def test_refinement_halves_the_worst_case_error_over_many_sub_pixel_positions():
    rng = np.random.default_rng(0)
    true = rng.uniform(8, 56, size=(200, 2))
    maps = hm.gaussian_target(true, 64, sigma=2.0)
    refined, _ = hm.decode(maps, refine=True)
    plain, _ = hm.decode(maps, refine=False)
    expected_plain = np.abs(true - (np.floor(true) + 0.5))  # distance to the centre of the pixel holding the point
    assert np.abs(plain - true) == pytest.approx(expected_plain, abs=1e-5)
    assert np.abs(refined - true).max() <= 0.25 + 1e-5
    assert np.abs(refined - true).mean() < 0.6 * np.abs(plain - true).mean()


def test_decode_keeps_leading_dimensions_and_leaves_border_peaks_alone():
    maps = np.zeros((2, 3, 16, 16), np.float32)
    maps[..., 0, 5] = 1.0  # peak on the top row: not refined (as the reference)
    maps[..., 0, 6] = 0.9
    points, scores = hm.decode(maps)
    assert points.shape == (2, 3, 2) and scores.shape == (2, 3)
    assert np.allclose(points, [5.5, 0.5]) and np.allclose(scores, 1.0)


# --- crop and scale ------------------------------------------------------------------------------------------------


def test_face_crop_transform_uses_the_reference_centre_and_scale():
    transform = hm.face_crop_transform([100, 100, 200, 220])
    assert transform.center == pytest.approx((150.0, 160.0 - 0.12 * 120))
    assert transform.scale == pytest.approx((100 + 120) / 165.0)
    assert transform.side == pytest.approx(200 * transform.scale)
    x1, y1, x2, y2 = transform.box
    assert (x1 + x2) / 2 == pytest.approx(150.0) and x2 - x1 == pytest.approx(transform.side)


def test_crop_and_its_inverse_map_points_back_to_the_right_pixels():
    image = np.zeros((300, 400, 3), np.uint8)
    dots = [(150, 110), (230, 180), (205, 140)]  # (column, row)
    for col, row in dots:
        image[row, col] = 255
    transform = hm.face_crop_transform([140, 90, 260, 230])  # side ~283 px -> 256: each dot spreads a little
    crop = hm.crop(image, transform, 256).astype(float)[..., 0]
    for col, row in dots:
        centre = np.array([col + 0.5, row + 0.5])
        expected = transform.to_crop(centre, 256)
        window = crop[int(expected[1]) - 4:int(expected[1]) + 5, int(expected[0]) - 4:int(expected[0]) + 5]
        ys, xs = np.mgrid[0:9, 0:9] + 0.5
        found = np.array([(window * xs).sum(), (window * ys).sum()]) / window.sum() + np.floor(expected) - 4
        assert np.abs(found - expected).max() < 0.5, (col, row)
        assert transform.to_image(expected, 256) == pytest.approx(centre)
        # ... and through a 64x64 heatmap, decoded with the quarter-pixel shift, back to the image
        target = hm.gaussian_target(transform.to_crop(centre, 64)[None], 64, sigma=1.5)
        decoded, _ = hm.decode(target)
        back = transform.to_image(decoded[0], 64)
        assert np.abs(back - centre).max() <= 0.3 * transform.side / 64


def test_crop_pads_outside_the_image_with_black():
    image = np.full((50, 50, 3), 200, np.uint8)
    crop = hm.crop(image, hm.CropTransform((0.0, 0.0), 0.5), 64)  # centred on the top-left corner
    assert crop.shape == (64, 64, 3)
    assert (crop[:30, :30] == 0).all() and (crop[34:, 34:] == 200).all()


# --- heatmaps onto the image ---------------------------------------------------------------------------------------


def _peaked(size: int, x: float, y: float) -> torch.Tensor:
    return torch.from_numpy(hm.gaussian_target([[x, y]], size, sigma=2.0)[0] * 8 - 2)  # logit-like


def test_warp_matches_torchvision_exactly_on_an_aligned_box():
    maps = torch.stack([_peaked(56, 20.3, 33.7), _peaked(56, 4.0, 50.2)])[None]  # (1 RoI, 2 keypoints, 56, 56)
    box = torch.tensor([[10.0, 20.0, 122.0, 132.0]])  # 112 px = 2 x 56: torchvision samples at pixel centres
    keypoints, _ = heatmaps_to_keypoints(maps, box)
    for k in range(2):
        warped = hm.heatmap_to_image(maps[0, k], box[0], (160, 150))
        row, col = np.unravel_index(warped.argmax(), warped.shape)
        assert (col + 0.5, row + 0.5) == pytest.approx(tuple(keypoints[0, k, :2].tolist()))


@pytest.mark.parametrize("box", [[13.3, 7.8, 101.9, 140.4], [40.6, 30.2, 70.1, 52.9]])
def test_warp_puts_the_peak_at_the_keypoint_torchvision_decodes(box):
    maps = torch.stack([_peaked(56, 41.2, 12.9), _peaked(56, 28.0, 28.0), _peaked(56, 7.7, 45.1)])[None]
    keypoints, _ = heatmaps_to_keypoints(maps, torch.tensor([box]))
    for k in range(3):
        warped = hm.heatmap_to_image(maps[0, k], box, (128, 160), fill=-np.inf)
        row, col = np.unravel_index(warped.argmax(), warped.shape)
        assert np.abs(np.array([col + 0.5, row + 0.5]) - keypoints[0, k, :2].numpy()).max() <= 1.0
        x1, y1, x2, y2 = box  # outside the box: the fill value
        assert np.isneginf(warped[:, : int(np.floor(x1 - 0.5))]).all()
        assert np.isneginf(warped[int(np.ceil(y2)) + 1:]).all()


def test_warp_of_a_box_outside_the_image_is_all_fill():
    warped = hm.heatmap_to_image(np.ones((8, 8)), [200, 200, 250, 260], (64, 48), fill=0.0)
    assert warped.shape == (48, 64) and not warped.any()


# --- FAN -----------------------------------------------------------------------------------------------------------


def test_fan_layout_equals_the_reference_manifest(shared):
    manifest = json.loads((shared / "layouts" / "fan4.json").read_text())
    expected = [[key, list(shape), dtype] for key, shape, dtype in manifest["keys"]]
    actual = [[key, list(value.shape), str(value.dtype).removeprefix("torch.")]
              for key, value in fan.build().state_dict().items()]
    assert len(actual) == 1129 and actual == expected


def test_fan_with_random_weights_on_a_drawn_face_box(fan_net):
    scene = drawn_scene(120, 160)
    result = fan.predict(fan_net, scene, np.array([[40, 20, 120, 110]]), np.array([0.9]))
    assert len(result) == 1 and result.stacks.shape == (1, 4, 68, 64, 64)
    assert result.points.shape == (1, 68, 2) and result.point_scores.shape == (1, 68)
    assert result.heatmap_points.shape == (1, 68, 2) and result.refined
    # Every point lies in its crop square, and maps back from the heatmap through the crop transform.
    x1, y1, x2, y2 = result.transforms[0].box
    assert ((result.points[0, :, 0] >= x1) & (result.points[0, :, 0] <= x2)).all()
    assert ((result.points[0, :, 1] >= y1) & (result.points[0, :, 1] <= y2)).all()
    assert result.points[0] == pytest.approx(result.transforms[0].to_image(result.heatmap_points[0], 64), abs=1e-3)
    warped = fan.heatmap_on_image(result, 0, 30)
    assert warped.shape == (120, 160) and np.isfinite(warped).all()
    empty = fan.predict(fan_net, scene, np.zeros((0, 4)))
    assert len(empty) == 0 and empty.points.shape == (0, 68, 2) and empty.stacks.shape == (0, 4, 68, 64, 64)


def test_fan_checkpoint_quirks_load_strictly(tmp_path):
    torch.manual_seed(1)
    state = fan.build().state_dict()
    old_style = {f"module.{key}": value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    path = tmp_path / "fan_old_style.pth"
    torch.save(old_style, path)
    net = fan.load(fan.MODEL, torch.device("cpu"), str(path))
    assert not net.training and torch.equal(net.state_dict()["l3.weight"], state["l3.weight"])
    wrong = tmp_path / "not_fan.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(weights.WeightsError, match="does not fit 2dfan4"):
        fan.load(fan.MODEL, torch.device("cpu"), str(wrong))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated, and used here only to make the file
def test_a_torchscript_archive_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "2DFAN4-old.zip"
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 3, 1)), str(path))
    with pytest.raises(weights.WeightsError, match="TorchScript archive"):
        fan.load(fan.MODEL, torch.device("cpu"), str(path))


def test_official_checkpoints_are_catalogued():
    pose, face = weights.get(keypointrcnn.MODEL), weights.get(fan.MODEL)
    assert pose.url.endswith("keypointrcnn_resnet50_fpn_coco-fc266e95.pth") and pose.sha256.startswith("fc266e95")
    assert face.url.endswith("2DFAN4-11f355bf06.pth.tar") and face.sha256 is None
    with pytest.raises(weights.MissingWeightsError):  # the test session is offline with an empty cache
        fan.load(fan.MODEL, torch.device("cpu"))


# --- Keypoint R-CNN ------------------------------------------------------------------------------------------------


def test_keypoint_rcnn_with_random_weights_gives_heatmaps_in_detection_order(pose_net):
    result = keypointrcnn.predict(pose_net, drawn_scene(96, 128), person_threshold=0.0)
    n = len(result)
    assert 1 <= n <= 3
    assert result.boxes.shape == (n, 4) and result.scores.shape == (n,)
    assert result.keypoints.shape == (n, 17, 2) and result.keypoint_scores.shape == (n, 17)
    assert result.heatmaps.shape == (n, 17, 56, 56) and result.heatmaps.dtype == np.float32
    assert (np.diff(result.scores) <= 0).all()
    # At scale 1, torchvision's own decoding of the caught heatmaps gives back its keypoints exactly: same order.
    keypoints, scores = heatmaps_to_keypoints(torch.from_numpy(result.heatmaps), torch.from_numpy(result.boxes))
    assert np.array_equal(keypoints[..., :2].numpy(), result.keypoints)
    assert np.array_equal(scores.numpy(), result.keypoint_scores)
    warped = keypointrcnn.heatmap_on_image(result, 0, 0)
    assert warped.shape == (96, 128)


def test_official_layout_loads_strictly_and_matches_torchvision_frozen_batchnorm(tmp_path, pose_net):
    """The COCO checkpoint comes from a FrozenBatchNorm2d backbone with eps 0 (torchvision's builder); ours is built
    without weights (plain BatchNorm2d): the same state dict must load strictly and give the same outputs."""
    from torchvision.models import resnet50
    from torchvision.models.detection import KeypointRCNN
    from torchvision.models.detection._utils import overwrite_eps
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import FrozenBatchNorm2d

    torch.manual_seed(2)
    backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=FrozenBatchNorm2d), 3)
    official = KeypointRCNN(backbone, num_classes=2, num_keypoints=17, min_size=96, max_size=128,
                            box_detections_per_img=2).eval()
    with torch.no_grad():  # tiny variances (scale kept near 1 by the weight), so that eps 1e-5 would show
        for module in official.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.running_var.uniform_(1e-4, 1e-3)
                module.weight.copy_(module.running_var.sqrt())
                module.running_mean.normal_(0, 0.01)
    overwrite_eps(official, 0.0)
    path = tmp_path / "keypointrcnn_official_layout.pth"
    torch.save(official.state_dict(), path)
    assert not any(key.endswith("num_batches_tracked") for key in official.state_dict())

    ours = keypointrcnn.load(keypointrcnn.MODEL, torch.device("cpu"), str(path))
    ours.transform.min_size, ours.transform.max_size = (96,), 128
    ours.roi_heads.detections_per_img = 2
    scene = drawn_scene(96, 128)
    with torch.inference_mode():
        expected = official([torch.from_numpy(scene).permute(2, 0, 1).float() / 255])[0]
    got = keypointrcnn.predict(ours, scene, person_threshold=0.0)
    assert len(got) == len(expected["scores"]) > 0
    assert np.allclose(got.boxes, expected["boxes"].numpy(), atol=1e-3)
    assert np.allclose(got.keypoints, expected["keypoints"][..., :2].numpy(), atol=1e-3)


def test_person_threshold_filters_detections_and_their_heatmaps(pose_net):
    everyone = keypointrcnn.predict(pose_net, drawn_scene(96, 128), person_threshold=0.0)
    cut = float(everyone.scores[0]) + 1e-6
    nobody = keypointrcnn.predict(pose_net, drawn_scene(96, 128), person_threshold=cut)
    assert len(nobody) == 0 and nobody.heatmaps.shape == (0, 17, 56, 56)


def test_skeleton_data():
    assert len(keypointrcnn.KEYPOINT_NAMES) == 17 and len(keypointrcnn.SKELETON) == 19
    assert all(0 <= a < 17 and 0 <= b < 17 for a, b in keypointrcnn.SKELETON)
    assert len(fan.FACE68_NAMES) == 68 and fan.FACE68_NAMES[30] == "nose_bridge_4"
    assert all(0 <= a < 68 and 0 <= b < 68 for a, b in fan.FACE68_CONNECTIVITY)


# --- the pipeline ----------------------------------------------------------------------------------------------------


def test_run_pose_with_random_weights(pose_net, fresh_models):
    device = runtime.device()
    fresh_models.get(keypointrcnn.cache_key(keypointrcnn.MODEL, device), lambda: pose_net.to(device))
    out = TASK.run(images.load(drawn_scene(96, 128)), model=keypointrcnn.MODEL,
                   **_options(person_threshold=0.05, keypoint=40, instance=7))
    assert out.images["drawing"].shape == out.images["heatmap"].shape == (96, 128, 3)
    assert out.images["target_vs_prediction"].shape == (224, 2 * 224 + 6, 3)
    record = out.record
    assert record["target"] == "pose" and 1 <= record["person_count"] == len(record["persons"]) <= 3
    assert all(len(person["keypoints"]) == 17 for person in record["persons"])
    assert record["view"]["keypoint"] == 16 and record["view"]["instance"] == record["person_count"] - 1
    assert len(record["notes"]) == 2  # both clamps are explained
    json.dumps(record)


def test_run_face_with_random_weights(fan_net, fresh_models, random_mnet_checkpoint):
    device = runtime.device()
    fresh_models.get(fan.cache_key(fan.MODEL, device), lambda: fan_net.to(device))
    out = TASK.run(images.load(drawn_scene(120, 160)), model=keypointrcnn.MODEL,
                   detector_checkpoint=random_mnet_checkpoint,
                   **_options(target="face", face_threshold=0.05, max_faces=1, sigma=3.0, refine=False))
    record = out.record
    assert record["target"] == "face" and record["model"] == fan.MODEL
    assert record["face_count"] == len(record["faces"]) == 1, "random RetinaFace finds 'faces' at 0.05"
    assert len(record["faces"][0]["landmarks"]) == 68 and all(len(p) == 3 for p in record["faces"][0]["landmarks"])
    assert out.images["drawing"].shape == out.images["heatmap"].shape == (120, 160, 3)
    assert out.images["stacks"].shape == (224, 4 * 224 + 3 * 6, 3)
    assert out.images["target_vs_prediction"].shape == (224, 2 * 224 + 6, 3)
    view = record["view"]
    assert view["keypoint"] == 30 and len(view["stack_points"]) == 4 and view["sigma"] == 3.0
    # Plain arg-max: every heatmap point is a pixel centre.
    assert (np.array(view["heatmap_point"]) % 1 == 0.5).all() and record["decoding"] == "plain arg-max"
    json.dumps(record)
    # The regressed-vs-heatmap comparison: FAN's five points follow from the record's own 68.
    compared = record["regressed_vs_heatmap"]
    assert compared["detector"] == "retinaface-mnet" and compared["point_names"] == list(face_points.FIVE_POINT_NAMES)
    row = compared["faces"][0]
    fan_five = face_points.five_from_68(np.array(record["faces"][0]["landmarks"])[:, :2])
    assert np.array([p["fan"] for p in row["points"]]) == pytest.approx(fan_five, abs=0.02)
    for point in row["points"]:
        gap = np.linalg.norm(np.subtract(point["regressed"], point["fan"]))
        assert point["distance_px"] == pytest.approx(gap, abs=0.02)
    assert max(out.images["regressed_vs_heatmap"].shape[:2]) == face_points.VIEW_SIDE


# --- regressed coordinates vs heatmap points (issue 13) ---------------------------------------------------------------


def _hand_made_68() -> tuple[np.ndarray, np.ndarray]:
    """A 68-point face with noise everywhere except the points the five are made of: each eye a hexagon around its
    centre, the nose tip and the mouth corners at known places. Returns (68 points, the five expected)."""
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 300, size=(68, 2)).astype(np.float32)
    angles = np.arange(6) * np.pi / 3
    hexagon = np.stack([np.cos(angles), np.sin(angles)], axis=1) * [12, 6]
    expected = np.array([[100, 120], [160, 121], [130, 150], [108, 181], [152, 179]], np.float32)
    points[36:42] = expected[0] + hexagon  # the subject's right eye: the image's left
    points[42:48] = expected[1] + hexagon
    points[30], points[48], points[54] = expected[2], expected[3], expected[4]
    return points, expected


def test_five_points_from_68_are_eye_centres_nose_tip_and_mouth_corners():
    points, expected = _hand_made_68()
    assert face_points.five_from_68(points) == pytest.approx(expected, abs=1e-4)
    batch = face_points.five_from_68(np.stack([points, points + 10]))  # leading dimensions kept
    assert batch.shape == (2, 5, 2) and batch[1] == pytest.approx(expected + 10, abs=1e-4)
    # The indices are the named 68-point groups; "left" in the detectors' order is the image's left (the subject's
    # right), as in the 68-point markup's "right_eye".
    names = [[fan.FACE68_NAMES[i] for i in group] for group in face_points.FACE68_FOR_FIVE]
    assert names == [[f"right_eye_{k}" for k in range(1, 7)], [f"left_eye_{k}" for k in range(1, 7)],
                     ["nose_bridge_4"], ["outer_lip_1"], ["outer_lip_7"]]
    assert face_points.FACE68_FOR_FIVE[2] == (fan.NOSE_TIP,)
    with pytest.raises(ValueError, match="68, 2"):
        face_points.five_from_68(np.zeros((5, 2)))


def test_comparison_table_measures_pixel_distances_and_the_view_draws_both():
    regressed = np.array([[[100, 120], [160, 120], [130, 150], [110, 180], [150, 180]]], np.float32)
    from_heatmaps = regressed + np.array([[3, 4], [0, 0], [-6, 8], [0, 2], [1, 0]], np.float32)
    assert face_points.distances(regressed, from_heatmaps) == pytest.approx(np.array([[5, 0, 10, 2, 1]]))
    (row,) = face_points.comparison_table(regressed, from_heatmaps)
    assert [p["name"] for p in row["points"]] == list(face_points.FIVE_POINT_NAMES)
    assert [p["distance_px"] for p in row["points"]] == [5.0, 0.0, 10.0, 2.0, 1.0]
    assert row["mean_px"] == 3.6 and row["interocular_px"] == 60.0
    assert row["points"][0]["regressed"] == [100.0, 120.0] and row["points"][0]["fan"] == [103.0, 124.0]
    json.dumps(row)
    rgb = np.zeros((300, 400, 3), np.uint8)
    box = np.array([90, 100, 170, 200], np.float32)
    view = face_points.comparison_view(rgb, box, regressed[0], from_heatmaps[0])
    assert view.shape == (face_points.VIEW_SIDE, face_points.VIEW_SIDE, 3)  # 150 px square around the box, zoomed
    left, top, side = 130 - 75, 150 - 75, 150  # the window: 1.5 box sizes around its centre
    scale = face_points.VIEW_SIDE / side
    cyan, magenta = (0, 229, 255), (255, 61, 245)
    x, y = ((regressed[0, 2] - [left, top]) * scale).astype(int)  # nose: the two answers 10 px apart
    assert tuple(view[y, x]) == cyan
    x, y = ((from_heatmaps[0, 2] - [left, top]) * scale).astype(int)
    assert tuple(view[y, x]) == magenta
    nan_points = np.full((5, 2), np.nan, np.float32)  # a network gone wrong: drawn off the picture, not a failure
    assert face_points.comparison_view(rgb, box, regressed[0], nan_points).shape == view.shape
    assert face_points.blank_view().shape == view.shape


def test_face_detector_option_offers_both_retinafaces_and_centerface():
    assert lm.TASK.option("face_detector").choices == ("retinaface-mnet", "retinaface-r50", "centerface")
    assert lm.TASK.option("face_detector").default == "retinaface-mnet"
    assert TASK.parse_options(["face_detector=centerface"])["face_detector"] == "centerface"


def test_target_option_picks_the_model_and_parses_from_text():
    assert lm.resolve(keypointrcnn.MODEL, "auto") == ("pose", keypointrcnn.MODEL)
    assert lm.resolve(fan.MODEL, "auto") == ("face", fan.MODEL)
    assert lm.resolve(keypointrcnn.MODEL, "face") == ("face", fan.MODEL)
    assert lm.resolve(fan.MODEL, "pose") == ("pose", keypointrcnn.MODEL)
    options = TASK.parse_options(["target=face", "refine=off", "keypoint=36", "sigma=1.5"])
    assert options["target"] == "face" and options["refine"] is False and options["keypoint"] == 36
    with pytest.raises(ValueError, match="Unknown landmarks model"):
        lm.resolve("openpose", "auto")


# --- real weights ----------------------------------------------------------------------------------------------------


def test_real_retinaface_boxes_feed_fan_crops_around_the_face(shared_weights, shared, fan_net):
    """The official RetinaFace finds the waving person's face; FAN's crop square is centred on it (random FAN)."""
    rgb = np.asarray(Image.open(shared / "images" / "people_demo.jpg").convert("RGB"))
    faces = lm.detect_faces(rgb, "retinaface-mnet", threshold=0.5, max_faces=1)
    assert len(faces) == 1
    result = fan.predict(fan_net, rgb, faces.boxes, faces.scores)
    x1, y1, x2, y2 = faces.boxes[0]
    cx, cy = result.transforms[0].center
    assert x1 < cx < x2 and y1 < cy < (y1 + y2) / 2  # moved up from the box centre, as the reference does
    crop_x1, crop_y1, crop_x2, crop_y2 = result.transforms[0].box
    assert crop_x1 < x1 and crop_x2 > x2 and crop_y2 > y2  # the crop holds the whole face box
    assert result.points.shape == (1, 68, 2)


def test_regressed_points_of_retinaface_and_centerface_agree_on_the_waving_face(shared_weights, shared):
    """Both detectors' real weights: five regressed points per face inside its box, within a few pixels of each
    other. Measured on people_demo.jpg (310 x 458, inter-ocular ~30 px): 0.8, 1.3, 0.9, 2.3, 2.2 px."""
    rgb = np.asarray(Image.open(shared / "images" / "people_demo.jpg").convert("RGB"))
    found = {name: lm.detect_faces(rgb, name, threshold=0.5, max_faces=8) for name in ("retinaface-mnet", "centerface")}
    for name, faces in found.items():
        assert len(faces) == 1, name
        (x1, y1, x2, y2), points = faces.boxes[0], faces.landmarks[0]
        assert ((points[:, 0] > x1) & (points[:, 0] < x2) & (points[:, 1] > y1) & (points[:, 1] < y2)).all(), name
        left_eye, right_eye, nose, mouth_left, mouth_right = points
        assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0], name
    apart = face_points.distances(found["retinaface-mnet"].landmarks[0], found["centerface"].landmarks[0])
    interocular = np.linalg.norm(found["retinaface-mnet"].landmarks[0, 1] - found["retinaface-mnet"].landmarks[0, 0])
    print("RetinaFace-mnet vs CenterFace, px:", np.round(apart, 2), "inter-ocular:", round(float(interocular), 1))
    assert apart.max() < 4.0 and apart.mean() < 2.5  # a few pixels: under 15 % of the eye distance
    assert apart.max() < 0.15 * interocular


def test_run_face_compares_centerface_points_with_fan(shared_weights, shared, fan_net, fresh_models):
    """The pipeline with the real CenterFace and a random FAN: the regressed points are CenterFace's own."""
    device = runtime.device()
    fresh_models.get(fan.cache_key(fan.MODEL, device), lambda: fan_net.to(device))
    rgb = np.asarray(Image.open(shared / "images" / "people_demo.jpg").convert("RGB"))
    out = TASK.run(images.load(rgb), model=fan.MODEL, **_options(face_detector="centerface"))
    record = out.record
    assert record["face_detector"] == "centerface" and record["face_count"] == 1
    expected = lm.detect_faces(rgb, "centerface").landmarks[0]
    compared = record["regressed_vs_heatmap"]["faces"][0]
    assert np.array([p["regressed"] for p in compared["points"]]) == pytest.approx(expected, abs=0.01)
    assert 20 < compared["interocular_px"] < 40
    assert max(out.images["regressed_vs_heatmap"].shape[:2]) == face_points.VIEW_SIDE  # the face, zoomed


def test_endpoint_face_and_pose(served_app, shared_weights, shared, fan_net, pose_net, fresh_models):
    """The tab's endpoint end to end: real RetinaFace (shared weights) feeding a random FAN, and a random Keypoint
    R-CNN, both seeded into the (in-process) app's model cache under their official keys."""
    from gradio_client import Client, handle_file

    device = runtime.device()
    fresh_models.get(fan.cache_key(fan.MODEL, device), lambda: fan_net.to(device))
    fresh_models.get(keypointrcnn.cache_key(keypointrcnn.MODEL, device), lambda: pose_net.to(device))
    client = Client(served_app, verbose=False)
    photo = handle_file(str(shared / "images" / "people_demo.jpg"))
    # By keyword, named like the command line's --set keys; the rest keep their defaults.
    drawing, status, heat, target, stacks, comparison, distances, points, record = client.predict(
        image=photo, model=fan.MODEL, api_name="/landmarks")
    assert "1 face" in status and len(points) == 1 and len(points[0]["landmarks"]) == 68
    assert stacks is not None and Image.open(heat).size == (310, 458)
    assert record["target"] == "face" and record["face_detector"] == "retinaface-mnet" and record["face_count"] == 1
    compared = record["regressed_vs_heatmap"]["faces"][0]
    assert [row[0] for row in distances["data"]] == list(face_points.FIVE_POINT_NAMES)
    assert [float(row[3]) for row in distances["data"]] == [p["distance_px"] for p in compared["points"]]
    x1, y1, x2, y2 = record["faces"][0]["box"]  # the real RetinaFace's regressed points: inside its box
    assert all(x1 < p["regressed"][0] < x2 and y1 < p["regressed"][1] < y2 for p in compared["points"])
    assert max(Image.open(comparison).size) == face_points.VIEW_SIDE
    drawing, status, *_, record = client.predict(image=photo, model=keypointrcnn.MODEL, person_threshold=0.05,
                                                 api_name="/landmarks")
    assert keypointrcnn.MODEL in status and Image.open(drawing).size == (310, 458)
    assert record["target"] == "pose" and record["person_count"] == len(record["persons"]) >= 1
