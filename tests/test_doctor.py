"""The talk checklist: `python app.py doctor` with no weights and with the real ones in ../shared, and
`python app.py download --tabs`."""
from __future__ import annotations

import re

import pytest

import app
import doctor
from models import checkpoints, tasks


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """No checkpoint anywhere: an empty $CVPG_HOME and an empty Hugging Face cache (torch hub's is a temporary one)."""
    import huggingface_hub.constants

    home = tmp_path / "weights"
    home.mkdir()
    monkeypatch.setenv("CVPG_HOME", str(home))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return home


@pytest.fixture
def no_hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def run_doctor(capsys, *argv) -> tuple[int, str]:
    code = doctor.run(app._parser().parse_args(["doctor", "--offline", *argv]))
    return code, capsys.readouterr().out


def tab_status(report: str, tab: str) -> str:
    return re.search(rf"^{re.escape(tab)} \(.*\): (.+)$", report, re.MULTILINE).group(1)


def model_line(report: str, model: str) -> str:
    """The model's line, the chosen (timed, starred) one first: a model can appear in several tabs (centerface)."""
    chosen = re.search(rf"^  \* {re.escape(model)} .*$", report, re.MULTILINE)
    return (chosen or re.search(rf"^  [* ] {re.escape(model)} .*$", report, re.MULTILINE)).group(0)


def test_every_model_of_every_tab_maps_to_catalogued_checkpoints():
    tasks.load_all()
    known = checkpoints.catalogue()
    for tab in tasks.TABS:
        for model in tasks.get_task(tab).models:
            names = doctor.needed_checkpoints(tab, model)
            assert set(names) <= set(known), (tab, model, names)
            assert names or model.startswith("bicubic"), (tab, model)
    assert doctor.needed_checkpoints("landmarks", "2dfan4") == ("2dfan4", "retinaface-mnet")
    assert doctor.needed_checkpoints("super-resolution", "realesr-general-x4v3") == (
        "realesr-general-x4v3", "realesr-general-wdn-x4v3")


def test_tab_selection_keeps_order_merges_models_and_lists_valid_choices():
    assert doctor.parse_tabs(None) is None and doctor.parse_tabs(" ") is None
    assert doctor.parse_tabs("super-resolution:srgan-x4, face-deid,super-resolution:srgan-x2") == {
        "super-resolution": ("srgan-x4", "srgan-x2"), "face-deid": None}
    with pytest.raises(tasks.OptionError, match="valid: instance, panoptic"):
        doctor.parse_tabs("face-deid,faces")
    with pytest.raises(tasks.OptionError, match="valid: retinaface-mnet, retinaface-r50"):
        doctor.parse_tabs("face-deid:mtcnn")


def test_doctor_without_weights_says_what_to_fetch_and_fails_for_chosen_tabs(empty_home, capsys):
    code, report = run_doctor(capsys, "--tabs", "face-deid,super-resolution,keypoint-detectors:centerface")
    assert code == 1
    for tab in ("face-deid", "super-resolution", "keypoint-detectors"):
        assert tab_status(report, tab) == "MISSING"
    assert "instance (" not in report  # only the chosen tabs
    # face-deid's `verify` (on by default) runs the other detector too, so its file is needed as well
    assert model_line(report, "retinaface-mnet").endswith("fix: python app.py download retinaface-mnet centerface")
    assert "missing" in model_line(report, "srgan-x4") and "3.0 MB" in model_line(report, "srgan-x4")
    assert model_line(report, "realesr-general-x4v3").endswith(
        "fix: python app.py download realesr-general-x4v3 realesr-general-wdn-x4v3")
    assert ("python app.py download --tabs face-deid:retinaface-mnet,super-resolution:srgan-x4,"
            "keypoint-detectors:centerface") in report
    assert "Ready offline: none." in report


def test_doctor_reports_a_checkpoint_that_fails_its_hash_and_leaves_it_alone(empty_home, capsys):
    bad = empty_home / "retinaface_mobilenet0.25_Final.pth"
    bad.write_bytes(b"not the published file")
    code, report = run_doctor(capsys, "--tabs", "face-deid", "--timing", "none")
    assert code == 1 and tab_status(report, "face-deid") == "MISSING"
    assert "bad hash" in model_line(report, "retinaface-mnet") and "expected SHA-256" in report
    assert bad.read_bytes() == b"not the published file"  # the doctor only looks


@pytest.mark.slow
def test_doctor_with_the_shared_weights_reports_the_real_weight_tabs_ready(shared_weights, no_hf_cache, capsys):
    code, report = run_doctor(capsys, "--timing", "none")
    assert code == 0  # no tabs chosen: a report, not a verdict
    assert tab_status(report, "face-deid") == "READY"
    assert tab_status(report, "super-resolution") == "READY"
    assert tab_status(report, "keypoint-detectors") == "PARTLY READY"
    assert "for a talk on it: --tabs keypoint-detectors:centerface" in report
    for tab in ("instance", "panoptic", "landmarks", "pix2pix", "cyclegan", "style"):
        assert tab_status(report, tab) == "MISSING", tab
    for model in ("retinaface-mnet", "srgan-x4", "srgan-x2", "srgan-x8", "realesr-animevideov3", "centerface"):
        assert re.search(r"verified +\d+\.\d MB +\w+ fp(16|32)", model_line(report, model)), model
    for model, names in (("retinaface-r50", "retinaface-r50"), ("maskrcnn-r50-fpn-v2", "maskrcnn-r50-fpn-v2"),
                         ("mask2former-swin-tiny-coco-panoptic", "mask2former-swin-tiny-coco-panoptic"),
                         ("horse2zebra", "cyclegan-horse2zebra"), ("mosaic", "fast-neural-style-models"),
                         ("2dfan4", "2dfan4")):
        assert model_line(report, model).endswith(f"fix: python app.py download {names}"), model
    assert "fetch them all: python app.py download --tabs instance" in report


@pytest.mark.slow
def test_doctor_times_the_chosen_models_and_passes_for_tabs_that_work_offline(shared_weights, no_hf_cache, capsys):
    code, report = run_doctor(capsys, "--tabs", "face-deid,keypoint-detectors:centerface")
    assert code == 0, report
    assert tab_status(report, "face-deid") == "READY" and tab_status(report, "keypoint-detectors") == "READY"
    for model in ("retinaface-mnet", "centerface"):
        assert re.search(r"load \d+\.\d\d s, run \d+ ms on a 128 px photo$", model_line(report, model)), model
    assert "Ready offline: face-deid, keypoint-detectors." in report


def test_download_by_tabs_fetches_what_the_chosen_models_need(shared_weights, capsys):
    assert app.main(["download", "--offline", "--tabs", "face-deid:retinaface-mnet,super-resolution:srgan-x4"]) == 0
    out = capsys.readouterr().out
    assert "retinaface-mnet: " in out and "srgan-x4: " in out
    assert app.main(["download", "--offline", "--tabs", "super-resolution:realesr-general-x4v3"]) == 1
    err = capsys.readouterr().err
    assert "realesr-general-x4v3" in err and "realesr-general-wdn-x4v3" in err  # both halves of the blend
    assert app.main(["download", "--offline"]) == 2
    assert "--tabs" in capsys.readouterr().err
