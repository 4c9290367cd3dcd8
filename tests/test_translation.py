"""Pix2Pix and CycleGAN: official layouts, the legacy-key patch, conversions, the cycle, canvases, tabs and CLI."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, drawn_scene
from models import cyclegan, images, pix2pix, translation as tr, weights
from models.cyclegan_arch import ResnetGenerator
from models.pix2pix_arch import UnetGenerator
from models.tabs import cyclegan as cyclegan_tab, pix2pix as pix2pix_tab

FAMILIES = {"cyclegan": cyclegan, "pix2pix": pix2pix}


@pytest.mark.parametrize("manifest, net", [("cyclegan", ResnetGenerator), ("pix2pix", UnetGenerator)])
def test_generators_match_the_official_layouts(shared, manifest, net):
    expected = [[key, list(shape), dtype] for key, shape, dtype in
                json.loads((shared / "layouts" / f"{manifest}.json").read_text())["keys"]]
    actual = [[key, list(value.shape), str(value.dtype).removeprefix("torch.")] for key, value in net().state_dict().items()]
    assert actual == expected


@pytest.fixture(scope="module")
def generator_files(tmp_path_factory):
    """User checkpoints in the reference format: random generators, saved as plain state dicts."""
    folder = tmp_path_factory.mktemp("generators")
    torch.manual_seed(0)
    files = {}
    for family in ("cyclegan", "pix2pix"):
        files[family] = folder / f"{family}.pth"
        torch.save(FAMILIES[family].build().state_dict(), files[family])
    return files


def test_old_instance_norm_keys_are_patched_away_before_a_strict_load(tmp_path):
    state = ResnetGenerator().state_dict()
    legacy = dict(state)
    for index in (2, 5, 8):  # pre-0.4 checkpoints stored buffers for the InstanceNorm layers
        legacy[f"model.{index}.running_mean"] = torch.zeros(64 * 2 ** ((index - 2) // 3))
        legacy[f"model.{index}.running_var"] = torch.ones(64 * 2 ** ((index - 2) // 3))
    legacy["model.10.conv_block.2.num_batches_tracked"] = torch.tensor(0)
    torch.save(legacy, tmp_path / "old.pth")
    net = cyclegan.load("horse2zebra", torch.device("cpu"), checkpoint_file=str(tmp_path / "old.pth"))
    assert torch.equal(net.state_dict()["model.1.weight"], state["model.1.weight"])


def test_a_user_generator_round_trips_through_the_checkpoint_option(generator_files):
    net = cyclegan.build().eval()
    net.load_state_dict(torch.load(generator_files["cyclegan"], weights_only=True))
    scene = drawn_scene(64, 80)
    loaded = cyclegan.load("horse2zebra", torch.device("cpu"), checkpoint_file=str(generator_files["cyclegan"]))
    assert np.array_equal(cyclegan.translate(loaded, scene), cyclegan.translate(net, scene))


def test_a_wrong_checkpoint_is_refused_with_a_reason(generator_files):
    with pytest.raises(weights.WeightsError, match="not a pix2pix generator"):
        pix2pix.load("edges2shoes", torch.device("cpu"), checkpoint_file=str(generator_files["cyclegan"]))


def test_missing_official_generator_offline_names_the_file():
    with pytest.raises(weights.MissingWeightsError, match="cyclegan_horse2zebra.pth"):
        cyclegan.load("horse2zebra", torch.device("cpu"))


def test_conversion_to_minus_one_one_and_back_is_exact():
    rgb = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    x = tr.to_tensor(rgb, torch.device("cpu"))
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert x[0, 0, 8, 0].item() == pytest.approx(128 / 127.5 - 1, abs=1e-6)  # pixel value 128, float32
    assert np.array_equal(tr.to_image(x), rgb)


@pytest.mark.parametrize("height, width", [(37, 51), (64, 64), (3, 5)])
def test_odd_sizes_are_padded_to_four_and_cropped_back(height, width):
    x = torch.rand(1, 3, height, width)
    padded, size = cyclegan.pad_to_multiple(x, 4)
    assert padded.shape[-2] % 4 == 0 and padded.shape[-1] % 4 == 0 and size == (height, width)
    assert torch.equal(padded[..., :height, :width], x)
    identity = _Constant(0.0)  # output = input through tanh-free identity
    out = cyclegan.translate(identity, drawn_scene(height + 10, width + 10))
    assert out.shape == (height + 10, width + 10, 3)


class _Constant(torch.nn.Module):
    """A stand-in generator: the identity plus a constant offset (in [-1, 1] units)."""

    def __init__(self, offset: float):
        super().__init__()
        self.offset = torch.nn.Parameter(torch.tensor(offset))

    def forward(self, x):
        return (x + self.offset).clamp(-1, 1)


def test_cycle_error_of_identity_and_offset_generators():
    scene = np.full((40, 60, 3), 100, np.uint8)
    exact = cyclegan.cycle(_Constant(0.0), _Constant(0.0), scene)
    assert exact.mean_error == 0 and not exact.error.any()
    assert np.array_equal(exact.reconstructed, scene)
    shifted = cyclegan.cycle(_Constant(0.2), _Constant(0.0), scene)  # G brightens by 0.2, F cannot undo it
    assert shifted.error.shape == (40, 60)
    assert shifted.mean_error == pytest.approx(0.2, abs=1 / 127.5)
    assert cyclegan.error_heatmap(shifted.error).shape == (40, 60, 3)


def test_sketchpad_becomes_black_strokes_on_white_at_256():
    canvas = np.zeros((400, 400, 4), np.uint8)  # transparent
    cv2.line(canvas, (50, 200), (350, 200), (0, 0, 0, 255), 8)
    edges = pix2pix.sketch_to_edges(canvas)
    assert edges.shape == (256, 256, 3) and set(np.unique(edges)) == {0, 255}
    assert (edges[128, 40:220] == 0).all() and (edges[20, 20] == 255).all()


def test_label_painter_snaps_every_pixel_to_a_facade_class_colour():
    canvas = np.zeros((256, 256, 4), np.uint8)
    window = pix2pix.FACADE_PALETTE[2][1]
    cv2.rectangle(canvas, (60, 60), (120, 140), (*window, 255), -1)
    cv2.GaussianBlur(canvas, (5, 5), 0, dst=canvas)  # brush anti-aliasing blends colours at the edges
    labels = pix2pix.snap_to_palette(canvas)
    palette = {colour for _, colour in pix2pix.FACADE_PALETTE}
    assert labels.shape == (256, 256, 3)
    assert {tuple(pixel) for pixel in labels.reshape(-1, 3)} <= palette
    assert tuple(labels[100, 90]) == window and tuple(labels[10, 10]) == pix2pix.FACADE_PALETTE[0][1]


def test_edges_from_photo_marks_the_shapes():
    edges = pix2pix.edges_from_photo(drawn_scene(300, 400))
    assert edges.shape == (192, 256, 3) and 0 < (edges[..., 0] == 0).mean() < 0.2  # the photo's aspect, <= 256
    assert (edges[24:96, 32:86, 0] == 0).any()  # the red square's outline (equal grey to its background) is found


def test_pix2pix_noise_is_seeded_and_off_is_deterministic(generator_files):
    net = pix2pix.load("edges2shoes", torch.device("cpu"), checkpoint_file=str(generator_files["pix2pix"]))
    scene = drawn_scene(120, 200)
    quiet = [pix2pix.translate(net, scene) for _ in range(2)]
    assert np.array_equal(*quiet) and quiet[0].shape == (120, 200, 3)
    noisy = [pix2pix.translate(net, scene, noise=True, seed=seed) for seed in (1, 1, 2)]
    assert np.array_equal(noisy[0], noisy[1]) and not np.array_equal(noisy[0], noisy[2])


def test_pix2pix_and_cyclegan_pipelines(generator_files):
    scene = images.load(drawn_scene(90, 150))
    out = pix2pix_tab.TASK.run(scene, "edges2shoes", str(generator_files["pix2pix"]), prepare="edges")
    assert out.images["input"].shape == out.images["output"].shape == (90, 150, 3)  # edges keep the photo's shape
    cycle = cyclegan_tab.TASK.run(scene, "horse2zebra", str(generator_files["cyclegan"]), working_side=100)
    assert cycle.images["output"].shape == (60, 100, 3) and "reconstructed" not in cycle.images  # own file: no pair
    json.dumps(out.record), json.dumps(cycle.record)


def _write_clip(path):
    """Four 96x64 frames of a drawn scene sliding sideways."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (96, 64))
    for shift in range(4):
        writer.write(np.roll(drawn_scene(64, 96), shift * 5, axis=1))
    writer.release()
    return path


def test_video_translation_keeps_frames_and_size(tmp_path, generator_files):
    _write_clip(tmp_path / "clip.mp4")
    record = cyclegan_tab.TASK.run_video(tmp_path / "clip.mp4", tmp_path / "out.webm", "style_monet",
                                          str(generator_files["cyclegan"]), working_side=0, show_cycle=True)
    capture = cv2.VideoCapture(str(tmp_path / "out.webm"))
    count = 0
    while capture.read()[0]:
        count += 1
    assert record["frames"] == count == 4 and record["size"] == [96, 64]


def test_endpoints_and_cli(served_app, generator_files, tmp_path, monkeypatch):
    from gradio_client import Client, handle_file

    Image.fromarray(drawn_scene(60, 90)).save(tmp_path / "scene.png")
    client = Client(served_app, verbose=False)
    scene = handle_file(str(tmp_path / "scene.png"))
    # By keyword, named like the command line's --set keys; only the image is required, the rest keep their defaults.
    (before, after), status, reconstructed, error, record = client.predict(  # the row (a layout) is not an API output
        image=scene, checkpoint=handle_file(str(generator_files["cyclegan"])), api_name="/cyclegan")
    assert Image.open(after).size == (90, 60) and "horse2zebra" in status
    assert record["model"] == "horse2zebra" and record["input_size"] == record["working_size"] == [90, 60]
    assert record["checkpoint"].endswith(".pth") and "cycle" not in record  # an own file has no known reverse model
    with pytest.raises(Exception, match="pix2pix_edges2shoes.pth"):
        client.predict(image=scene, api_name="/pix2pix")
    home = tmp_path / "home"  # the app runs in this process: it finds an official file name placed in $CVPG_HOME
    home.mkdir()
    shutil.copy(generator_files["pix2pix"], home / "pix2pix_edges2shoes.pth")
    monkeypatch.setenv("CVPG_HOME", str(home))
    (seen, output), status, record = client.predict(image=scene, prepare="edges", noise=True, seed=3,
                                                    api_name="/pix2pix")
    assert record["model"] == "edges2shoes" and record["prepare"] == "edges" and record["statistics"] == "image"
    assert record["noise"] is True and record["seed"] == 3 and "noise seed 3" in status
    assert Image.open(seen).size == Image.open(output).size == (90, 60)  # edges keep the photo's size below 256
    assert set(np.unique(np.asarray(Image.open(seen)))) == {0, 255}  # what the model saw: black edges on white
    clip = _write_clip(tmp_path / "clip.mp4")
    _, status, record = client.predict(video=handle_file(str(clip)),
                                       checkpoint=handle_file(str(generator_files["cyclegan"])), working_side=0,
                                       api_name="/cyclegan_video")
    assert record["frames"] == 4 and record["size"] == [96, 64] and "4 frames" in status

    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "predict", "pix2pix", str(tmp_path / "scene.png"), "-o",
         str(tmp_path / "out"), "--model", "facades_label2photo", "--checkpoint", str(generator_files["pix2pix"]),
         "--set", "prepare=labels", "--set", "noise=true", "--set", "seed=7"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "scene.json").read_text())
    assert record["seed"] == 7 and record["prepare"] == "labels"
    assert Image.open(record["files"]["output"]).size == (256, 256)  # labels are snapped at 256x256


def test_a_pair_placed_in_cvpg_home_shows_the_cycle(generator_files, tmp_path, monkeypatch):
    for name in ("horse2zebra", "zebra2horse"):  # official file names, random weights
        shutil.copy(generator_files["cyclegan"], tmp_path / f"cyclegan_{name}.pth")
    monkeypatch.setenv("CVPG_HOME", str(tmp_path))
    out = cyclegan_tab.TASK.run(images.load(drawn_scene(48, 64)), "zebra2horse", working_side=0)
    assert out.images["reconstructed"].shape == out.images["cycle_error"].shape == (48, 64, 3)
    assert out.record["cycle"]["reverse_model"] == "horse2zebra"
    assert 0 < out.record["cycle"]["mean_abs_error"] <= 2
    assert (tmp_path / "cyclegan_horse2zebra.pth.sha256").is_file()  # no published hash: the first one is recorded
