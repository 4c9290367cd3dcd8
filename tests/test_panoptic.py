"""Panoptic segmentation (Mask2Former): a tiny random model, hand-made outputs, the Hugging Face offline rules, the endpoint."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import drawn_scene
from models import checkpoints, draw, hub, images, mask2former, mask2former_views as m2f_views, runtime, weights
from models.tabs import panoptic as tab


# --- Mask2Former -----------------------------------------------------------------------------------------------------


def _tiny_config():
    from transformers import Mask2FormerConfig, SwinConfig

    backbone = SwinConfig(embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    return Mask2FormerConfig(backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32,
                             encoder_feedforward_dim=64, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
                             dim_feedforward=64, num_queries=12, id2label=mask2former.COCO_ID2LABEL)


@pytest.fixture(scope="module")
def tiny_mask2former():
    from transformers import Mask2FormerForUniversalSegmentation

    torch.manual_seed(0)
    return mask2former.wrap(Mask2FormerForUniversalSegmentation(_tiny_config()))


def test_coco_panoptic_labels_things_then_stuff(tiny_mask2former):
    assert len(mask2former.COCO_PANOPTIC_LABELS) == 133 == len(set(mask2former.COCO_PANOPTIC_LABELS))
    assert tiny_mask2former.thing_ids == frozenset(range(80))
    stuff = mask2former.COCO_PANOPTIC_LABELS[80:]
    assert "sky-other-merged" in stuff and "road" in stuff and "person" not in stuff
    # The 80 things are the 80 COCO detection classes Mask R-CNN knows.
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights

    mask_rcnn = MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"]
    assert mask2former.COCO_THINGS == frozenset(mask_rcnn) - {"__background__", "N/A"}


def test_mask2former_runs_end_to_end(tiny_mask2former):
    scene = drawn_scene(96, 128)
    result = mask2former.predict(tiny_mask2former, scene, threshold=0.0, mask_threshold=0.0,
                                 overlap_threshold=0.0, working_size=128)
    assert result.segmentation.shape == (96, 128) and result.segmentation.dtype == np.int32
    assert result.working_size == (128, 96)
    ids = {segment["id"] for segment in result.segments}
    assert ids == set(range(1, len(ids) + 1)) and set(np.unique(result.segmentation)) <= ids | {0}
    stuff_labels = [s["label_id"] for s in result.segments if s["label_id"] not in tiny_mask2former.thing_ids]
    assert len(stuff_labels) == len(set(stuff_labels))  # one segment per stuff class
    views = m2f_views.panoptic_views(result.segmentation, result.segments, tiny_mask2former.id2label,
                                     tiny_mask2former.thing_ids)
    assert not (views.stuff_mask & views.things_mask).any()
    assert abs(sum(row["area_pct"] for row in views.legend) + views.void_pct - 100) < 0.1
    default = mask2former.predict(tiny_mask2former, scene)  # the checkpoint's own 384 x 384, default thresholds
    assert default.working_size == (384, 384) and default.segmentation.shape == (96, 128)


def test_panoptic_pipeline_with_random_weights(tiny_mask2former, monkeypatch):
    monkeypatch.setattr(mask2former, "load", lambda *args, **kwargs: tiny_mask2former)
    scene = images.load(drawn_scene(96, 128))
    out = tab.TASK.run(scene, **tab.TASK.parse_options(["threshold=0", "mask_threshold=0",
                                                        "overlap_threshold=0", "working_size=128"]))
    for name in ("panoptic", "stuff", "things", "segments"):
        assert out.images[name].shape == (96, 128, 3) and out.images[name].dtype == np.uint8
    assert out.images["labels"].shape == (96, 128)
    record = json.loads(json.dumps(out.record))
    assert record["segment_count"] == record["things"] + record["stuff"] == len(record["segments"]) > 0
    assert record["checkpoint"] == "random" and record["working_size"] == [128, 96]
    assert set(np.unique(out.images["labels"])) - {0} == {row["id"] for row in record["segments"]}


def test_panoptic_views_split_things_and_stuff_exactly():
    seg = np.zeros((10, 10), np.int32)
    seg[0:4] = 1  # sky: 40 px
    seg[4:7, 0:5] = 2  # a person: 15 px
    seg[4:7, 5:10] = 3  # another person: 15 px
    seg[7:10] = 4  # road: 30 px, less the 5 void pixels below
    seg[9, 5:10] = 0
    infos = [{"id": 1, "label_id": 119, "score": 0.99}, {"id": 2, "label_id": 0, "score": 0.9},
             {"id": 3, "label_id": 0, "score": 0.85}, {"id": 4, "label_id": 100, "score": 0.95},
             {"id": 5, "label_id": 2, "score": 0.9}]  # a car that lost all its pixels: not in the legend
    views = m2f_views.panoptic_views(seg, infos, mask2former.COCO_ID2LABEL, frozenset(range(80)))
    assert np.array_equal(views.stuff_mask, np.isin(seg, [1, 4]))
    assert np.array_equal(views.things_mask, np.isin(seg, [2, 3]))
    assert np.array_equal(views.stuff.any(axis=2), views.stuff_mask)  # coloured exactly on stuff pixels
    assert np.array_equal(views.things.any(axis=2), views.things_mask)
    assert np.array_equal(views.merged, views.stuff + views.things)  # the panoptic map is the two layers together
    assert not views.merged[seg == 0].any()
    assert [(row["label"], row["kind"], row["area_px"], row["area_pct"]) for row in views.legend] == [
        ("sky-other-merged", "stuff", 40, 40.0), ("road", "stuff", 25, 25.0),
        ("person", "thing", 15, 15.0), ("person", "thing", 15, 15.0)]
    assert views.void_pct == 5.0
    assert views.colors[2] != views.colors[3]  # two people, two shades
    for row in views.legend:
        assert np.all(views.merged[seg == row["id"]] == views.colors[row["id"]])
        assert row["color"] == draw.hex_color(views.colors[row["id"]])
    drawn = m2f_views.over_photo(np.zeros((10, 10, 3), np.uint8), views.things, views.things_mask, 1.0)
    assert np.array_equal(drawn, views.things)


def _outputs(labels: list[int], rows: list[slice], num_labels: int = 133, confidence: float = 10.0):
    """Hand-made Mask2Former outputs: query k predicts labels[k] and covers rows[k] of a 384 x 384 mask."""
    classes = torch.full((1, len(labels), num_labels + 1), -confidence)
    masks = torch.full((1, len(labels), 384, 384), -confidence)
    for k, (label, rows_k) in enumerate(zip(labels, rows)):
        classes[0, k, label] = confidence
        masks[0, k, rows_k] = confidence
    return SimpleNamespace(class_queries_logits=classes, masks_queries_logits=masks)


def test_postprocess_fuses_stuff_but_keeps_instances_apart():
    from transformers import Mask2FormerImageProcessor

    processor = Mask2FormerImageProcessor()
    quarters = [slice(0, 96), slice(96, 192), slice(192, 288), slice(288, 384)]
    outputs = _outputs([119, 0, 119, 0], quarters)  # sky, person, sky, person
    seg, segments = mask2former.postprocess(processor, outputs, (8, 8), frozenset(range(80)))
    expected = np.repeat(np.array([1, 2, 1, 3]), 2)[:, None].repeat(8, axis=1)
    assert np.array_equal(seg, expected)
    assert [(s["id"], s["label_id"], s["was_fused"]) for s in segments] == [(1, 119, True), (2, 0, False),
                                                                            (3, 0, False)]
    # The library's own fusion would give the second person the first one's id (see mask2former.postprocess).
    library = processor.post_process_panoptic_segmentation(outputs, label_ids_to_fuse={119}, target_sizes=[(8, 8)])
    assert len(np.unique(library[0]["segmentation"])) == 2
    # A query whose class probability is under the threshold makes no segment.
    weak = _outputs([119, 0], [slice(0, 192), slice(192, 384)])
    weak.class_queries_logits[0, 1] = 0.0  # uniform over 134 classes
    seg, segments = mask2former.postprocess(processor, weak, (8, 8), frozenset(range(80)), threshold=0.8)
    # transformers hands every pixel to its best remaining query (no mask-probability cut on the final map).
    assert [s["label_id"] for s in segments] == [119] and np.all(seg == 1)
    seg, segments = mask2former.postprocess(processor, weak, (8, 8), frozenset(range(80)), threshold=1.0)
    assert segments == [] and not seg.any()


def test_fuse_stuff_renumbers_and_keeps_best_score():
    seg = np.array([[5, 5, 7], [9, 0, 7]], np.int32)
    infos = [{"id": 5, "label_id": 100, "score": 0.6}, {"id": 7, "label_id": 3, "score": 0.9},
             {"id": 9, "label_id": 100, "score": 0.8}]
    fused, segments = mask2former.fuse_stuff(seg, infos, frozenset(range(80)))
    assert np.array_equal(fused, [[1, 1, 2], [1, 0, 2]])
    assert segments == [{"id": 1, "label_id": 100, "score": 0.8, "was_fused": True},
                        {"id": 2, "label_id": 3, "score": 0.9, "was_fused": False}]


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """No Hugging Face cache and an empty $CVPG_HOME: nothing of any Mask2Former is on this machine."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("CVPG_HOME", str(tmp_path / "home"))
    return tmp_path


def test_offline_missing_hub_model_names_repo_and_command(empty_hub):
    with pytest.raises(weights.MissingWeightsError) as error:
        mask2former.load("mask2former-swin-tiny-coco-panoptic", torch.device("cpu"))
    message = str(error.value)
    assert "facebook/mask2former-swin-tiny-coco-panoptic" in message and "offline" in message
    assert "python app.py download mask2former-swin-tiny-coco-panoptic" in message
    assert hub.status(mask2former.CHECKPOINTS["mask2former-swin-large-coco-panoptic"]) == "not cached"


def test_hf_hub_offline_variable_is_enough(empty_hub, monkeypatch):
    monkeypatch.setattr(checkpoints, "_offline", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(weights.MissingWeightsError, match="mask2former-swin-base-coco-panoptic"):
        hub.fetch(mask2former.CHECKPOINTS["mask2former-swin-base-coco-panoptic"])


def test_saved_folder_loads_offline(tiny_mask2former, empty_hub):
    folder = empty_hub / "home" / "mask2former-swin-tiny-coco-panoptic"  # placed by hand in $CVPG_HOME
    tiny_mask2former.net.save_pretrained(folder)
    tiny_mask2former.processor.save_pretrained(folder)
    assert hub.fetch(mask2former.CHECKPOINTS["mask2former-swin-tiny-coco-panoptic"]) == folder
    model = mask2former.load_folder(folder, torch.device("cpu"))
    assert model.thing_ids == tiny_mask2former.thing_ids and model.processor.size == tiny_mask2former.processor.size
    scene = drawn_scene(64, 64)
    a = mask2former.predict(model, scene, 0.0, 0.0, 0.0, working_size=64)
    b = mask2former.predict(tiny_mask2former, scene, 0.0, 0.0, 0.0, working_size=64)
    assert np.array_equal(a.segmentation, b.segmentation)
    with pytest.raises(weights.WeightsError, match="no config.json"):
        mask2former.load_folder(empty_hub, torch.device("cpu"))


def test_hub_cache_snapshot_is_found_offline(tiny_mask2former, empty_hub):
    # The Hugging Face cache's layout: refs/main names the commit whose snapshot folder holds the files.
    repo = empty_hub / "hub" / "models--facebook--mask2former-swin-tiny-coco-panoptic"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    tiny_mask2former.net.save_pretrained(snapshot)
    tiny_mask2former.processor.save_pretrained(snapshot)
    assert hub.fetch(mask2former.CHECKPOINTS["mask2former-swin-tiny-coco-panoptic"]) == snapshot
    assert hub.status(mask2former.CHECKPOINTS["mask2former-swin-tiny-coco-panoptic"]) == f"cached ({snapshot})"
    try:
        model = mask2former.load("mask2former-swin-tiny-coco-panoptic", torch.device("cpu"))
        assert model.source == "facebook/mask2former-swin-tiny-coco-panoptic@0123456789"
    finally:
        runtime.MODELS.clear()  # random weights must not stay cached under the real model's name



@pytest.fixture
def seeded_mask2former(monkeypatch, tiny_mask2former):
    """The app's model cache holding a tiny random Mask2Former under the official model's key."""
    cache = runtime.ModelCache()
    monkeypatch.setattr(runtime, "MODELS", cache)
    cache.get(mask2former.cache_key(mask2former.DEFAULT_MODEL, runtime.device()), lambda: tiny_mask2former)
    return cache


def test_panoptic_tab_answers_through_its_endpoint(served_app, seeded_mask2former, tmp_path):
    from gradio_client import Client, handle_file
    from PIL import Image

    Image.fromarray(drawn_scene(96, 128)).save(tmp_path / "scene.png")
    client = Client(served_app, verbose=False)
    (before, after), status, stuff, things, legend, segments, record = client.predict(
        image=handle_file(str(tmp_path / "scene.png")), threshold=0.0, overlap_threshold=0.0,
        api_name="/panoptic")  # by keyword, named like the command line's --set keys; the rest keep their defaults
    assert Image.open(after).size == Image.open(stuff).size == (128, 96)
    assert {row[1] for row in legend["data"]} <= {"thing", "stuff"} and "things" in status
    assert record["model"] == mask2former.DEFAULT_MODEL and record["size"] == [128, 96]
    assert record["working_size"] == [384, 384]  # working_size 0: the checkpoint's own
    assert record["segment_count"] == record["things"] + record["stuff"] == len(legend["data"])
    assert [row[0] for row in legend["data"]] == [row["name"] for row in record["segments"]]
    label_image = np.asarray(Image.open(segments))
    assert label_image.shape == (96, 128) and set(np.unique(label_image)) - {0} <= {r["id"] for r in record["segments"]}
