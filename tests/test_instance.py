"""Instance segmentation (Mask R-CNN): random weights, hand-made outputs, offline rules, the endpoint."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import drawn_scene
from models import draw, images, instances, maskrcnn, runtime, weights
from models.tabs import instance

FAST = {"working_size": 320, "rpn_top_n": 50}  # small and few proposals: seconds on two shared CPU cores


# --- Mask R-CNN ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def maskrcnn_v2():
    torch.manual_seed(0)
    return runtime.prepare(maskrcnn.build("maskrcnn-r50-fpn-v2"), torch.device("cpu"))


def _instances(scores, labels, masks, boxes=None) -> instances.Instances:
    masks = np.asarray(masks, bool)
    ids = np.array([instances.COCO_CATEGORIES.index(label) for label in labels], np.int64)
    if boxes is None:
        boxes = np.array([[0, 0, masks.shape[2], masks.shape[1]]] * len(labels), np.float32).reshape(-1, 4)
    return instances.Instances(np.asarray(boxes, np.float32), ids, list(labels), np.asarray(scores, np.float32), masks,
                          np.zeros((0, 4), np.float32))


def test_coco_categories_are_torchvisions():
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights

    assert instances.COCO_CATEGORIES == tuple(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
    assert instances.COCO_CATEGORIES == tuple(MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"])
    assert len(instances.COCO_CATEGORIES) == 91 and len(instances.CLASS_NAMES) == 80
    for group in instances.CLASS_GROUPS.values():
        assert set(group) <= set(instances.CLASS_NAMES)


def test_checkpoints_are_torchvisions_files():
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights

    for name, enum in (("maskrcnn-r50-fpn-v2", MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1),
                       ("maskrcnn-r50-fpn", MaskRCNN_ResNet50_FPN_Weights.COCO_V1)):
        checkpoint = weights.get(name)
        assert checkpoint.url == enum.url and enum.url.endswith(checkpoint.filename)
        assert checkpoint.filename.rsplit("-", 1)[1] == checkpoint.sha256[:8] + ".pth"  # torchvision's hash prefix
        assert abs(checkpoint.bytes / 2**20 - enum.meta["_file_size"]) < 0.01  # torchvision lists MiB


def test_v1_has_torchvisions_trained_layout_and_eps_fix():
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    from torchvision.ops.misc import FrozenBatchNorm2d

    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    net = maskrcnn.build("maskrcnn-r50-fpn")
    ours = net.state_dict()
    # Same tensors as torchvision's builder; FrozenBatchNorm2d only lacks BatchNorm's step counters.
    assert set(reference) - set(ours) == {key for key in reference if key.endswith("num_batches_tracked")}
    assert set(ours) <= set(reference) and all(ours[key].shape == reference[key].shape for key in ours)
    frozen = [m for m in net.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(frozen) == 53 and all(m.eps == 1e-5 for m in frozen)
    # The official v1 weights run with eps 0, as torchvision does.
    loaded = maskrcnn.from_state("maskrcnn-r50-fpn", ours)
    assert all(m.eps == 0.0 for m in loaded.modules() if isinstance(m, FrozenBatchNorm2d))
    own = maskrcnn.from_state("maskrcnn-r50-fpn", ours, official=False)  # a user's checkpoint keeps the current default
    assert all(m.eps == 1e-5 for m in own.modules() if isinstance(m, FrozenBatchNorm2d))
    with pytest.raises(weights.WeightsError, match="does not fit"):
        maskrcnn.from_state("maskrcnn-r50-fpn-v2", ours)


def test_v2_predicts_on_a_drawn_image(maskrcnn_v2):
    scene = drawn_scene(96, 128)
    found = maskrcnn.predict(maskrcnn_v2, scene, score_threshold=0.05, mask_threshold=0.5, top_proposals=30, **FAST)
    n = len(found)
    assert found.boxes.shape == (n, 4) and found.boxes.dtype == np.float32
    assert found.masks.shape == (n, 96, 128) and found.masks.dtype == bool
    assert found.scores.dtype == np.float32 and np.all(found.scores > 0.05)
    assert np.all(np.diff(found.scores) <= 0)  # best first
    assert all(label in instances.COCO_CATEGORIES[1:] for label in found.labels)  # random weights may pick "N/A" ids
    assert [instances.COCO_CATEGORIES[i] for i in found.label_ids] == found.labels
    assert found.working_size == (320, 240)  # 128 x 96 scaled so the longest side is 320
    assert 0 < len(found.proposals) <= 30 and found.proposals.shape[1] == 4
    assert found.proposals.min() >= -0.01 and found.proposals[:, [0, 2]].max() <= 128.01
    assert found.proposals[:, [1, 3]].max() <= 96.01  # proposals are mapped back to input pixels
    # The filter applied to the same detections keeps exactly the named classes.
    named = [label for label in found.labels if label in instances.CLASS_NAMES]
    if named:
        label = named[-1]
        kept = instances.select(found, 0.05, [label])
        assert set(kept.labels) == {label} and len(kept) == found.labels.count(label)


def test_v2_score_threshold_one_keeps_nothing(maskrcnn_v2):
    found = maskrcnn.predict(maskrcnn_v2, drawn_scene(96, 128), score_threshold=1.0, **FAST)
    assert len(found) == 0 and found.masks.shape == (0, 96, 128) and found.boxes.shape == (0, 4)
    assert instances.label_image(found).shape == (96, 128) and not instances.label_image(found).any()


def test_v1_predicts_on_a_drawn_image():
    torch.manual_seed(0)
    net = runtime.prepare(maskrcnn.from_state("maskrcnn-r50-fpn", maskrcnn.build("maskrcnn-r50-fpn").state_dict()),
                      torch.device("cpu"))
    found = maskrcnn.predict(net, drawn_scene(64, 80), score_threshold=0.05, **FAST)
    assert found.masks.shape == (len(found), 64, 80) and found.boxes.shape == (len(found), 4)
    assert found.working_size == (300, 240)  # short side 240 (3/4 of 320) wins


def test_select_applies_threshold_and_classes():
    masks = np.zeros((5, 4, 4), bool)
    found = _instances([0.6, 0.95, 0.3, 1.0, 0.8], ["dog", "person", "car", "cat", "truck"], masks)
    assert instances.select(found, 0.5).labels == ["cat", "person", "truck", "dog"]  # above 0.5, best first
    assert instances.select(found, 1.0).labels == []  # even a perfect 1.0 is not above 1.0
    assert instances.select(found, 0.0, ["people"]).labels == ["person"]
    assert instances.select(found, 0.0, "vehicles").labels == ["truck", "car"]
    assert instances.select(found, 0.5, "animals, person").labels == ["cat", "person", "dog"]
    assert instances.select(found, 0.0, "").labels == instances.select(found, 0.0, None).labels  # empty: every class
    kept = instances.select(found, 0.7)
    assert kept.masks.shape == (3, 4, 4) and kept.boxes.shape == (3, 4) and list(kept.label_ids) == [17, 1, 8]
    with pytest.raises(ValueError, match="unknown class 'unicorn'"):
        instances.select(found, 0.0, "dog,unicorn")


def test_overlay_paints_exactly_the_mask_pixels():
    rgb = np.full((20, 30, 3), 40, np.uint8)
    rgb[:, :, 1] = np.arange(30, dtype=np.uint8)[None, :] * 3
    masks = np.zeros((2, 20, 30), bool)
    masks[0, 2:8, 3:10] = True
    masks[1, 10:18, 12:28] = True
    masks[1, 5:8, 8:12] = True  # overlaps instance 0 (the better one) on rows 5-7, columns 8-9
    found = _instances([0.9, 0.7], ["person", "dog"], masks)
    colors = instances.instance_colors(2)
    drawn = instances.overlay(rgb, found, opacity=1.0, show_boxes=False)
    assert np.all(drawn[masks[0]] == colors[0])  # the best instance is on top where they overlap
    only_second = masks[1] & ~masks[0]
    assert np.all(drawn[only_second] == colors[1])
    untouched = ~(masks[0] | masks[1])
    assert np.array_equal(drawn[untouched], rgb[untouched])
    half = instances.overlay(rgb, found, opacity=0.5, show_boxes=False)
    expected = (rgb[only_second].astype(float) + np.array(colors[1])) / 2
    assert np.abs(half[only_second] - expected).max() <= 1.0
    assert np.array_equal(half[untouched], rgb[untouched])
    boxed = instances.overlay(rgb, found, opacity=1.0, show_boxes=True, show_labels=False)
    assert boxed.shape == rgb.shape and not np.array_equal(boxed, drawn)


def test_label_image_holds_instance_ids():
    masks = np.zeros((3, 10, 12), bool)
    masks[0, 0:4, 0:4] = True
    masks[1, 5:9, 6:12] = True
    masks[2, 2:5, 2:6] = True  # overlaps instance 1 (the best) on rows 2-3, columns 2-3
    found = _instances([0.9, 0.8, 0.5], ["person", "car", "dog"], masks)
    labels = instances.label_image(found)
    assert labels.dtype == np.uint8 and labels.shape == (10, 12)
    assert np.all(labels[masks[0]] == 1) and np.all(labels[masks[1]] == 2)
    assert np.all(labels[masks[2] & ~masks[0]] == 3)
    assert np.all(labels[~masks.any(axis=0)] == 0)
    table = instances.instance_table(found)
    assert [row["id"] for row in table] == [1, 2, 3] and [row["mask_area_px"] for row in table] == [16, 24, 12]
    assert table[1] == {"id": 2, "label": "car", "score": 0.8, "box": [0.0, 0.0, 12.0, 10.0], "mask_area_px": 24,
                        "color": draw.hex_color(draw.color(1))}
    many = np.zeros((300, 2, 2), bool)
    many[299, 1, 1] = True
    wide = draw.label_image(many)
    assert wide.dtype == np.uint16 and wide[1, 1] == 300


def test_instance_pipeline_with_random_weights(maskrcnn_v2, monkeypatch):
    monkeypatch.setattr(maskrcnn, "load", lambda *args, **kwargs: maskrcnn_v2)
    scene = images.load(drawn_scene(96, 128))
    options = instance.TASK.parse_options(["score_threshold=0.05", "classes=people,animals", "proposals=20",
                                       "working_size=320", "rpn_top_n=50"])
    out = instance.TASK.run(scene, **options)
    assert out.images["overlay"].shape == out.images["proposals"].shape == (96, 128, 3)
    assert out.images["labels"].shape == (96, 128) and out.images["labels"].dtype == np.uint8
    record = json.loads(json.dumps(out.record))
    assert record["instance_count"] == len(record["instances"]) == int(out.images["labels"].max())
    allowed = set(instances.CLASS_GROUPS["people"] + instances.CLASS_GROUPS["animals"])
    assert all(row["label"] in allowed and row["score"] > 0.05 for row in record["instances"])
    assert record["working_size"] == [320, 240] and record["proposals_shown"] == 20
    assert record["classes"] == sorted(allowed)


def test_instance_offline_names_the_missing_checkpoint():
    with pytest.raises(weights.MissingWeightsError, match="python app.py download maskrcnn-r50-fpn-v2"):
        instance.TASK.run(images.load(drawn_scene()), model="maskrcnn-r50-fpn-v2")


def test_instance_options_parse():
    options = instance.TASK.parse_options(["classes=people,dog", "opacity=0.3", "show_boxes=no"])
    assert options["classes"] == "people,dog" and options["opacity"] == 0.3 and options["show_boxes"] is False
    assert instances.expand_classes(options["classes"]) == {"person", "dog"}
    assert maskrcnn.working_sizes(800) == (600, 800) and maskrcnn.working_sizes(1333) == (800, 1333)


def test_defaults_fit_the_device_and_the_result_line_says_which(maskrcnn_v2, monkeypatch):
    """On a GPU the tab works at torchvision's official test size (800/1333); only a CPU gets the reduced size, and
    the result line names the choice. The rest of the app starts from the same device defaults."""
    from models.tabs import cyclegan as cyclegan_tab

    assert instance.TASK.defaults(accelerated=True)["working_size"] == 1333
    assert instance.TASK.defaults(accelerated=False)["working_size"] == 800
    assert instance.TASK.parse_options([], accelerated=True)["working_size"] == 1333
    assert cyclegan_tab.TASK.defaults(accelerated=True)["working_side"] == 0  # as uploaded, as the official test
    assert cyclegan_tab.TASK.defaults(accelerated=False)["working_side"] == 512
    monkeypatch.setattr(maskrcnn, "load", lambda *args, **kwargs: maskrcnn_v2)
    monkeypatch.setattr(maskrcnn_v2.rpn, "_post_nms_top_n", dict(maskrcnn_v2.rpn._post_nms_top_n))
    scene = images.load(drawn_scene(300, 400))
    assert runtime.device().type == "cpu"  # this machine: the reduced size, said so
    reduced = instance.TASK.run(scene, score_threshold=0.9, rpn_top_n=50)
    assert reduced.record["working_size"] == [800, 600]
    assert "reduced for a CPU (1333 on a GPU" in reduced.summary and "800x600" in reduced.summary
    official = instance.TASK.run(scene, score_threshold=0.9, rpn_top_n=50, working_size=1333)
    assert official.record["working_size"] == [1066, 800]  # shorter side 800 wins (torchvision rounds down)
    assert "torchvision's official test size" in official.summary



@pytest.fixture
def seeded_maskrcnn(monkeypatch, maskrcnn_v2):
    """The app's model cache holding a random Mask R-CNN v2 under its official key."""
    cache = runtime.ModelCache()
    monkeypatch.setattr(runtime, "MODELS", cache)
    cache.get(maskrcnn.cache_key("maskrcnn-r50-fpn-v2", runtime.device()), lambda: maskrcnn_v2)
    return cache


def test_instance_tab_answers_through_its_endpoint(served_app, seeded_maskrcnn, tmp_path):
    from gradio_client import Client, handle_file
    from PIL import Image

    Image.fromarray(drawn_scene(96, 128)).save(tmp_path / "scene.png")
    client = Client(served_app, verbose=False)
    (before, after), status, table, proposals, labels, prototypes, _, _, record = client.predict(
        image=handle_file(str(tmp_path / "scene.png")), score_threshold=0.0, working_size=320, rpn_top_n=100,
        api_name="/instance")  # by keyword, named like the command line's --set keys; the rest keep their defaults
    assert record["model"] == "maskrcnn-r50-fpn-v2" and len(record["instances"]) == len(table["data"])
    assert prototypes is None  # YOLACT's view only
    assert Image.open(after).size == (128, 96) and "maskrcnn-r50-fpn-v2" in status
    label_image = np.asarray(Image.open(labels))
    assert label_image.shape == (96, 128)  # ids are table rows (overlapping instances may hide a few)
    assert set(np.unique(label_image)) - {0} <= {row[0] for row in table["data"]} and label_image.max() > 0
