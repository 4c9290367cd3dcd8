"""The app from outside: the Blocks endpoint through gradio_client, and the command line."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from conftest import ROOT, drawn_scene, png_claiming


@pytest.fixture(scope="module")
def client(served_app):
    return Client(served_app, verbose=False)


@pytest.fixture
def scene_png(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(drawn_scene(48, 64)).save(path)
    return path


def _enlarge(client, image, model="bicubic-x4", **options):
    """The endpoint by keyword, as a script would call it: only the image is required."""
    return client.predict(image=handle_file(str(image)), model=model, **options, api_name="/super_resolution")


def test_super_resolution_endpoint_returns_the_pair_the_full_size_file_and_the_record(client, scene_png):
    (before, after), status, _, download, record = _enlarge(client, scene_png)
    assert Image.open(before).size == Image.open(after).size == (256, 192)
    assert "bicubic-x4" in status and "64x48 -> 256x192" in status
    full = np.asarray(Image.open(download))
    assert full.shape == (192, 256, 3)
    assert record["model"] == "bicubic-x4" and record["output_size"] == [256, 192] and record["mode"] == "upscale"


def test_user_checkpoint_upload_runs_through_the_endpoint(client, scene_png, random_srgan_checkpoint):
    (_, after), status, _, _, record = _enlarge(client, scene_png, "srgan-x4",
                                                checkpoint=handle_file(str(random_srgan_checkpoint)))
    assert Image.open(after).size == (256, 192) and "srgan-x4" in status and record["model"] == "srgan-x4"


def test_check_mode_fills_the_metrics_table(client, scene_png):
    _, _, metrics, _, record = _enlarge(client, scene_png, mode="check")
    rows = {row[0]: row[1:] for row in metrics["value"]["data"]}  # the handler returns a gr.update
    assert set(rows) == {"model", "bicubic"} and rows["model"][0] > 10
    assert rows["model"][0] == pytest.approx(record["metrics"]["model"]["psnr_db"], abs=0.01)


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(drawn_scene(120, 160)).save(buffer, format="JPEG")
    return buffer.getvalue()[:1500]


def _one_pixel_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("content, message", [
    # a file that is no image at all is refused at upload already (HTTP 415, its body naming what the app takes)
    (b"definitely not a picture", "is not an image this app can read|415 Unsupported Media Type"),
    (_one_pixel_png(), "at least 8 pixels"),
    (_truncated_jpeg(), "damaged or truncated"),
    (png_claiming(30000, 30000), "limit is 50 megapixels"),
])
def test_bad_input_gets_a_message_and_the_server_keeps_serving(client, tmp_path, scene_png, content, message):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(Exception, match=message):
        _enlarge(client, bad)
    (_, after), *_ = _enlarge(client, scene_png)  # the next request is served normally
    assert Image.open(after).size == (256, 192)


def test_missing_weights_offline_explain_what_to_download(client, scene_png):
    with pytest.raises(Exception, match="RealESRGAN_x4plus.pth"):
        _enlarge(client, scene_png, "realesrgan-x4plus")


def _cli(*args, env_home=None):
    import os

    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    if env_home:
        env["CVPG_HOME"] = str(env_home)
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.slow
def test_cli_predict_writes_images_and_json(tmp_path, scene_png):
    """The one command-line test in a real subprocess: `python app.py` starts and writes its files."""
    result = _cli("predict", "super-resolution", str(scene_png), "-o", str(tmp_path / "out"), "--model", "bicubic-x2",
                  "--offline", "--set", "mode=check")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "scene.json").read_text())
    assert record["model"] == "bicubic-x2" and record["mode"] == "check" and record["output_size"] == [64, 48]
    assert set(record["files"]) == {"original", "low_resolution", "bicubic", "model"}
    assert Image.open(record["files"]["model"]).size == (64, 48)


def test_cli_predict_with_real_srgan_offline(shared_weights, shared, tmp_path, main):
    code, _, err = main("predict", "super-resolution", str(shared / "images/sr/baboon_lq.png"), "--model", "srgan-x4",
                        "-o", str(tmp_path), "--offline")
    assert code == 0, err
    record = json.loads((tmp_path / "baboon_lq.json").read_text())
    assert Image.open(tmp_path / "baboon_lq.model.png").size == tuple(record["output_size"]) == (492, 480)


@pytest.mark.parametrize("args, listed", [
    (["predict", "no-such-tab", "x.png", "-o", "out"], "super-resolution"),
    (["predict", "super-resolution", "x.png", "-o", "out", "--model", "nope"], "srgan-x4"),
    (["predict", "super-resolution", "x.png", "-o", "out", "--set", "colour=red"], "mode, denoise, tile"),
    (["predict", "super-resolution", "x.png", "-o", "out", "--set", "mode=sideways"], "upscale, check"),
    (["download", "nope"], "srgan-x4"),
])
def test_cli_usage_errors_list_the_valid_choices(args, listed, main):
    code, _, err = main(*args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and listed in lines[0]


def test_cli_bad_image_fails_cleanly(tmp_path, main):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    code, _, err = main("predict", "super-resolution", str(bad), "-o", str(tmp_path), "--model", "bicubic-x4")
    assert code == 1 and "is not an image" in err


def test_cli_models_lists_every_checkpoint(main):
    code, out, _ = main("models")
    assert code == 0
    for name in ("srgan-x4", "realesrgan-x4plus", "realesr-general-wdn-x4v3", "mask2former-swin-tiny-coco-panoptic"):
        assert name in out


def test_the_catalogue_file_lists_exactly_what_the_families_register():
    """`python app.py models` reads models/catalogue.json; regenerate it with scripts/write_catalogue.py."""
    from models import checkpoints, tasks

    tasks.load_all()
    assert checkpoints.read_catalogue_file() == checkpoints.catalogue()


@pytest.mark.slow
def test_listing_the_catalogue_imports_neither_torch_nor_a_model_family():
    code = ("import sys, app; code = app.main(['models']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; "
            "assert not [m for m in sys.modules if m.startswith('models.tabs')], 'a tab was imported'; "
            "sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "centerface" in result.stdout and "mask2former-swin-tiny-coco-panoptic" in result.stdout
