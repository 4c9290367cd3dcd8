"""Super-resolution: architectures match the official layouts, the pipeline's shapes and invariants, real weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import drawn_scene
from models import images, runtime, sr, weights
from models.sr_arch import RRDBNet, SRGANGenerator, SRVGGNetCompact
from models.tabs import super_resolution as sr_tab

MANIFESTS = {
    "srgan_leftthomas_x4": lambda: SRGANGenerator(scale=4),
    "srvgg_x4": lambda: SRVGGNetCompact(scale=4),
    "rrdbnet_x4": lambda: RRDBNet(scale=4, num_block=23),
    "rrdbnet_x4_6b": lambda: RRDBNet(scale=4, num_block=6),
}


@pytest.mark.parametrize("manifest", sorted(MANIFESTS))
def test_state_dict_layout_equals_the_reference_manifest(shared, manifest):
    expected = [[key, list(shape), dtype] for key, shape, dtype in
                json.loads((shared / "layouts" / f"{manifest}.json").read_text())["keys"]]
    actual = [[key, list(value.shape), str(value.dtype).removeprefix("torch.")]
              for key, value in MANIFESTS[manifest]().state_dict().items()]
    assert actual == expected


@pytest.mark.parametrize("net, scale", [(SRGANGenerator(2), 2), (SRGANGenerator(4), 4), (SRVGGNetCompact(4, num_conv=4), 4),
                                        (RRDBNet(4, num_block=1), 4), (RRDBNet(2, num_block=1), 2)])
def test_networks_upscale_by_their_factor_into_zero_one(net, scale):
    with torch.inference_mode():
        out = net.eval()(torch.rand(1, 3, 12, 16))
    assert out.shape == (1, 3, 12 * scale, 16 * scale)
    assert out.min() >= 0 and out.max() <= 1


def test_user_checkpoint_in_official_format_loads_strictly(random_srgan_checkpoint):
    net = sr.load("srgan-x4", torch.device("cpu"), checkpoint_file=str(random_srgan_checkpoint))
    reference = torch.load(random_srgan_checkpoint, weights_only=True)
    assert torch.equal(net.state_dict()["block8.2.weight"], reference["block8.2.weight"])


def test_real_esrgan_packaging_and_dataparallel_prefix_are_unwrapped(tmp_path):
    state = {f"module.{key}": value for key, value in RRDBNet(4, num_block=6).state_dict().items()}
    path = tmp_path / "anime.pth"
    torch.save({"params_ema": state}, path)
    net = sr.load("realesrgan-x4plus-anime-6b", torch.device("cpu"), checkpoint_file=str(path))
    assert torch.equal(net.conv_last.weight, state["module.conv_last.weight"])


def test_a_checkpoint_of_the_wrong_model_is_refused_with_a_reason(random_srgan_checkpoint):
    with pytest.raises(weights.WeightsError, match="does not fit Real-ESRGAN x4plus"):
        sr.load("realesrgan-x4plus", torch.device("cpu"), checkpoint_file=str(random_srgan_checkpoint))


def test_missing_official_weights_offline_name_the_file():
    with pytest.raises(weights.MissingWeightsError, match="RealESRGAN_x4plus.pth"):
        sr.load("realesrgan-x4plus", torch.device("cpu"))


def test_pipeline_on_a_drawn_scene_with_random_weights(random_srgan_checkpoint):
    scene = drawn_scene(40, 56)
    out = sr_tab.run(images.load(scene), "srgan-x4", checkpoint=str(random_srgan_checkpoint))
    assert out.images["model"].shape == out.images["bicubic"].shape == (160, 224, 3)
    assert out.images["model"].dtype == np.uint8
    assert out.record["output_size"] == [224, 160] and out.record["scale"] == 4
    assert out.record["device"] == runtime.describe(runtime.device()) and out.record["ms"]["model"] > 0
    json.dumps(out.record)  # the record is what `predict` writes as JSON


def test_tiles_give_the_same_picture_as_one_pass():
    torch.manual_seed(1)
    net = SRGANGenerator(4).eval()
    scene = drawn_scene(70, 90)
    whole = sr.predict(net, scene, 4, tile=0)
    tiled = sr.predict(net, scene, 4, tile=32)
    assert tiled.tiles == 9 and whole.tiles == 1
    difference = np.abs(whole.image.astype(int) - tiled.image.astype(int))
    assert difference.max() <= 2 and difference.mean() < 0.05  # only float rounding at tile borders


class _HungryNet(torch.nn.Module):
    """Runs out of memory on anything larger than 90x90 (a 64 px tile with its context fits), like a GPU on a big photo."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        if x.shape[-1] * x.shape[-2] > 90 * 90:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")


def test_out_of_memory_retries_with_smaller_tiles():
    result = sr.predict(_HungryNet(), drawn_scene(100, 100), 2, tile=256)
    assert result.tile == 64 and result.tiles > 1
    assert result.image.shape == (200, 200, 3)
    assert np.array_equal(result.image[::2, ::2], drawn_scene(100, 100))  # nearest x2 gives the input back


def test_out_of_memory_at_the_smallest_tile_gives_a_clear_message():
    class AlwaysHungry(_HungryNet):
        def forward(self, x):
            raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(sr.SRMemoryError, match="Not enough memory"):
        sr.predict(AlwaysHungry(), drawn_scene(100, 100), 2, tile=128)


def test_denoise_strength_interpolates_the_two_checkpoints():
    strong = {"w": torch.full((2,), 4.0)}
    weak = {"w": torch.zeros(2)}
    assert torch.allclose(sr.blend_state_dicts(strong, weak, 0.25)["w"], torch.full((2,), 1.0))
    assert torch.equal(sr.blend_state_dicts(strong, weak, 1.0)["w"], strong["w"])


def test_check_mode_measures_model_and_bicubic_against_the_original():
    scene = drawn_scene(66, 90)  # not a multiple of 4: the original is cropped to 64x88
    out = sr_tab.run(images.load(scene), "bicubic-x4", mode="check")
    assert out.images["original"].shape == (64, 88, 3)
    assert out.images["low_resolution"].shape == (16, 22, 3)
    metrics = out.record["metrics"]
    assert metrics["model"] == metrics["bicubic"]  # the baseline model is bicubic itself
    assert 10 < metrics["bicubic"]["psnr_db"] < 60 and 0 < metrics["bicubic"]["ssim"] <= 1


def test_transparency_survives_the_upscale():
    rgba = np.dstack([drawn_scene(20, 24), np.full((20, 24), 255, np.uint8)])
    rgba[:, :12, 3] = 0
    out = sr_tab.run(images.load(rgba), "bicubic-x2")
    assert out.images["model"].shape == (40, 48, 4)
    assert out.images["model"][20, 5, 3] == 0 and out.images["model"][20, 40, 3] == 255


def test_models_load_once_per_device(random_srgan_checkpoint):
    first = sr.load("srgan-x4", torch.device("cpu"), checkpoint_file=str(random_srgan_checkpoint))
    again = sr.load("srgan-x4", torch.device("cpu"), checkpoint_file=str(random_srgan_checkpoint))
    assert first is again


@pytest.mark.parametrize("name, minimum_gain_db", [("baboon", 0.25), ("comic", 0.9)])
def test_real_srgan_x4_beats_bicubic(shared_weights, shared, name, minimum_gain_db):
    low = images.load(shared / "images" / "sr" / f"{name}_lq.png")
    truth = images.load(shared / "images" / "sr" / f"{name}_gt.png").rgb
    out = sr_tab.run(low, "srgan-x4")
    assert out.images["model"].shape == truth.shape
    gain = sr_tab.quality(truth, out.images["model"])["psnr_db"] - sr_tab.quality(truth, out.images["bicubic"])["psnr_db"]
    assert gain >= minimum_gain_db


def test_real_srgan_x2_on_the_check_mode(shared_weights, shared):
    photo = images.load(shared / "images" / "sr" / "comic_gt.png")
    out = sr_tab.run(photo, "srgan-x2", mode="check")
    assert out.record["metrics"]["model"]["ssim"] > out.record["metrics"]["bicubic"]["ssim"]


# --- the checkpoints of issue 13: SRGAN x8 and Real-ESRGAN's anime video model --------------------------------------


@pytest.mark.parametrize("name, tensors", [("srgan-x8", 82), ("realesr-animevideov3", 53)])
def test_new_real_checkpoints_load_strictly_in_their_layouts(shared_weights, name, tensors):
    entry = weights.get(name)
    raw = weights.load_state_dict(weights.fetch(entry))
    if entry.state_key:
        assert isinstance(raw[entry.state_key], dict)  # the catalogue says where the file keeps its weights
    stored = [(key, tuple(value.shape)) for key, value in weights.unwrap(raw).items()]
    built = [(key, tuple(value.shape)) for key, value in sr.build(name).state_dict().items()
             if not key.endswith("num_batches_tracked")]  # leftthomas' PyTorch 0.3 files predate the counters
    assert stored == built and len(stored) == tensors
    net = sr.load(name, torch.device("cpu"))
    assert not net.training and net.scale == sr.MODELS[name].scale


def test_real_srgan_x8_beats_bicubic_on_a_set14_photo(shared_weights, shared):
    """comic_gt (Set14) cropped to a multiple of 8 and shrunk by 8 with bicubic, then enlarged back by both."""
    out = sr_tab.run(images.load(shared / "images" / "sr" / "comic_gt.png"), "srgan-x8", mode="check")
    metrics = out.record["metrics"]
    print(f"srgan-x8 on comic: {metrics['model']['psnr_db']:.2f} dB, bicubic {metrics['bicubic']['psnr_db']:.2f} dB")
    assert out.record["model_input_size"] == [30, 45] and out.images["model"].shape == (360, 240, 3)
    assert metrics["psnr_gain_db"] >= 0.3 and metrics["model"]["ssim"] > metrics["bicubic"]["ssim"]


def test_real_animevideov3_gives_a_sensible_picture_on_a_set14_photo(shared_weights, shared):
    """An anime model on a photo of a baboon: not expected to beat bicubic, only to be a sound x4 image."""
    low = images.load(shared / "images" / "sr" / "baboon_lq.png")
    truth = images.load(shared / "images" / "sr" / "baboon_gt.png").rgb
    out = sr_tab.run(low, "realesr-animevideov3")
    model, bicubic = sr_tab.quality(truth, out.images["model"]), sr_tab.quality(truth, out.images["bicubic"])
    print(f"realesr-animevideov3 on baboon: {model['psnr_db']:.2f} dB, bicubic {bicubic['psnr_db']:.2f} dB")
    assert out.images["model"].shape == truth.shape
    assert np.isfinite(model["psnr_db"]) and model["psnr_db"] > 15


def test_cli_predict_with_real_animevideov3_offline(shared_weights, shared, tmp_path, capsys):
    import app

    source = shared / "images" / "sr" / "comic_lq.png"
    try:
        code = app.main(["predict", "super-resolution", str(source), "--model", "realesr-animevideov3", "-o",
                         str(tmp_path), "--offline"])
    finally:
        weights.set_offline(True)  # the session's switch, whatever the command set
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "comic_lq.json").read_text())
    assert record["model"] == "realesr-animevideov3" and record["output_size"] == [240, 360]
    assert images.load(tmp_path / "comic_lq.model.png").size == (240, 360)
