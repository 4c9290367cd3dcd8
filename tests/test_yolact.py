"""YOLACT: the reference's state-dict layout, checkpoint conversion, priors, box decoding, Fast NMS against a
brute-force reading of the paper, exact mask assembly, and the random-weight pipeline on a drawn image."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import drawn_scene
from models import images, instances, runtime, weights, yolact, yolact_views
from models.tabs import instance
from models.yolact_arch import YOLACT_BASE, YOLACT_RESNET50, Yolact, feature_sizes, make_priors

LAYOUT = json.loads((Path(__file__).parent / "data" / "yolact_base_layout.json").read_text())
SMALL = 160  # input side for the random-weight pipeline tests: the same network, a fraction of the work at 550


def _layout(module: torch.nn.Module) -> list:
    return [[key, list(value.shape), str(value.dtype).removeprefix("torch.")]
            for key, value in module.state_dict().items()]


@pytest.fixture(scope="module")
def base_net() -> Yolact:
    torch.manual_seed(0)
    return yolact.build("yolact-r101")


def confident_random_net(name: str = "yolact-r50", input_size: int = SMALL, seed: int = 0) -> Yolact:
    """A YOLACT with random weights that still detects things (plain random heads score every class about 1/81,
    below the 0.05 candidate threshold): its class biases make every location propose a person (first aspect
    ratio), a dog (second) and a car (third), and scaled head weights make scores, boxes and masks vary from place
    to place. Also for other tests (the browser test's prototype view): seed runtime.MODELS with it."""
    torch.manual_seed(seed)
    net = yolact.build(name, input_size=input_size)
    head = net.prediction_layers[0]
    with torch.no_grad():
        bias = torch.full((3, 81), -4.0)
        bias[:, 0] = 0.0  # background
        for prior, label in enumerate(("person", "dog", "car")):
            bias[prior, 1 + yolact.CLASS_NAMES.index(label)] = 3.0
        head.conf_layer.bias.copy_(bias.flatten())
        head.conf_layer.weight.mul_(20)
        head.bbox_layer.weight.mul_(5)
        head.mask_layer.weight.mul_(20)
    return net


@pytest.fixture(scope="module")
def small_net() -> Yolact:
    return runtime.prepare(confident_random_net(), torch.device("cpu"))


@pytest.fixture(scope="module")
def small_result(small_net) -> yolact.YolactResult:
    return yolact.predict(small_net, drawn_scene(), score_threshold=0.05)


# --- layout and checkpoints ----------------------------------------------------------------------------------------


def test_layout_file_names_its_source():
    source = LAYOUT["source"]
    assert source["repo"] == "dbolya/yolact" and len(source["commit"]) == 40
    assert {"yolact.py", "backbone.py", "data/config.py"} <= set(source["files"])
    assert LAYOUT["key_count"] == len(LAYOUT["keys"]) == 660


def test_layout_equals_the_reference_minus_training_only_keys(base_net):
    training_only = set(LAYOUT["training_only"]["keys"])
    assert training_only == {"semantic_seg_conv.weight", "semantic_seg_conv.bias"}
    expected = [row for row in LAYOUT["keys"] if row[0] not in training_only]
    assert _layout(base_net) == expected
    assert expected[0][0] == "backbone.layers.0.0.conv1.weight"  # the reference's own ResNet names, not torchvision's


def test_resnet50_variant_drops_only_blocks_6_to_22_of_stage_3():
    variant = LAYOUT["resnet50_variant"]
    expected = [row for row in LAYOUT["keys"] if row[0] not in LAYOUT["training_only"]["keys"]
                and not (row[0].startswith("backbone.layers.2.") and int(row[0].split(".")[3]) >= 6)]
    layout = _layout(Yolact(YOLACT_RESNET50))
    assert layout == expected
    assert len(layout) == variant["key_count"] - 2


def _official_state() -> dict:
    """A state dict in the official file's format, built from the committed layout: every reference key (with the
    training-only head), plus the legacy keys the reference's load_weights drops."""
    state = {}
    for index, (key, shape, dtype) in enumerate(LAYOUT["keys"]):
        state[key] = torch.full(shape, float(index % 97), dtype=getattr(torch, dtype))
    state["fpn.downsample_layers.2.weight"] = torch.ones(256, 256, 3, 3)  # a v1.0 leftover
    state["fpn.downsample_layers.2.bias"] = torch.ones(256)
    state["backbone.layer1.0.conv1.weight"] = torch.ones(64, 64, 1, 1)  # old backbone name
    del state["backbone.bn1.num_batches_tracked"]  # as in files from PyTorch < 0.4.1
    return state


def test_official_format_loads_strictly_after_conversion(tmp_path):
    path = tmp_path / "yolact_base_54_800000.pth"
    torch.save(_official_state(), path)
    state = weights.load_state_dict(path)  # weights_only=True, the only way the app opens a file
    net = yolact.from_state("yolact-r101", state)
    loaded = net.state_dict()
    for index, (key, _, _) in enumerate(LAYOUT["keys"]):
        if key in loaded and not key.endswith("num_batches_tracked"):
            assert loaded[key].flatten()[0].item() == float(index % 97), key
    assert "semantic_seg_conv.weight" not in loaded


def test_conversion_is_needed_and_a_foreign_file_is_refused():
    net = Yolact(YOLACT_RESNET50)
    official = dict(net.state_dict(), **{"semantic_seg_conv.weight": torch.zeros(80, 256, 1, 1),
                                         "semantic_seg_conv.bias": torch.zeros(80)})
    with pytest.raises(RuntimeError, match="semantic_seg_conv"):
        net.load_state_dict(official, strict=True)
    assert isinstance(yolact.from_state("yolact-r50", official), Yolact)
    with pytest.raises(weights.WeightsError, match="does not fit YOLACT ResNet-101"):
        yolact.from_state("yolact-r101", official)  # R50 weights for R101


def test_checkpoints_are_registered_and_offline_says_what_to_fetch():
    r101, r50 = weights.get("yolact-r101"), weights.get("yolact-r50")
    assert r101.filename == "yolact_base_54_800000.pth" and r50.filename == "yolact_resnet50_54_800000.pth"
    assert r101.url.startswith("https://huggingface.co/dbolya/yolact-base/resolve/main/yolact_base_54_800000.pth")
    assert r50.url.startswith("https://huggingface.co/dbolya/yolact-resnet50/resolve/main/")
    assert r101.sha256 is None and r50.sha256 is None  # not published: recorded at first download
    with pytest.raises(weights.MissingWeightsError, match="yolact_base_54_800000.pth"):
        weights.fetch("yolact-r101")


def test_classes_map_to_the_tabs_coco_names():
    assert list(yolact.CLASS_NAMES) == LAYOUT["classes"]
    for category_id, contiguous in LAYOUT["coco_label_map"].items():
        assert yolact.CATEGORY_IDS[contiguous - 1] == int(category_id)
    assert set(yolact.CLASS_NAMES) == set(instances.CLASS_NAMES)


# --- priors, preprocessing, decoding -------------------------------------------------------------------------------


def test_priors_follow_the_reference_order_and_sizes():
    sizes = [tuple(size) for size in LAYOUT["priors"]["feature_sizes"]]
    assert feature_sizes(550) == sizes
    priors = make_priors(sizes, YOLACT_BASE)
    assert len(priors) == LAYOUT["priors"]["count"] == 19248
    for index, row in LAYOUT["priors"]["sample"].items():
        assert priors[int(index)].tolist() == pytest.approx(row, abs=1e-6), index


def test_feature_sizes_match_the_network(small_result, small_net):
    sizes = feature_sizes(SMALL)
    assert small_result.prototypes.shape == (32, 2 * sizes[0][0], 2 * sizes[0][1])
    assert len(small_net.priors(tuple(sizes), torch.device("cpu"))) == 3 * sum(h * w for h, w in sizes)


def test_preprocess_resizes_and_normalises_in_rgb_order():
    red = np.zeros((10, 30, 3), np.uint8)
    red[..., 0] = 255
    x = yolact.preprocess(red, 550)
    assert x.shape == (1, 3, 550, 550)
    expected = [(255 - 123.68) / 58.40, (0 - 116.78) / 57.12, (0 - 103.94) / 57.38]
    assert x[0, :, 100, 100].tolist() == pytest.approx(expected, rel=1e-5)


def test_box_decoding_uses_the_variances():
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    loc = torch.tensor([[1.0, -1.0, math.log(2) / 0.2, 0.0]])
    box = yolact.decode_boxes(loc, prior)[0].tolist()
    # centre (0.5 + 1 * 0.1 * 0.2, 0.5 - 0.02), size (0.2 * 2, 0.2)
    assert box == pytest.approx([0.32, 0.38, 0.72, 0.58], abs=1e-6)


# --- Fast NMS ------------------------------------------------------------------------------------------------------


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def brute_force_fast_nms(boxes, scores, threshold, top_k, max_detections):
    """The paper's definition, one pair at a time: per class, rank by score and keep the top_k; detection j is
    kept when no higher-ranked detection i of its class (kept or not) has IoU(i, j) above the threshold."""
    kept = []
    for c, row in enumerate(scores):
        ranked = sorted(range(len(row)), key=lambda p: -row[p])[:top_k]
        for j, p in enumerate(ranked):
            if all(_iou(boxes[ranked[i]], boxes[p]) <= threshold for i in range(j)):
                kept.append((row[p], p, c))
    kept.sort(key=lambda item: -item[0])
    return [(p, c) for _, p, c in kept[:max_detections]]


def _fast(boxes, scores, threshold=0.5, top_k=200, max_detections=100):
    indices, classes, kept = yolact.fast_nms(torch.tensor(boxes, dtype=torch.float64),
                                             torch.tensor(scores, dtype=torch.float64), threshold, top_k,
                                             max_detections)
    assert torch.all(kept[:-1] >= kept[1:])  # best first
    return list(zip(indices.tolist(), classes.tolist()))


HAND_BOXES = [
    [0, 0, 10, 10],  # 0: A
    [4, 0, 14, 10],  # 1: B, IoU(A, B) = 0.43
    [3, 0, 13, 10],  # 2: C, IoU(A, C) = 0.54, IoU(B, C) = 0.82
    [30, 30, 40, 40],  # 3: far away
    [30, 30, 40, 35],  # 4: half of 3: IoU exactly 0.5 (a tie, kept)
    [0, 0, 10, 10],  # 5: a duplicate of A
]
HAND_SCORES = [
    [0.9, 0.5, 0.8, 0.7, 0.6, 0.2],  # class 0: A beats C (0.54), C beats B: Fast NMS drops B as well
    [0.1, 0.95, 0.3, 0.0, 0.0, 0.9],  # class 1: B first; A and its duplicate 5 overlap B by 0.43: kept
    [0.3, 0.3, 0.3, 0.3, 0.3, 0.3],
]


def test_fast_nms_on_hand_made_boxes():
    assert _fast(HAND_BOXES, HAND_SCORES) == brute_force_fast_nms(HAND_BOXES, HAND_SCORES, 0.5, 200, 100)
    result = _fast(HAND_BOXES, HAND_SCORES)
    class0 = [p for p, c in result if c == 0]
    assert class0 == [0, 3, 4]  # A, the far box and its exact-0.5 half; B (IoU with C 0.82 > 0.5) and C go
    # Class 1: 5 (A's duplicate) overlaps B by 0.43 and stays; C and A go. Like the reference, no second score
    # threshold: 3 and 4 stay with score 0 (predict's score threshold removes them later).
    assert [p for p, c in result if c == 1] == [1, 5, 3, 4]
    assert _fast(HAND_BOXES, HAND_SCORES, max_detections=2) == [(1, 1), (0, 0)]
    assert [p for p, c in _fast(HAND_BOXES, HAND_SCORES, top_k=2) if c == 0] == [0]  # A and C ranked, C dropped


def test_fast_nms_differs_from_greedy_nms_where_the_paper_says():
    from torchvision.ops import nms

    boxes = torch.tensor([[0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]], dtype=torch.float32)  # a chain
    scores = torch.tensor([0.9, 0.8, 0.7])
    # IoU(0,1) = 0.54 and IoU(1,2) = 0.54 suppress; IoU(0,2) = 0.25 does not.
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]  # greedy: 1 is gone, so it cannot remove 2
    assert _fast(boxes.tolist(), [scores.tolist()]) == [(0, 0)]  # Fast NMS: 1 still removes 2


@pytest.mark.parametrize("seed", range(12))
def test_fast_nms_equals_the_brute_force_definition(seed):
    rng = np.random.default_rng(seed)
    count, classes = int(rng.integers(1, 40)), int(rng.integers(1, 5))
    corners = rng.uniform(0, 50, (count, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(2, 30, (count, 2))], axis=1)
    boxes = np.round(boxes)  # integer corners: some IoUs land exactly on round values
    scores = rng.permutation(count * classes).reshape(classes, count) / (count * classes)  # no ties
    threshold, top_k = float(rng.choice([0.3, 0.5, 0.7])), int(rng.integers(1, 30))
    expected = brute_force_fast_nms(boxes.tolist(), scores.tolist(), threshold, top_k, 15)
    assert _fast(boxes.tolist(), scores.tolist(), threshold, top_k, 15) == expected


# --- mask assembly -------------------------------------------------------------------------------------------------


def _two_prototypes() -> torch.Tensor:
    left = torch.zeros(8, 8)
    left[:, :4] = 1.0
    top = torch.zeros(8, 8)
    top[:4, :] = 1.0
    return torch.stack([left, top])


def test_mask_assembly_is_the_sigmoid_of_the_linear_combination_cropped_and_thresholded():
    prototypes = _two_prototypes()
    coefficients = torch.tensor([[4.0, -4.0]])
    box = torch.tensor([[0.25, 0.25, 0.75, 1.0]])  # on the 8 x 8 grid: columns 2..6, rows 2..8
    probabilities = yolact.assemble(prototypes, coefficients, box)[0]
    # left & bottom: sigmoid(4); left & top and right & bottom: sigmoid(0) = 0.5; right & top: sigmoid(-4)
    linear = 4.0 * prototypes[0] - 4.0 * prototypes[1]
    window = yolact.crop_window(box, 8, 8)[0].tolist()
    assert window == [1.0, 1.0, 7.0, 8.0]  # widened by one cell each way, clamped to the grid
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[1:8, 1:7] = True
    assert torch.equal(probabilities, torch.where(inside, torch.sigmoid(linear), torch.zeros(())))
    mask = yolact.upscale(probabilities[None], 8, 8)[0]  # same size: thresholding only
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[4:8, 1:4] = True  # sigmoid(4) inside the crop; exactly 0.5 is not above the threshold
    assert torch.equal(mask, expected)
    assert torch.equal(yolact.upscale(probabilities[None], 8, 8, threshold=0.4)[0],
                       inside & (linear >= 0))  # a lower threshold takes in the 0.5 cells


def test_upscaling_doubles_a_binary_mask_exactly():
    cells = torch.zeros(1, 8, 8)
    cells[0, 4:8, 1:4] = 1.0
    mask = yolact.upscale(cells, 16, 16)[0].numpy()
    assert np.array_equal(mask, np.kron(cells[0].numpy(), np.ones((2, 2))).astype(bool))


def test_assembly_steps_rebuild_each_predicted_mask(small_result):
    assert len(small_result) > 0
    for index in range(min(len(small_result), 5)):
        steps = yolact.assembly_steps(small_result, index)
        assert np.array_equal(steps.mask, small_result.instances.masks[index])
        assert np.allclose(steps.weighted.sum(axis=0), steps.linear, atol=1e-5)
        assert np.allclose(steps.sigmoid, 1 / (1 + np.exp(-steps.linear)), atol=1e-6)
        x1, y1, x2, y2 = steps.window
        rows, cols = np.nonzero(steps.cropped)
        assert rows.min() >= y1 and rows.max() < y2 and cols.min() >= x1 and cols.max() < x2
        assert abs(steps.coefficients[steps.order[0]]) == np.abs(steps.coefficients).max()
    with pytest.raises(IndexError):
        yolact.assembly_steps(small_result, len(small_result))


# --- the pipeline with random weights ------------------------------------------------------------------------------


def test_random_weights_give_well_formed_instances(small_result):
    found = small_result.instances
    height, width = drawn_scene().shape[:2]
    n = len(found)
    assert 0 < n <= YOLACT_RESNET50.max_detections
    assert found.boxes.shape == (n, 4) and found.boxes.dtype == np.float32
    assert np.all(found.boxes[:, :2] >= 0)
    assert np.all(found.boxes[:, 2] <= width) and np.all(found.boxes[:, 3] <= height)
    assert np.all(found.boxes[:, :2] <= found.boxes[:, 2:])
    assert found.masks.shape == (n, height, width) and found.masks.dtype == bool
    assert np.all(np.diff(found.scores) <= 0) and np.all(found.scores > 0.05) and np.all(found.scores <= 1)
    assert set(found.labels) <= {"person", "dog", "car"} and len(set(found.labels)) > 1
    assert [instances.COCO_CATEGORIES[i] for i in found.label_ids] == found.labels
    assert found.proposals.shape == (n, 4) and found.working_size == (SMALL, SMALL)
    assert small_result.coefficients.shape == (n, 32)
    assert np.all(np.abs(small_result.coefficients) <= 1)
    assert small_result.prototypes.min() >= 0  # after ReLU
    for box, mask in zip(found.boxes, found.masks):  # masks stay inside their box (plus the crop's one-cell margin)
        margin = 2 * max(height, width) / small_result.prototypes.shape[1] + 1
        rows, cols = np.nonzero(mask)
        if len(rows):
            assert cols.min() >= box[0] - margin and cols.max() <= box[2] + margin
            assert rows.min() >= box[1] - margin and rows.max() <= box[3] + margin


def test_class_filter_keeps_the_same_detections_of_those_classes(small_net, small_result):
    dogs = yolact.predict(small_net, drawn_scene(), score_threshold=0.05, classes="dog")
    assert set(dogs.instances.labels) == {"dog"}
    unfiltered = [i for i, label in enumerate(small_result.instances.labels) if label == "dog"]
    if len(small_result) < YOLACT_RESNET50.max_detections:  # per-class NMS: nothing else changes
        assert np.allclose(dogs.instances.scores, small_result.instances.scores[unfiltered])
        assert np.array_equal(dogs.instances.masks, small_result.instances.masks[unfiltered])
    assert len(yolact.predict(small_net, drawn_scene(), score_threshold=1.0)) == 0


def test_run_gives_the_tabs_outputs_and_the_prototype_view(small_net, monkeypatch):
    monkeypatch.setattr(runtime, "MODELS", runtime.ModelCache())
    device = runtime.device()
    runtime.MODELS.get(yolact.cache_key("yolact-r50", device), lambda: runtime.prepare(small_net, device))
    loaded = images.load(drawn_scene())
    out = instance.run(loaded, model="yolact-r50", score_threshold=0.05, classes="people,dog", detection=2,
                     working_size=800, proposals=100, rpn_top_n=1000)  # Mask R-CNN's options are ignored
    for name in ("overlay", "proposals", "prototypes", "assembly", "coefficients"):
        image = out.images[name]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
    assert out.images["overlay"].shape == loaded.rgb.shape
    assert out.images["labels"].shape == loaded.rgb.shape[:2]
    record = out.record
    assert record["model"] == "yolact-r50" and record["detection"] == 2
    assert {row["label"] for row in record["instances"]} <= {"person", "dog"}
    assert len(record["coefficients"]) == record["instance_count"] and len(record["coefficients"][0]) == 32
    assert record["prototypes"]["count"] == 32
    assert "yolact-r50" in out.summary
    nothing = instance.run(loaded, model="yolact-r50", score_threshold=1.0)
    assert nothing.record["instance_count"] == 0 and nothing.record["detection"] is None
    assert nothing.images["assembly"].dtype == np.uint8


def test_signed_colours_are_white_at_zero_and_saturated_at_the_scale():
    colors = yolact_views.signed_colors(np.array([[-2.0, 0.0, 2.0, 1.0]]), scale=2.0)[0]
    assert colors[1].tolist() == [255, 255, 255]
    assert colors[0].tolist() == [31, 119, 180] and colors[2].tolist() == [214, 39, 40]


def test_the_instance_tab_answers_with_the_prototype_view(served_app, monkeypatch, tmp_path):
    """YOLACT through the instance tab's endpoint: a confident random net seeded into the in-process app's cache."""
    from gradio_client import Client, handle_file
    from PIL import Image

    from models import runtime

    cache = runtime.ModelCache()
    monkeypatch.setattr(runtime, "MODELS", cache)
    device = runtime.device()
    cache.get(yolact.cache_key("yolact-r50", device), lambda: runtime.prepare(confident_random_net(), device))
    Image.fromarray(drawn_scene(96, 128)).save(tmp_path / "scene.png")
    (before, after), status, table, proposals, labels, prototypes, coefficients, assembly, record = Client(
        served_app, verbose=False).predict(handle_file(str(tmp_path / "scene.png")), "yolact-r50", [], 0.05, 0.5, 0.5,
                                           True, True, 800, 20, 1000, 1, api_name="/instance")
    assert Image.open(after).size == (128, 96) and "yolact-r50" in status and len(table["data"]) >= 1
    assert prototypes is not None and coefficients is not None and assembly is not None
    assert record["model"] == "yolact-r50" and len(record["instances"]) == len(table["data"])
