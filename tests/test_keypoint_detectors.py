"""CenterNet and CornerNet: official layouts, corner pooling, DCNv2, decoding on hand-made heads, soft-NMS, the
mmdetection checkpoint format, and random-weight runs of the tab's pipeline on drawn images (offline, CPU)."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import drawn_scene
from models import (centernet, centernet_arch, centernet_views, cornernet, cornernet_arch, cornernet_views, detections,
                    mmdet, peaks, runtime, weights)
from models.images import LoadedImage
from models.tabs import keypoint_detectors as tab

DATA = Path(__file__).parent / "data"
CPU = torch.device("cpu")


def layout(net: torch.nn.Module) -> list:
    return [[key, list(value.shape), str(value.dtype).removeprefix("torch.")]
            for key, value in net.state_dict().items()]


def reference(name: str) -> dict:
    return json.loads((DATA / name).read_text())


@pytest.fixture(scope="module")
def hourglass() -> cornernet_arch.CornerNet:
    """One Hourglass-104 with random weights for the whole module (~200M parameters, ~2 s to build)."""
    torch.manual_seed(0)
    return cornernet.build().eval().requires_grad_(False)


def save_mmdet_checkpoint(state: dict, path: Path, meta: dict | None = None) -> Path:
    """A file as mmdetection v2 publishes them: {"meta", "state_dict"}, PyTorch's legacy (non-zip) format."""
    meta = meta if meta is not None else {
        "mmdet_version": "2.14.0", "mmcv_version": "1.3.8", "config": "model = dict(type='CenterNet')",
        "CLASSES": detections.COCO_CLASSES, "epoch": 28, "iter": 123456, "time": "Mon Jul  5 09:36:30 2021",
        "hook_msgs": {"last_ckpt": "work_dirs/epoch_28.pth"}}
    torch.save({"meta": meta, "state_dict": state}, path, _use_new_zipfile_serialization=False)
    return path


# --- architecture: the layouts derived from mmdetection's own modules --------------------------------------------


@pytest.mark.parametrize("name, section", [("centernet-r18", None), ("centernet-r18-dcn", "dcn_variant")])
def test_centernet_state_dict_equals_the_mmdetection_layout(name, section):
    expected = reference("centernet_r18_layout.json")
    expected = expected[section] if section else expected
    assert layout(centernet.build(name)) == expected["keys"]
    assert expected["model"] == name and Path(centernet.CHECKPOINTS[name].filename).name in expected["checkpoint"]


def test_cornernet_state_dict_equals_the_mmdetection_layout(hourglass):
    expected = reference("cornernet_hg104_layout.json")
    assert layout(hourglass) == expected["keys"]
    assert cornernet.CHECKPOINTS["cornernet-hg104"].url == expected["checkpoint"]
    parameters = sum(v.numel() for v in hourglass.parameters())
    assert 190e6 < parameters < 210e6


@pytest.mark.parametrize("name", ["centernet_r18_layout.json", "cornernet_hg104_layout.json"])
def test_layout_files_say_where_they_come_from(name):
    source = reference(name)["source"]
    assert source["repo"] == "open-mmlab/mmdetection" and source["config"].startswith("configs/")
    assert source["version"] and source["files"]


def test_the_test_settings_match_the_official_configs():
    centernet_cfg = reference("centernet_r18_layout.json")["config"]["test_cfg"]
    assert (centernet.TOP_K, centernet.KERNEL) == (centernet_cfg["topk"], centernet_cfg["local_maximum_kernel"])
    cornernet_cfg = reference("cornernet_hg104_layout.json")["config"]["test_cfg"]
    assert cornernet.TOP_K == cornernet_cfg["corner_topk"] and cornernet.KERNEL == cornernet_cfg["local_maximum_kernel"]
    assert cornernet.DISTANCE_THRESHOLD == cornernet_cfg["distance_threshold"]
    assert cornernet.MAX_PER_IMG == cornernet_cfg["max_per_img"]
    assert cornernet.SOFT_NMS["method"] == cornernet_cfg["nms"]["method"]
    assert cornernet.SOFT_NMS["iou_threshold"] == cornernet_cfg["nms"]["iou_threshold"]


# --- corner pooling ------------------------------------------------------------------------------------------------


def brute_corner_pool(x: torch.Tensor, direction: str) -> torch.Tensor:
    """mmcv's directions by definition: top = max of the cell and all cells below, left = ... to its right,
    bottom = ... above, right = ... to its left."""
    out = torch.empty_like(x)
    _, _, height, width = x.shape
    for i in range(height):
        for j in range(width):
            region = {"top": x[:, :, i:, j], "bottom": x[:, :, :i + 1, j],
                      "left": x[:, :, i, j:], "right": x[:, :, i, :j + 1]}[direction]
            out[:, :, i, j] = region.amax(dim=2)
    return out


@pytest.mark.parametrize("direction", ["top", "bottom", "left", "right"])
def test_corner_pooling_equals_a_brute_force_loop(direction):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 5, 7, generator=generator)
    x[0, 0] = torch.randint(0, 3, (5, 7), generator=generator).float()  # ties
    assert torch.equal(cornernet_arch.corner_pool(x, direction), brute_corner_pool(x, direction))
    assert torch.equal(cornernet_arch.CornerPool(direction)(x), brute_corner_pool(x, direction))


def test_top_left_pooling_lets_a_corner_see_the_object_below_and_right():
    x = torch.zeros(1, 1, 6, 6)
    x[0, 0, 4, 3] = 1.0  # an object part below-right of (1, 1)
    top_left = cornernet_arch.corner_pool(x, "top") + cornernet_arch.corner_pool(x, "left")
    assert top_left[0, 0, 1, 3] == 1 and top_left[0, 0, 4, 1] == 1  # same column above it / same row left of it
    assert top_left[0, 0, 5, 3] == 0 and top_left[0, 0, 4, 4] == 0  # below or right of it: nothing to see


# --- DCNv2 (torchvision) against mmcv's kernel, transcribed -------------------------------------------------------


def mmcv_bilinear(image: np.ndarray, y: float, x: float) -> float:
    """mmcv's dmcn_im2col_bilinear: zero outside (-1, H) x (-1, W), each of the four neighbours checked."""
    height, width = image.shape
    if not (y > -1 and x > -1 and y < height and x < width):
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    value = 0.0
    for yy, xx, weight in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                           (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        if 0 <= yy < height and 0 <= xx < width:
            value += weight * image[yy, xx]
    return value


def test_dcnv2_layer_matches_mmcv_modulated_deform_conv_semantics():
    torch.manual_seed(5)
    layer = centernet_arch.ModulatedDeformConv(2, 3)
    torch.nn.init.normal_(layer.conv_offset.weight, std=0.3)  # non-zero offsets and masks
    torch.nn.init.normal_(layer.conv_offset.bias, std=0.5)
    x = torch.randn(1, 2, 5, 6)
    with torch.no_grad():
        out = layer(x)[0].numpy()
        raw = layer.conv_offset(x)[0].numpy()
    o1, o2, mask_logits = np.split(raw, 3)
    offset, mask = np.concatenate([o1, o2]), 1 / (1 + np.exp(-mask_logits))
    weight, image = layer.weight.detach().numpy(), x[0].numpy()
    expected = np.zeros_like(out)
    for h in range(5):
        for w in range(6):
            for i in range(3):
                for j in range(3):
                    tap = i * 3 + j
                    y, xx = h - 1 + i + offset[2 * tap, h, w], w - 1 + j + offset[2 * tap + 1, h, w]
                    for c in range(2):
                        sample = mmcv_bilinear(image[c], y, xx) * mask[tap, h, w]
                        expected[:, h, w] += weight[:, c, i, j] * sample
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


# --- pre-processing: mmdetection's central padding -----------------------------------------------------------------


def test_centernet_input_is_padded_centrally_to_size_or_31_plus_1_and_normalised():
    rgb = np.full((100, 150, 3), 200, np.uint8)
    x, geometry = mmdet.preprocess(rgb, centernet.PAD)
    assert geometry.input_size == (160, 128) and tuple(x.shape) == (1, 3, 128, 160)
    assert geometry.border == (14, 114, 5, 155)  # top, bottom, left, right: the image centre at the canvas centre
    mean, std = torch.tensor(mmdet.MEAN_RGB), torch.tensor(mmdet.STD_RGB)
    torch.testing.assert_close(x[0, :, 0, 0], -mean / std)  # padding is black before normalisation
    torch.testing.assert_close(x[0, :, 14, 5], (200 - mean) / std)
    torch.testing.assert_close(x[0, :, 13, 5], -mean / std)


@pytest.mark.parametrize("size, expected", [(96, 127), (127, 127), (128, 255), (480, 511), (511, 511)])
def test_cornernet_pads_to_size_or_127(size, expected):
    assert mmdet.padded_size(size, *cornernet.PAD) == expected


def test_a_511_pixel_side_loses_one_pixel_as_in_mmdetection():
    image = np.arange(511, dtype=np.float32).reshape(1, 511, 1).repeat(3, axis=0)
    canvas, border = mmdet.center_pad(image, 3, 511)
    assert border[2:] == (0, 510) and canvas[0, -1, 0] == 0 and canvas[0, 509, 0] == 509


def test_working_size_only_shrinks():
    assert mmdet.working_size(300, 200, 150) == (150, 100)
    assert mmdet.working_size(300, 200, 600) == (300, 200)
    assert mmdet.working_size(300, 200, None) == (300, 200)


# --- decoding on hand-made heads -----------------------------------------------------------------------------------


def centernet_geometry() -> mmdet.Geometry:
    """A 300 x 200 photo at working size 150: scale 0.5, input 160 x 128, border top 14 / left 5, heatmaps 40 x 32."""
    _, geometry = mmdet.preprocess(np.zeros((200, 300, 3), np.uint8), centernet.PAD, 150)
    assert geometry.scale == (0.5, 0.5) and geometry.border[0] == 14 and geometry.border[2] == 5
    return replace(geometry, feature_size=(40, 32))


def test_a_centre_peak_decodes_to_the_exact_box_in_photo_coordinates():
    heat, wh, offset = torch.zeros(80, 32, 40), torch.zeros(2, 32, 40), torch.zeros(2, 32, 40)
    heat[17, 10, 20] = 0.9  # a horse centred at cell (column 20, row 10)
    heat[17, 10, 21] = 0.5  # its neighbour: not a local maximum, suppressed
    wh[:, 10, 20] = torch.tensor([6.0, 4.0])  # 6 x 4 cells
    offset[:, 10, 20] = torch.tensor([0.25, 0.5])
    heat[0, 25, 5] = 0.6  # a person elsewhere
    decoded = centernet.decode(heat, wh, offset, centernet_geometry())
    # centre (20.25, 10.5) cells -> input (81, 42) -> working (76, 28) -> photo (152, 56); 6 x 4 cells = 48 x 32 px
    torch.testing.assert_close(decoded["boxes"][0], torch.tensor([128.0, 40.0, 176.0, 72.0]))
    torch.testing.assert_close(decoded["centers"][0], torch.tensor([152.0, 56.0]))
    assert decoded["scores"][:3].tolist() == pytest.approx([0.9, 0.6, 0.0])
    assert decoded["labels"][:2].tolist() == [17, 0] and len(decoded["scores"]) == centernet.TOP_K


def put_corner(heads: dict, corner: str, label: int, row: int, column: int, score: float, embedding: float,
               offset=(0.0, 0.0)) -> None:
    heads[f"{corner}_heat"][label, row, column] = score
    heads[f"{corner}_emb"][0, row, column] = embedding
    heads[f"{corner}_off"][:, row, column] = torch.tensor(offset)


def corner_heads() -> dict:
    heads = {f"{c}_{n}": torch.zeros(shape) for c in ("tl", "br")
             for n, shape in (("heat", (80, 32, 64)), ("emb", (1, 32, 64)), ("off", (2, 32, 64)))}
    heads["tl_emb"] += 100.0  # background corners never pair with anything
    heads["br_emb"] -= 100.0
    return heads


CORNER_GEOMETRY = mmdet.Geometry((256, 128), (256, 128), (256, 128), (8.0, 120.0, 4.0, 252.0), (64, 32))  # ratio 4


def test_corners_with_matching_embeddings_pair_and_the_others_do_not():
    heads = corner_heads()
    put_corner(heads, "tl", 5, 2, 3, 0.9, 1.0, offset=(0.5, 0.25))  # A: a pair
    put_corner(heads, "br", 5, 10, 12, 0.7, 1.2)
    put_corner(heads, "tl", 5, 5, 30, 0.85, 3.0)  # B: embeddings 1.0 apart (> 0.5)
    put_corner(heads, "br", 5, 20, 40, 0.75, 4.0)
    put_corner(heads, "tl", 7, 25, 50, 0.6, 6.0)  # C: inverted, the bottom-right is up and left of the top-left
    put_corner(heads, "br", 7, 22, 45, 0.65, 6.1)
    put_corner(heads, "tl", 2, 12, 20, 0.55, 8.0)  # D: classes differ
    put_corner(heads, "br", 3, 28, 30, 0.5, 8.1)
    decoded = cornernet.decode(**heads, geometry=CORNER_GEOMETRY)
    assert len(decoded["scores"]) == 1, "only A pairs"
    # top-left (3.5, 2.25) cells -> input (14, 9) -> photo (10, 1); bottom-right (12, 10) -> (48, 40) -> (44, 32)
    torch.testing.assert_close(decoded["boxes"][0], torch.tensor([10.0, 1.0, 44.0, 32.0]))
    assert decoded["scores"][0].item() == pytest.approx(0.8) and decoded["labels"][0].item() == 5
    tl, br = decoded["tl_index"][0], decoded["br_index"][0]
    assert decoded["tl_embeddings"][tl].item() == 1.0 and decoded["br_embeddings"][br].item() == pytest.approx(1.2)

    heads["br_emb"][0, 20, 40] = 3.3  # now B's corners agree (|3.0 - 3.3| <= 0.5): B pairs too
    decoded = cornernet.decode(**heads, geometry=CORNER_GEOMETRY)
    assert decoded["scores"].tolist() == pytest.approx([0.8, 0.8])
    assert sorted(decoded["boxes"][:, 0].tolist()) == pytest.approx([10.0, 116.0])


def test_corners_left_of_the_photo_are_clamped_to_zero_as_in_mmdetection():
    heads = corner_heads()
    put_corner(heads, "tl", 1, 1, 0, 0.9, 0.0, offset=(-0.5, 0.0))  # x = -0.5 * 4 - 4 < 0
    put_corner(heads, "br", 1, 9, 9, 0.9, 0.0)
    decoded = cornernet.decode(**heads, geometry=CORNER_GEOMETRY)
    assert decoded["boxes"][0, 0].item() == 0.0


# --- soft-NMS --------------------------------------------------------------------------------------------------------


def brute_soft_nms(boxes, scores, method, sigma=0.5, iou_threshold=0.3, min_score=1e-3):
    """mmcv's softnms_cpu (mmcv/ops/csrc/pytorch/cpu/nms.cpp) line by line: swap the best to the front, decay the
    rest, swap boxes that fall below min_score out to the end."""
    boxes = [list(map(float, b)) for b in boxes]
    scores = [float(s) for s in scores]
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    inds = list(range(len(boxes)))
    n = len(boxes)
    out_scores = []
    i = 0
    while i < n:
        best = max(range(i, n), key=lambda p: (scores[p], -p))  # first maximum, as the C++ strict `<` picks
        for array in (boxes, scores, areas, inds):
            array[i], array[best] = array[best], array[i]
        out_scores.append(scores[i])
        pos = i + 1
        while pos < n:
            b, o = boxes[i], boxes[pos]
            w = max(0.0, min(b[2], o[2]) - max(b[0], o[0]))
            h = max(0.0, min(b[3], o[3]) - max(b[1], o[1]))
            inter = w * h
            iou = inter / (areas[i] + areas[pos] - inter)
            if method == "naive":
                weight = 0.0 if iou >= iou_threshold else 1.0
            elif method == "linear":
                weight = 1 - iou if iou >= iou_threshold else 1.0
            else:
                weight = math.exp(-(iou * iou) / sigma)
            scores[pos] *= weight
            if scores[pos] < min_score:
                for array in (boxes, scores, areas, inds):
                    array[pos] = array[n - 1]
                n -= 1
                pos -= 1
            pos += 1
        i += 1
    return inds[:n], out_scores[:n]


@pytest.mark.parametrize("method", ["gaussian", "linear", "naive"])
def test_soft_nms_equals_mmcv_soft_nms_transcribed(method):
    rng = np.random.default_rng(7)
    corners = rng.uniform(0, 60, (40, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 30, (40, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(0.01, 1, 40).astype(np.float32)
    kept, kept_scores = peaks.soft_nms(boxes, scores, method=method, iou_threshold=0.3)
    expected, expected_scores = brute_soft_nms(boxes, scores, method)
    assert kept.tolist() == expected
    np.testing.assert_allclose(kept_scores, expected_scores, rtol=1e-5)


def test_gaussian_soft_nms_lowers_the_overlapping_box_by_exp_minus_iou_squared_over_sigma():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10]])
    decoded = {"boxes": boxes, "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([4, 4, 2])}
    kept, scores = cornernet.suppress(decoded)
    iou = 90 / 110
    assert kept.tolist() == [0, 2, 1], "the other class is untouched; the overlapping box drops below it"
    assert scores.tolist() == pytest.approx([0.9, 0.7, 0.8 * math.exp(-iou ** 2 / 0.5)], rel=1e-5)


# --- checkpoints -----------------------------------------------------------------------------------------------------


def test_checkpoints_are_catalogued_with_the_official_urls():
    for name in ("centernet-r18", "centernet-r18-dcn", "cornernet-hg104"):
        checkpoint = weights.get(name)
        assert checkpoint.url.startswith(mmdet.MMDET_DOWNLOADS) and checkpoint.url.endswith(checkpoint.filename)
        assert checkpoint.task == tab.TASK_ID and checkpoint.sha256 is None  # none published: first hash recorded
    assert tab.TASK.models == tuple(tab.FAMILIES)


def test_official_weights_missing_offline_says_what_to_download():
    with pytest.raises(weights.MissingWeightsError, match="centernet_resnet18_140e_coco_20210705_093630"):
        centernet.load("centernet-r18", CPU)


def test_a_download_whose_hash_does_not_start_with_the_file_name_prefix_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CVPG_HOME", str(tmp_path))
    (tmp_path / centernet.CHECKPOINTS["centernet-r18"].filename).write_bytes(b"not the checkpoint")
    with pytest.raises(weights.ChecksumError, match="bb5b3bf7"):
        mmdet.fetch("centernet-r18")


def test_an_mmdetection_format_file_loads_with_weights_only(tmp_path):
    torch.manual_seed(1)
    net = centernet.build("centernet-r18")
    path = save_mmdet_checkpoint(net.state_dict(), tmp_path / "centernet_user.pth")
    loaded = centernet.load("centernet-r18", CPU, checkpoint_file=str(path))
    assert not loaded.training
    key = "bbox_head.wh_head.2.weight"
    torch.testing.assert_close(loaded.state_dict()[key], net.state_dict()[key])


def test_a_meta_that_weights_only_refuses_is_explained(tmp_path):
    path = save_mmdet_checkpoint({"w": torch.zeros(1)}, tmp_path / "odd.pth", meta={"seed": np.int64(3)})
    with pytest.raises(weights.WeightsError, match="meta") as refused:
        mmdet.read_mmdet_checkpoint(path)
    assert "numpy" in str(refused.value) and "state_dict" in str(refused.value)


def test_the_dcn_conversion_moves_legacy_offset_keys_inside_the_layer():
    state = {"state_dict": {"neck.deconv_layers.0.conv_offset.weight": 1, "neck.deconv_layers.0.conv.weight": 2,
                            "neck.deconv_layers.2.conv.conv_offset.bias": 3}}
    converted = centernet._convert_state_dict("centernet-r18-dcn", state)
    assert converted == {"neck.deconv_layers.0.conv.conv_offset.weight": 1, "neck.deconv_layers.0.conv.weight": 2,
                         "neck.deconv_layers.2.conv.conv_offset.bias": 3}


# --- random-weight runs on drawn images --------------------------------------------------------------------------


def assert_well_formed(found: detections.Detections, width: int, height: int) -> None:
    n = len(found)
    assert found.boxes.shape == (n, 4) and found.scores.shape == (n,) and found.label_ids.shape == (n,)
    assert np.isfinite(found.boxes).all() and ((found.scores >= 0) & (found.scores <= 1)).all()
    assert (np.diff(found.scores) <= 1e-6).all(), "best first"
    assert ((found.label_ids >= 0) & (found.label_ids < 80)).all() and len(found.labels) == n
    assert found.geometry.image_size == (width, height)


def loaded_scene(height: int = 96, width: int = 128) -> LoadedImage:
    rgb = drawn_scene(height, width)
    return LoadedImage(rgb, original_size=(width, height))


def test_centernet_pipeline_on_a_drawn_image_with_random_weights(tmp_path):
    torch.manual_seed(2)
    path = save_mmdet_checkpoint(centernet.build("centernet-r18").state_dict(), tmp_path / "random_centernet.pth")
    output = tab.TASK.run(loaded_scene(), model="centernet-r18", checkpoint=str(path), score_threshold=0.0,
                          working_size=128)
    assert [key for key, _ in tab.views("centernet-r18")] == list(output.images)
    assert all(image.shape == (96, 128, 3) and image.dtype == np.uint8 for image in output.images.values())
    record = output.record
    assert record["network_input"] == [160, 128] and record["heatmap_size"] == [40, 32]
    assert record["detection_count"] == centernet.TOP_K == len(record["detections"])
    assert json.dumps(record) and "centernet-r18" in output.summary

    found = centernet.predict(centernet.load("centernet-r18", CPU, str(path)), drawn_scene(), 0.0, None, 64)
    assert_well_formed(found, 128, 96)
    assert found.geometry.working_size == (64, 48) and found.heatmaps["center"].shape == (80, 16, 24)
    only = detections.select(found, 0.0, "person")
    assert set(only.labels) <= {"person"} and len(only.centers) == len(only)


def test_centernet_dcn_predicts_on_a_drawn_image():
    torch.manual_seed(4)
    net = centernet.build("centernet-r18-dcn").eval()
    found = centernet.predict(net, drawn_scene(), score_threshold=0.0, working_size=128)
    assert_well_formed(found, 128, 96)


def test_cornernet_pipeline_on_a_drawn_image_with_random_weights(hourglass):
    runtime.MODELS.get(cornernet.cache_key("cornernet-hg104", runtime.device()), lambda: hourglass)  # no download
    try:
        output = tab.TASK.run(loaded_scene(), model="cornernet-hg104", score_threshold=0.0, working_size=128,
                              heatmap_class="dog")
    finally:
        runtime.MODELS.clear()
    assert [key for key, _ in tab.views("cornernet-hg104")] == list(output.images)
    assert all(image.shape == (96, 128, 3) for image in output.images.values())
    record = output.record
    assert record["network_input"] == [255, 127] and record["heatmap_size"] == [64, 32]  # size | 127, stride ~4
    assert record["detection_count"] <= cornernet.MAX_PER_IMG


def test_cornernet_predict_returns_corners_and_embeddings(hourglass):
    with torch.no_grad():  # make corners agree: every embedding 0, so same-class corners pair
        for branch in (*hourglass.bbox_head.tl_emb, *hourglass.bbox_head.br_emb):
            branch[-1].conv.weight.zero_()
            branch[-1].conv.bias.zero_()
    found = cornernet.predict(hourglass, drawn_scene(), score_threshold=0.0, working_size=128)
    assert_well_formed(found, 128, 96)
    assert len(found) > 0
    assert found.corner_embeddings.shape == (len(found), 2) and (found.corner_embeddings == 0).all()
    assert (found.boxes[:, 2] > found.boxes[:, 0]).all() and (found.boxes[:, 3] > found.boxes[:, 1]).all()
    for name in ("top_left", "bottom_right"):
        assert found.heatmaps[name].shape == (80, 32, 64) and len(found.peaks[name]) == cornernet.TOP_K
    views = cornernet_views.render(drawn_scene(), found, None, 0.0)
    assert views["corner_pairs"].shape == (96, 128, 3)


# --- teaching views ----------------------------------------------------------------------------------------------


def test_the_heatmap_warped_onto_the_photo_peaks_where_the_centre_is():
    heat, wh, offset = torch.zeros(80, 32, 40), torch.ones(2, 32, 40), torch.zeros(2, 32, 40)
    heat[3, 10, 20] = 1.0
    geometry = centernet_geometry()
    decoded = centernet.decode(heat, wh, offset, geometry)
    peak_list = detections.Peaks(decoded["centers"].numpy(), decoded["scores"].numpy(), decoded["labels"].numpy())
    found = detections.Detections(decoded["boxes"].numpy()[:1], decoded["scores"].numpy()[:1],
                                  decoded["labels"].numpy()[:1], geometry, {"center": heat.numpy()},
                                  {"center": peak_list}, centers=decoded["centers"].numpy()[:1])
    warped = detections.map_on_image(found, "center", 3)
    assert warped.shape == (200, 300)
    y, x = np.unravel_index(np.argmax(warped), warped.shape)
    assert abs(x - 150) <= 1 and abs(y - 52) <= 1  # cell (20, 10) -> input (80, 40) -> photo (150, 52)
    assert detections.map_on_image(found, "center", 4).max() == 0
    rgb = np.zeros((200, 300, 3), np.uint8)
    view = detections.heatmap_view(rgb, found, "center", None, 0.5)
    assert view.shape == rgb.shape and view[52, 150].any()
    assert centernet_views.centers_view(rgb, found).shape == rgb.shape


def test_options_parse_from_text():
    options = tab.TASK.parse_options(["classes=people,dog", "heatmap_class=dog", "working_size=256",
                                      "score_threshold=0.4"])
    assert options["working_size"] == 256 and options["heatmap_class"] == "dog"
    assert detections.class_index(options["heatmap_class"]) == detections.COCO_CLASSES.index("dog") == 16
    assert detections.expand_classes(options["classes"]) == {"person", "dog"}
    assert detections.class_index("all") is None


def test_the_tab_answers_through_its_endpoint(served_app, monkeypatch, tmp_path):
    """Random CenterNet-R18 seeded into the (in-process) app's cache under its official key, called by gradio_client."""
    from gradio_client import Client, handle_file
    from PIL import Image

    from models import runtime

    cache = runtime.ModelCache()
    monkeypatch.setattr(runtime, "MODELS", cache)
    device = runtime.device()
    torch.manual_seed(0)
    net = centernet.build("centernet-r18").eval().requires_grad_(False).to(device)
    cache.get(centernet.cache_key("centernet-r18", device), lambda: net)
    Image.fromarray(drawn_scene(96, 128)).save(tmp_path / "scene.png")
    (before, after), status, gallery, table, record = Client(served_app, verbose=False).predict(
        image=handle_file(str(tmp_path / "scene.png")), score_threshold=0.0, working_size=128,
        api_name="/keypoint_detectors")  # by keyword, named like the command line's --set keys
    assert Image.open(after).size == (128, 96) and "centernet-r18" in status
    assert len(gallery) == 2  # the centre heatmap and the centres view
    assert record["model"] == "centernet-r18" and record["classes"] == "all" and record["heatmap_class"] == "all"
    assert record["network_input"] == [160, 128] and record["heatmap_size"] == [40, 32]
    assert record["detection_count"] == centernet.TOP_K == len(record["detections"]) == len(table["data"])
    assert [row[0] for row in table["data"]] == [row["label"] for row in record["detections"]]


# --- CenterFace in this tab: CenterNet's lesson on faces -----------------------------------------------------------


def seed_random_centerface(monkeypatch) -> None:
    from models import centerface, centerface_arch

    cache = runtime.ModelCache()
    monkeypatch.setattr(runtime, "MODELS", cache)
    device = runtime.device()
    torch.manual_seed(0)
    net = runtime.prepare(centerface_arch.CenterFaceNet(), device)
    cache.get(runtime.model_key(centerface.FAMILY, centerface.CHECKPOINT.name, device), lambda: net)


def test_centerface_in_the_tab_with_random_weights_ignores_the_coco_options(monkeypatch):
    from models import centerface_views

    seed_random_centerface(monkeypatch)
    output = tab.TASK.run(loaded_scene(100, 130), model="centerface", score_threshold=0.0, classes="dog",
                          heatmap_class="dog", working_size=0)
    assert list(output.images) == [key for key, _ in tab.views("centerface")] == [k for k, _ in centerface_views.VIEWS]
    assert output.images["detections"].shape == output.images["center_heatmap"].shape == (100, 130, 3)
    assert output.images["width"].shape[1:] == output.images["height"].shape[1:] == (130, 3)
    record = output.record
    assert record["network_input"] == [160, 128] and record["heatmap_size"] == [40, 32] and record["stride"] == 4
    assert record["ignored_options"] == ["classes", "heatmap_class"] == list(tab.ignored_options("centerface"))
    assert tab.ignored_options("centernet-r18") == ()
    assert record["detection_count"] == len(record["detections"]) > 0  # threshold 0: every local maximum
    assert all(row["label"] == "face" and len(row["landmarks"]) == 5 for row in record["detections"])
    assert json.dumps(record) and output.summary.startswith("centerface on ")


def test_centerface_finds_the_waving_persons_face(shared_weights, shared):
    from models import images

    loaded = images.load(shared / "images" / "people_demo.jpg")  # 310 x 458, the face about x 180-250, y 180-270
    output = tab.TASK.run(loaded, model="centerface")
    record = output.record
    assert record["detection_count"] == 1 and record["detections"][0]["score"] > 0.85
    x1, y1, x2, y2 = record["detections"][0]["box"]
    assert x1 < 190 and y1 < 200 and x2 > 240 and y2 > 260, "the box holds the face, hair to chin"
    assert 165 < x1 and 165 < y1 and x2 < 265 and y2 < 290, "and not much more"
    center_x, center_y = record["detections"][0]["center"]
    assert x1 < center_x < x2 and y1 < center_y < y2
    assert all(x1 < x < x2 and y1 < y < y2 for x, y in record["detections"][0]["landmarks"].values())
    assert record["network_input"] == [320, 480] and record["heatmap_size"] == [80, 120]
    assert record["size"] == record["working_size"] == [310, 458]

    views = output.images
    assert all(views[key].shape == (458, 310, 3) for key in ("detections", "center_heatmap"))
    assert views["width"].shape[1:] == views["height"].shape[1:] == (310, 3) and views["width"].shape[0] > 458
    assert views["offsets"].shape[0] == views["offsets"].shape[1] > 0
    # the heatmap view is hottest at the face's centre: where the inferno overlay adds the most red to the photo
    gain = views["center_heatmap"][..., 0].astype(int) - detections.dim(loaded.rgb, 0.7)[..., 0].astype(int)
    y, x = np.unravel_index(np.argmax(gain), gain.shape)
    assert abs(x - center_x) < 8 and abs(y - center_y) < 8
    weight = np.clip(gain, 0, None)
    rows, columns = np.mgrid[:gain.shape[0], :gain.shape[1]]
    centroid = ((weight * columns).sum() / weight.sum(), (weight * rows).sum() / weight.sum())
    assert abs(centroid[0] - center_x) < 4 and abs(centroid[1] - center_y) < 4


def test_the_predict_command_runs_centerface(shared_weights, shared, main, tmp_path):
    photo = shared / "images" / "people_demo.jpg"
    code, out, err = main("predict", "keypoint-detectors", str(photo), "--model", "centerface", "--offline",
                          "-o", str(tmp_path))
    assert code == 0, err
    assert "centerface" in out and "1 face" in out
    record = json.loads((tmp_path / "people_demo.json").read_text())
    assert record["model"] == "centerface" and record["detection_count"] == 1 and record["input"] == str(photo)
    assert list(record["files"]) == [key for key, _ in tab.views("centerface")]
    for name, path in record["files"].items():
        assert Path(path) == tmp_path / f"people_demo.{name}.png" and Path(path).stat().st_size > 0
    assert record["options"]["score_threshold"] == 0.3
