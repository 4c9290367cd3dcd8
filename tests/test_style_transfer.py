"""Style transfer: architectures match the official layouts, the zip extraction, Gram matrices, Gatys as a stream,
AdaIN's statistics, colour preservation and the pipeline's outputs. Random weights throughout (offline)."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from conftest import drawn_scene
from models import (adain, fast_style, gatys, images, runtime, style_colors, style_images, style_tensors,
                    vgg_features, weights)
from models.adain_arch import adain_decoder, adain_encoder
from models.fast_style_arch import TransformerNet
from models.tabs import style as style_tab

TASK = style_tab.TASK
MANIFESTS = {"fast_style": TransformerNet, "adain_vgg": adain_encoder, "adain_decoder": adain_decoder}


def _layout(module: torch.nn.Module) -> list:
    return [[key, list(value.shape), str(value.dtype).removeprefix("torch.")]
            for key, value in module.state_dict().items()]


def _legacy_state(net: TransformerNet) -> dict:
    """The official checkpoints' format: the state dict plus PyTorch 0.3's instance-norm running statistics."""
    state = dict(net.state_dict())
    for key in [k for k in state if k.endswith(".weight") and k.split(".")[-2].startswith("in")]:
        prefix = key.removesuffix("weight")
        state[prefix + "running_mean"] = torch.zeros_like(state[key])
        state[prefix + "running_var"] = torch.ones_like(state[key])
    return state


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def _official_members() -> dict[str, bytes]:
    members = {}
    for index, name in enumerate(fast_style.FAST_STYLES):
        torch.manual_seed(index)
        buffer = io.BytesIO()
        torch.save(_legacy_state(TransformerNet()), buffer)
        members[f"saved_models/{name}.pth"] = buffer.getvalue()
    return members


@pytest.fixture(scope="module")
def random_vgg() -> vgg_features.VGGFeatures:
    torch.manual_seed(0)
    return gatys.gatys_vgg().eval().requires_grad_(False)


@pytest.fixture(scope="module")
def random_adain() -> adain.AdaIN:
    torch.manual_seed(0)
    return adain.AdaIN(adain_encoder(full=False), adain_decoder()).eval().requires_grad_(False)


@pytest.fixture
def random_models(monkeypatch, random_vgg, random_adain):
    """run() with random networks in place of the official checkpoints (which the offline test session lacks)."""
    torch.manual_seed(0)
    fast = TransformerNet().eval().requires_grad_(False)
    chosen = {"adain": random_adain, "gatys": random_vgg}
    monkeypatch.setattr(style_tab, "load", lambda model, device=None, checkpoint_file=None, progress=None:
                        chosen.get(model, fast))


def _options(**changes) -> dict:
    return {**TASK.parse_options([]), **changes}


# --- Architectures ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("manifest", sorted(MANIFESTS))
def test_state_dict_layout_equals_the_reference_manifest(shared, manifest):
    expected = [[key, list(shape), dtype] for key, shape, dtype in
                json.loads((shared / "layouts" / f"{manifest}.json").read_text())["keys"]]
    assert _layout(MANIFESTS[manifest]()) == expected


def test_gatys_vgg_has_torchvision_vgg19_feature_keys():
    from torchvision.models import vgg19

    reference = vgg19(weights=None).features
    assert _layout(gatys.gatys_vgg().layers) == _layout(reference)
    assert gatys.VGG19_LAYERS["relu4_2"] == 22 and gatys.VGG19_LAYERS["conv5_1"] == 28


def test_transformer_net_keeps_the_size_and_works_in_0_255():
    torch.manual_seed(0)
    net = TransformerNet().eval()
    out = fast_style.stylize_fast(net, drawn_scene(42, 58))  # not multiples of 4: padded, then cropped back
    assert out.shape == (42, 58, 3) and out.dtype == np.uint8
    assert out.std() > 0


# --- Fast-style checkpoints: legacy keys, the zip ---------------------------------------------------------------------

def test_legacy_instance_norm_keys_are_dropped_before_a_strict_load(tmp_path):
    torch.manual_seed(3)
    state = _legacy_state(TransformerNet())
    assert "res3.in2.running_var" in state and "in5.running_mean" in state
    with pytest.raises(RuntimeError):
        TransformerNet().load_state_dict(state, strict=True)
    converted = fast_style.drop_legacy_instance_norm(state)
    assert len(converted) == 62 and not any("running_" in key for key in converted)
    path = tmp_path / "my_style.pth"
    torch.save(state, path)
    net = style_tab.load("candy", torch.device("cpu"), checkpoint_file=str(path))  # a user's, reference format
    assert torch.equal(net.res3.conv1.conv2d.weight, state["res3.conv1.conv2d.weight"])


def test_a_checkpoint_of_another_network_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "decoder.pth"
    torch.save(adain_decoder().state_dict(), path)
    with pytest.raises(weights.WeightsError, match="does not fit the TransformerNet"):
        style_tab.load("mosaic", torch.device("cpu"), checkpoint_file=str(path))


def test_zip_extraction_writes_exactly_the_four_models(tmp_path):
    members = _official_members()
    archive = tmp_path / "saved_models.zip"
    archive.write_bytes(_zip({**members, "saved_models/": b"", "saved_models/README.txt": b"hello",
                              "__MACOSX/saved_models/._candy.pth": b"junk", "saved_models/other.pth": b"x"}))
    folder = tmp_path / "out"
    written = fast_style.extract_fast_style_models(archive, folder)
    assert sorted(path.name for path in folder.iterdir()) == sorted(f"{name}.pth" for name in fast_style.FAST_STYLES)
    assert set(written) == set(fast_style.FAST_STYLES)
    for name, path in written.items():
        assert path.read_bytes() == members[f"saved_models/{name}.pth"]


@pytest.mark.parametrize("evil", ["../candy.pth", "saved_models/../../mosaic.pth", "/tmp/udnie.pth",
                                  "..\\..\\candy.pth", "C:/candy.pth"])
def test_zip_with_a_path_outside_the_cache_is_refused_whole(tmp_path, evil):
    archive = tmp_path / "saved_models.zip"
    archive.write_bytes(_zip({**_official_members(), evil: b"payload"}))
    folder = tmp_path / "cache" / "fast_neural_style"
    with pytest.raises(fast_style.ArchiveError, match="outside its folder"):
        fast_style.extract_fast_style_models(archive, folder)
    assert not folder.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["saved_models.zip"]


def test_zip_missing_a_model_or_not_a_zip_is_refused(tmp_path):
    members = _official_members()
    del members["saved_models/udnie.pth"]
    archive = tmp_path / "saved_models.zip"
    archive.write_bytes(_zip(members))
    with pytest.raises(fast_style.ArchiveError, match="lacks udnie.pth"):
        fast_style.extract_fast_style_models(archive, tmp_path / "out")
    archive.write_bytes(b"<html>not found</html>")
    with pytest.raises(fast_style.ArchiveError, match="not a readable zip"):
        fast_style.extract_fast_style_models(archive, tmp_path / "out")


def test_official_models_load_from_a_placed_zip_offline(tmp_path, monkeypatch):
    """The zip placed in $CVPG_HOME (as `app.py download` or a person would) is verified, extracted, loaded."""
    home, hub = tmp_path / "home", tmp_path / "hub"
    home.mkdir()
    members = _official_members()
    (home / "fast_neural_style_saved_models.zip").write_bytes(_zip(members))
    monkeypatch.setenv("CVPG_HOME", str(home))
    old_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        net = style_tab.load("udnie", torch.device("cpu"))
        expected = torch.load(io.BytesIO(members["saved_models/udnie.pth"]), weights_only=True)
        assert torch.equal(net.deconv3.conv2d.weight, expected["deconv3.conv2d.weight"])
        assert (hub / "checkpoints" / "fast_neural_style" / "udnie.pth").is_file()
        assert (home / "fast_neural_style_saved_models.zip.sha256").is_file()  # first hash recorded
    finally:
        torch.hub.set_dir(old_hub)
        runtime.MODELS.clear()


def test_official_adain_files_and_a_users_decoder_load_from_cvpg_home(tmp_path, monkeypatch):
    torch.manual_seed(4)
    encoder, decoder, mine = adain_encoder(full=True), adain_decoder(), adain_decoder()
    torch.save(encoder.state_dict(), tmp_path / "adain_vgg_normalised.pth")
    torch.save(decoder.state_dict(), tmp_path / "adain_decoder.pth")
    torch.save(mine.state_dict(), tmp_path / "my_decoder.pth")
    monkeypatch.setenv("CVPG_HOME", str(tmp_path))
    try:
        model = style_tab.load("adain", torch.device("cpu"))
        assert len(model.encoder.layers) == 31  # to relu4_1, as the reference's test.py
        assert torch.equal(model.encoder.layers[29].weight, encoder[29].weight)
        assert torch.equal(model.decoder[28].weight, decoder[28].weight)
        own = style_tab.load("adain", torch.device("cpu"), checkpoint_file=str(tmp_path / "my_decoder.pth"))
        assert torch.equal(own.decoder[28].weight, mine[28].weight)
    finally:
        runtime.MODELS.clear()


def test_a_vgg19_file_that_is_not_torchvisions_is_refused(tmp_path, monkeypatch):
    from torchvision.models.vgg import cfgs, make_layers

    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["E"]).state_dict().items()},
               tmp_path / "vgg19-dcbb9e9d.pth")
    monkeypatch.setenv("CVPG_HOME", str(tmp_path))
    with pytest.raises(weights.ChecksumError, match="hash prefix dcbb9e9d"):
        style_tab.load("gatys", torch.device("cpu"))


@pytest.mark.parametrize("model, filename", [("candy", "fast_neural_style_saved_models.zip"),
                                             ("adain", "adain_vgg_normalised.pth"),
                                             ("gatys", "vgg19-dcbb9e9d.pth")])
def test_missing_official_weights_offline_name_the_file(model, filename):
    with pytest.raises(weights.MissingWeightsError, match=filename):
        style_tab.load(model, torch.device("cpu"))


def test_torchvision_hash_prefix_is_enforced(tmp_path):
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    path.write_bytes(b"not the real file")
    with pytest.raises(weights.ChecksumError, match="dcbb9e9d"):
        gatys.check_hash_prefix(path)


def test_checkpoints_are_registered_for_download():
    catalogue = weights.catalogue()
    for name in ("fast-neural-style-models", "vgg19-imagenet", "adain-vgg-normalised", "adain-decoder"):
        assert catalogue[name].task == "style"
    assert catalogue["vgg19-imagenet"].url == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"


# --- Gram matrix -----------------------------------------------------------------------------------------------------

def test_gram_matrix_is_the_explicit_sum_over_pixels_divided_by_c_h_w():
    torch.manual_seed(0)
    features = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    gram = vgg_features.gram_matrix(features)
    n, c, h, w = features.shape
    for sample in range(n):
        for i in range(c):
            for j in range(c):
                explicit = sum(features[sample, i, y, x] * features[sample, j, y, x]
                               for y in range(h) for x in range(w)) / (c * h * w)
                assert torch.isclose(gram[sample, i, j], explicit)
    assert torch.allclose(gram, gram.transpose(1, 2))


def test_gram_image_is_a_square_picture_per_layer(random_vgg, random_adain):
    style = np.array(style_images.builtin_style("waves", 64))
    picture = vgg_features.gram_image(random_vgg, style, "relu2_1")  # 128 channels, enlarged x2
    assert picture.shape == (256, 256, 3) and picture.dtype == np.uint8
    adain_vgg = vgg_features.feature_extractor(random_adain)
    assert vgg_features.gram_image(adain_vgg, style, "conv3_1").shape == (256, 256, 3)
    with pytest.raises(ValueError, match="unknown VGG layer"):
        vgg_features.gram_image(random_vgg, style, "relu9_1")


# --- Gatys ----------------------------------------------------------------------------------------------------------

def test_gatys_loss_falls_and_the_stream_yields_images_and_losses(random_vgg):
    content, style = drawn_scene(64, 80), np.array(style_images.builtin_style("stained-glass", 64))
    reports = list(gatys.gatys_steps(content, style, random_vgg, steps=10, every=2, max_side=0))
    assert [report.step for report in reports] == [0, 2, 4, 6, 8, 10]
    assert reports[-1].total_loss < reports[0].total_loss
    assert reports[-1].done and not reports[0].done and not reports[-1].stopped
    for report in reports:
        assert report.image.shape == (64, 80, 3) and report.image.dtype == np.uint8
        assert np.isclose(report.content_loss + report.style_loss, report.total_loss)
    assert [entry[0] for entry in reports[-1].history] == list(range(11))
    assert not np.array_equal(reports[-1].image, reports[0].image)  # the picture changes as it goes


def test_gatys_stop_returns_the_best_image_so_far(random_vgg):
    content, style = drawn_scene(48, 48), np.array(style_images.builtin_style("waves", 48))
    asked = []
    stream = gatys.gatys_steps(content, style, random_vgg, steps=50, every=1, max_side=0, optimizer="adam",
                                  should_stop=lambda: asked.append(1) or len(asked) > 4)
    reports = list(stream)
    final = reports[-1]
    assert final.stopped and final.done and final.step == 4 and len(reports) == 5
    totals = [entry[3] for entry in final.history]
    best = int(np.argmin(totals))
    assert final.best_step == best and final.best_loss == totals[best]
    assert np.array_equal(final.best_image, reports[best].image)


def test_closing_the_gatys_stream_keeps_the_best_image_of_the_last_report(random_vgg):
    content, style = drawn_scene(40, 40), np.array(style_images.builtin_style("swirls", 40))
    stream = gatys.gatys_steps(content, style, random_vgg, steps=100, every=1, max_side=0)
    reports = [next(stream) for _ in range(3)]
    stream.close()  # what a UI's Stop button does to a streaming handler
    assert reports[-1].best_image.shape == (40, 40, 3)
    assert reports[-1].best_loss == min(entry[3] for entry in reports[-1].history)


def test_gatys_works_under_the_callers_inference_mode(random_vgg):
    with torch.inference_mode():
        final = list(gatys.gatys_steps(drawn_scene(32, 32), drawn_scene(32, 32)[::-1], random_vgg, steps=1,
                                       init="noise", max_side=0))[-1]
    assert final.done and final.image.shape == (32, 32, 3)


def test_gatys_refuses_unknown_layers_and_tiny_images(random_vgg):
    with pytest.raises(ValueError, match="unknown VGG-19 layer conv9_9"):
        next(gatys.gatys_steps(drawn_scene(), drawn_scene(), random_vgg, style_layers="relu1_1,conv9_9"))
    with pytest.raises(ValueError, match="at least 32 px"):
        next(gatys.gatys_steps(drawn_scene(16, 40), drawn_scene(), random_vgg, max_side=0))


# --- AdaIN ----------------------------------------------------------------------------------------------------------

def test_adain_with_alpha_0_is_the_decoder_of_the_content_features(random_adain):
    torch.manual_seed(1)
    content, style = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 48, 80)
    with torch.inference_mode():
        content_features, style_features = random_adain.encode(content), random_adain.encode(style)
        assert torch.allclose(random_adain(content, style, alpha=0.0), random_adain.decoder(content_features))
        # and in between, the blend happens in feature space, before the decoder
        mixed = 0.3 * adain.adaptive_instance_norm(content_features, style_features) + 0.7 * content_features
        assert torch.allclose(random_adain(content, style, alpha=0.3), random_adain.decoder(mixed), atol=1e-6)


def test_adain_output_has_the_style_features_channel_statistics(random_adain):
    torch.manual_seed(2)
    content = torch.randn(1, 16, 12, 10) * 3 + 1
    style = torch.randn(1, 16, 7, 9) * torch.rand(1, 16, 1, 1) * 5 + torch.randn(1, 16, 1, 1) * 4
    out = adain.adaptive_instance_norm(content, style)
    flat_out, flat_style = out.flatten(2), style.flatten(2)
    assert torch.allclose(flat_out.mean(2), flat_style.mean(2), atol=1e-4)
    assert torch.allclose(flat_out.std(2), flat_style.std(2), rtol=1e-3, atol=1e-3)
    with torch.inference_mode():  # and on real encoder features
        content_f = random_adain.encode(torch.rand(1, 3, 64, 64))
        style_f = random_adain.encode(torch.rand(1, 3, 64, 96))
        mean, std = adain.channel_mean_std(adain.adaptive_instance_norm(content_f, style_f))
        style_mean, style_std = adain.channel_mean_std(style_f)
    assert torch.allclose(mean, style_mean, atol=1e-4) and torch.allclose(std, style_std, rtol=1e-3, atol=1e-4)


def test_adain_stylize_keeps_the_content_size_and_reuses_the_encoded_style(random_adain):
    out = adain.stylize_adain(random_adain, drawn_scene(50, 70), drawn_scene(40, 40), alpha=0.7, preserve_color=True)
    assert out.shape == (50, 70, 3) and out.dtype == np.uint8
    content, style = drawn_scene(64, 64), np.array(style_images.builtin_style("swirls", 64))
    first = adain.stylize_adain(random_adain, content, style)  # encodes the style
    again = adain.stylize_adain(random_adain, content, style)  # from the cache
    with torch.inference_mode():
        direct = random_adain(style_tensors.to_tensor(content, torch.device("cpu"), torch.float32, 1.0),
                              style_tensors.to_tensor(style, torch.device("cpu"), torch.float32, 1.0))
    assert np.array_equal(first, again) and np.array_equal(first, style_tensors.to_uint8(direct, 1.0))
    with pytest.raises(ValueError, match="alpha"):
        adain.stylize_adain(random_adain, drawn_scene(), drawn_scene(), alpha=1.5)


# --- Colour preservation -------------------------------------------------------------------------------------------

def test_match_colors_gives_the_style_the_content_colour_statistics():
    rng = np.random.default_rng(0)
    style = np.array(style_images.builtin_style("stained-glass", 96))
    content = np.clip(rng.normal((120, 90, 60), (30, 20, 15), (64, 80, 3)), 0, 255).astype(np.uint8)
    recoloured = style_colors.match_colors(style, content)
    assert recoloured.shape == style.shape
    mine, theirs = recoloured.reshape(-1, 3).astype(float), content.reshape(-1, 3).astype(float)
    assert np.allclose(mine.mean(0), theirs.mean(0), atol=3)
    assert np.allclose(np.cov(mine.T), np.cov(theirs.T), atol=0.1 * np.abs(np.cov(theirs.T)).max())


def test_keep_luminance_only_takes_the_content_chroma():
    content, stylised = drawn_scene(), np.array(style_images.builtin_style("waves", 128))[:96]
    mixed = style_colors.keep_luminance_only(stylised, content)
    from PIL import Image

    ycc = lambda rgb: np.asarray(Image.fromarray(rgb).convert("YCbCr")).astype(int)
    assert np.abs(ycc(mixed)[..., 0] - ycc(stylised)[..., 0]).mean() < 3
    assert np.abs(ycc(mixed)[..., 1:] - ycc(content)[..., 1:]).mean() < 3


# --- Built-in styles ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", style_images.BUILTIN_STYLES)
def test_builtin_styles_are_painted_the_same_everywhere(name):
    image = style_images.builtin_style(name, 64)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 10
    path = style_images.builtin_style_path(name, 64)
    assert np.array_equal(images.load(path).rgb, image)
    assert np.array_equal(style_images.resolve_style(name)[0], style_images.builtin_style(name))


def test_style_option_accepts_empty_names_paths_and_arrays(tmp_path):
    assert style_images.resolve_style("")[1] == style_images.DEFAULT_STYLE
    assert style_images.resolve_style(style_images.builtin_style_path("waves", 64))[0].shape == (64, 64, 3)
    assert style_images.resolve_style(drawn_scene())[0].shape == (96, 128, 3)
    with pytest.raises(images.ImageInputError):
        style_images.resolve_style(str(tmp_path / "missing.png"))


# --- The pipeline ---------------------------------------------------------------------------------------------------

def test_run_fast_style_shapes_and_record(random_models):
    out = style_tab.run(images.load(drawn_scene(40, 56)), "udnie", **_options(preserve_color=True))
    assert out.images["stylized"].shape == out.images["content"].shape == (40, 56, 3)
    assert "gram" not in out.images and out.record["working_size"] == [56, 40]
    assert out.record["device"] == runtime.describe(runtime.device()) and out.record["ms"]["model"] > 0
    json.dumps(out.record)


def test_run_scales_to_the_working_size_and_keeps_transparency(random_models):
    rgba = np.dstack([drawn_scene(60, 100), np.full((60, 100), 128, np.uint8)])
    out = style_tab.run(images.load(rgba), "mosaic", **_options(max_side=50))
    assert out.images["stylized"].shape == (30, 50, 4)
    assert any("working size 50" in note for note in out.record["notes"])


def test_run_adain_outputs_style_and_gram(random_models):
    out = style_tab.run(images.load(drawn_scene(64, 80)), "adain",
                        **_options(style="waves", alpha=0.5, gram_layer="relu3_1", max_side=72))
    assert out.images["stylized"].shape == (58, 72, 3)
    assert out.images["style"].shape == (72, 72, 3)  # the 512 px built-in, fitted to the working size too
    assert out.images["gram"].shape == (256, 256, 3)
    assert out.record["alpha"] == 0.5 and out.record["style"] == "waves"


def test_run_gatys_returns_the_final_image_and_the_loss_history(random_models):
    out = style_tab.run(images.load(drawn_scene(48, 64)), "gatys", **_options(steps=3, max_side=64, optimizer="adam"))
    assert out.images["stylized"].shape == (48, 64, 3)
    record = out.record["gatys"]
    assert [entry["step"] for entry in record["history"]] == [0, 1, 2, 3] and record["steps_done"] == 3
    assert record["optimizer"] == "adam" and "3 steps" in out.summary
    json.dumps(out.record)


def test_task_stream_reports_every_5_steps_and_ends_on_the_best_image(random_models):
    reports = list(TASK.stream(images.load(drawn_scene(48, 64)), model="gatys",
                               **_options(steps=7, max_side=64, optimizer="adam")))
    assert [out.record["gatys"]["steps_done"] for out in reports] == [0, 5, 7]
    assert [out.record["gatys"]["done"] for out in reports] == [False, False, True]
    for out in reports:
        assert out.images["stylized"].shape == out.images["content"].shape == (48, 64, 3)
        assert out.images["gram"].shape == (256, 256, 3) and out.images["style"].shape == (64, 64, 3)
        json.dumps(out.record)
    final = reports[-1].record["gatys"]
    assert [entry["step"] for entry in final["history"]] == list(range(8))
    assert final["best_loss"] == min(entry["total"] for entry in final["history"])


def test_task_stream_stops_when_asked_and_keeps_the_best_image(random_models):
    asked = []
    stream = TASK.stream(images.load(drawn_scene(48, 48)), model="gatys",
                         should_stop=lambda: asked.append(1) or len(asked) > 7,
                         **_options(steps=400, max_side=48, optimizer="adam"))
    reports = list(stream)
    final = reports[-1].record["gatys"]
    assert final["stopped"] and final["done"] and final["steps_done"] == 7
    assert [out.record["gatys"]["steps_done"] for out in reports] == [0, 5, 7]
    best = reports[-1].images["stylized"]
    assert best.shape == (48, 48, 3) and final["best_loss"] == min(entry["total"] for entry in final["history"])
    direct = list(TASK.stream(images.load(drawn_scene(48, 48)), model="mosaic", **_options()))
    assert len(direct) == 1 and "gatys" not in direct[0].record  # a one-shot model yields run() once


def test_gatys_takes_no_checkpoint():
    with pytest.raises(ValueError, match="no checkpoint"):
        style_tab.load("gatys", torch.device("cpu"), checkpoint_file="whatever.pth")


def test_task_options_parse_from_the_command_line():
    options = TASK.parse_options(["style=swirls", "alpha=0.25", "steps=7", "preserve_color=yes",
                                  "style_weight=1e6", "optimizer=adam", "gram_layer=conv4_1"])
    assert options["style"] == "swirls" and options["alpha"] == 0.25 and options["steps"] == 7
    assert options["preserve_color"] is True and options["style_weight"] == 1e6
    assert TASK.models == ("candy", "mosaic", "rain_princess", "udnie", "adain", "gatys")


# --- The reference style images (../shared, skipped when absent) -----------------------------------------------------

@pytest.mark.parametrize("name", ["candy", "mosaic", "rain-princess", "udnie"])
def test_reference_style_images_work_as_adain_styles(shared, random_models, name):
    path = shared / "images" / "styles" / f"{name}.jpg"
    out = style_tab.run(images.load(drawn_scene(64, 64)), "adain",
                        **_options(style=str(path), max_side=64, preserve_color=True))
    assert out.images["stylized"].shape == (64, 64, 3)
    assert max(out.images["style"].shape[:2]) == 64 and out.record["style"] == f"{name}.jpg"


# --- Real checkpoints, when someone has placed them in ../shared/weights (skipped otherwise) ----------------------

def _need(folder, *names):
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in {folder}")


def test_real_fast_style_model_paints_the_drawn_scene(shared_weights, tmp_path, monkeypatch):
    _need(shared_weights, "fast_neural_style_saved_models.zip")
    monkeypatch.setattr(weights, "cache_dir", lambda: tmp_path)  # extraction target, not the shared folder
    scene = drawn_scene(128, 128)
    out = fast_style.stylize_fast(style_tab.load("mosaic", torch.device("cpu")), scene)
    runtime.MODELS.clear()
    assert out.shape == scene.shape and np.abs(out.astype(int) - scene).mean() > 20 and out.std() > 20


def test_real_adain_follows_alpha(shared_weights):
    _need(shared_weights, "adain_vgg_normalised.pth", "adain_decoder.pth")
    model = style_tab.load("adain", torch.device("cpu"))
    scene, style = drawn_scene(128, 128), np.array(style_images.builtin_style("stained-glass", 256))
    light, full = (adain.stylize_adain(model, scene, style, alpha) for alpha in (0.0, 1.0))
    runtime.MODELS.clear()
    assert np.abs(light.astype(int) - scene).mean() < np.abs(full.astype(int) - scene).mean()


def test_real_vgg19_gatys_lowers_the_loss(shared_weights):
    _need(shared_weights, "vgg19-dcbb9e9d.pth")
    style = np.array(style_images.builtin_style("waves", 64))
    reports = list(gatys.gatys_steps(drawn_scene(64, 64), style, steps=5, every=5))
    runtime.MODELS.clear()
    assert reports[-1].total_loss < reports[0].total_loss


def _press_stop(url: str, client) -> None:
    """What the Stop button sends: its endpoint is private (no API client calls it), so post as the browser does,
    in the session of the running job."""
    import httpx

    answer = httpx.post(f"{url.rstrip('/')}/gradio_api/run/style_stop",
                        json={"data": [], "session_hash": client.session_hash}, timeout=30)
    answer.raise_for_status()


def test_endpoint_answers_a_fast_style_by_keyword(served_app, random_models, tmp_path):
    """Through the app: only the image is required; options go by keyword, named like the command line's --set."""
    from gradio_client import Client, handle_file
    from PIL import Image

    Image.fromarray(drawn_scene(48, 64)).save(tmp_path / "content.png")
    client = Client(served_app, verbose=False)
    (content, stylised), status, plot, style_image, gram, record = client.predict(
        image=handle_file(str(tmp_path / "content.png")), preserve_color=True, api_name="/style")
    assert record["model"] == "mosaic" and record["preserve_color"] is True  # the default model
    assert record["working_size"] == [64, 48] and record["input_size"] == [64, 48]
    assert Image.open(content).size == Image.open(stylised).size == (64, 48) and "mosaic" in status
    assert plot is None and style_image is None and gram is None  # AdaIN's and Gatys's views only
    _, _, _, style_image, gram, record = client.predict(
        image=handle_file(str(tmp_path / "content.png")), model="adain",
        style_image=handle_file(str(tmp_path / "content.png")), alpha=0.5, gram_layer="relu3_1", max_side=64,
        api_name="/style")
    assert record["model"] == "adain" and record["alpha"] == 0.5 and record["gram_layer"] == "relu3_1"
    assert record["style"] == "image" and record["style_size"] == [64, 48]  # the upload, not a built-in pattern
    assert Image.open(style_image).size == (64, 48) and Image.open(gram).size == (256, 256)


def test_endpoint_streams_gatys_and_stop_keeps_the_best(served_app, random_models, tmp_path):
    """Through the app: Gatys streams reports (image, losses); Stop ends it early with the best image so far."""
    import time

    from gradio_client import Client, handle_file
    from PIL import Image

    Image.fromarray(drawn_scene(48, 64)).save(tmp_path / "content.png")
    client = Client(served_app, verbose=False)
    job = client.submit(image=handle_file(str(tmp_path / "content.png")), model="gatys", steps=400, optimizer="adam",
                        max_side=64, api_name="/style")  # by keyword; the rest keep their defaults
    deadline = time.time() + 120
    while len(job.outputs()) < 2 and time.time() < deadline:  # at least two reports: step 0 and step 5
        time.sleep(0.2)
    _press_stop(served_app, client)
    job.result(timeout=120)
    outputs = job.outputs()
    assert len(outputs) >= 3
    (content, stylised), status, plot, style_image, gram, record = outputs[-1]
    assert "Stopped" in status and "best image" in status and "of 400" in status
    assert Image.open(content).size == Image.open(stylised).size == (64, 48)
    assert {row[1] for row in plot["data"]} == {"content", "style", "total"}
    steps = sorted({row[0] for row in plot["data"]})
    assert steps[0] == 0 and 5 <= steps[-1] < 400  # stopped early, with every step's losses plotted
    report = record["gatys"]
    assert record["model"] == "gatys" and record["style"] == style_images.DEFAULT_STYLE
    assert report["stopped"] and report["done"] and report["steps"] == 400 and report["optimizer"] == "adam"
    assert report["steps_done"] == steps[-1] and record["working_size"] == [64, 48]
    assert report["best_loss"] == min(entry["total"] for entry in report["history"])
