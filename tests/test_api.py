"""The app as a service: every tab answers `gradio_client` by keyword with only the image, returns its record as data,
and gives the same record as the command line for the same options; internal helpers are not public API.

Models come from ../shared/weights where real files exist (super-resolution, face de-identification, CenterFace) and
are random networks seeded into the app's model cache under their official keys otherwise (the same process serves
the app and runs `app.main`, so both see them).
"""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from conftest import SHARED, drawn_scene

pytestmark = pytest.mark.slow

TIMINGS = ("ms", "seconds", "fps", "total_ms")


def _without_timings(value):
    if isinstance(value, dict):
        return {key: _without_timings(item) for key, item in value.items()
                if key not in TIMINGS and not key.endswith(("_ms", "_s")) and key not in ("summary", "notes")}
    if isinstance(value, list):
        return [_without_timings(item) for item in value]
    return value


def _seed(cache, key, build):
    torch.manual_seed(0)
    from models import runtime

    cache.get(key, lambda: runtime.prepare(build(), runtime.device(), half=False))


@pytest.fixture(scope="module")
def seeded_cache():
    """The app's model cache with random networks under the official keys of the tabs without real weights here."""
    from transformers import Mask2FormerForUniversalSegmentation

    from models import cyclegan, fan, fast_style_arch, mask2former, maskrcnn, pix2pix, runtime
    from test_panoptic import _tiny_config

    device = runtime.device()
    cache = runtime.MODELS
    capacity, cache.capacity = cache.capacity, 32  # the real models loaded by other cases must not evict these
    _seed(cache, maskrcnn.cache_key("maskrcnn-r50-fpn-v2", device), lambda: maskrcnn.build("maskrcnn-r50-fpn-v2"))
    torch.manual_seed(0)
    tiny = mask2former.wrap(Mask2FormerForUniversalSegmentation(_tiny_config()))
    cache.get(mask2former.cache_key(mask2former.DEFAULT_MODEL, device), lambda: tiny)
    _seed(cache, fan.cache_key(fan.MODEL, device), fan.build)
    _seed(cache, runtime.model_key("pix2pix", "facades_label2photo", device), pix2pix.build)
    _seed(cache, runtime.model_key("cyclegan", "horse2zebra", device), cyclegan.build)
    _seed(cache, runtime.model_key("fast_style", "mosaic", device), fast_style_arch.TransformerNet)
    yield cache
    cache.capacity = capacity
    cache.clear()  # random weights must not stay cached under the real models' names


# tab, endpoint, model, options (by their --set names), needs ../shared/weights
CASES = [
    # a tile size given: on the server an automatic one is chosen by the work budget (so a Stop acts between tiles)
    ("super-resolution", "/super_resolution", "srgan-x4", {"mode": "check", "tile": 64}, True),
    ("face-deid", "/face_deid", "retinaface-mnet", {"mode": "pixelate"}, True),
    ("keypoint-detectors", "/keypoint_detectors", "centerface", {"score_threshold": 0.4}, True),
    ("landmarks", "/landmarks", "2dfan4", {"max_faces": 1}, True),
    ("instance", "/instance", "maskrcnn-r50-fpn-v2", {"score_threshold": 0.0, "working_size": 320,
                                                      "rpn_top_n": 50}, False),
    ("panoptic", "/panoptic", "mask2former-swin-tiny-coco-panoptic", {"threshold": 0.0}, False),
    ("pix2pix", "/pix2pix", "facades_label2photo", {"statistics": "running"}, False),
    ("cyclegan", "/cyclegan", "horse2zebra", {"show_cycle": False, "working_side": 64}, False),
    ("style", "/style", "mosaic", {"max_side": 96}, False),
]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A real photo with a face where ../shared exists (the face tabs need one), else a drawn scene."""
    path = tmp_path_factory.mktemp("api") / "photo.png"
    source = SHARED / "images" / "people_demo.jpg"
    Image.open(source).convert("RGB").save(path) if source.exists() else Image.fromarray(drawn_scene()).save(path)
    return path


@pytest.mark.parametrize("tab, endpoint, model, options, real", CASES, ids=[case[0] for case in CASES])
def test_api_by_keyword_matches_the_command_line(tab, endpoint, model, options, real, served_app, seeded_cache,
                                                 photo, tmp_path, monkeypatch):
    if real:
        if not (SHARED / "weights").is_dir():
            pytest.skip("../shared is absent: this tab's real checkpoint is not here")
        monkeypatch.setenv("CVPG_HOME", str(SHARED / "weights"))
    from gradio_client import Client, handle_file

    import app
    from models import weights

    outputs = Client(served_app, verbose=False).predict(image=handle_file(str(photo)), model=model, **options,
                                                        api_name=endpoint)
    api_record = outputs[-1]
    assert isinstance(api_record, dict) and api_record.get("model") == model

    pairs = [f"--set={key}={value}" for key, value in options.items()]
    try:
        code = app.main(["predict", tab, str(photo), "--model", model, "-o", str(tmp_path / "cli"), *pairs])
    finally:
        weights.set_offline(True)  # app.main sets the switch from its own flags
    assert code == 0
    cli_record = json.loads((tmp_path / "cli" / "photo.json").read_text())
    expected = _without_timings({key: cli_record[key] for key in api_record if key in cli_record})
    assert _without_timings(api_record) == expected


def test_only_the_tabs_are_public_api(served_app):
    from gradio_client import Client

    api = Client(served_app, verbose=False).view_api(return_format="dict", print_info=False)
    public = set(api["named_endpoints"])
    assert {case[1] for case in CASES} <= public
    assert not [name for name in public if "LiveMeter" in name or "stop" in name or "toggle" in name
                or "lambda" in name], public
    assert not api["unnamed_endpoints"]
    tabs = {case[1] for case in CASES}
    for name, info in api["named_endpoints"].items():
        parameters = info["parameters"]
        assert not [p["parameter_name"] for p in parameters if p["parameter_name"].startswith("param_")], name
        required = [p["parameter_name"] for p in parameters if not p["parameter_has_default"]]
        assert required == ["image"] if name in tabs else len(required) <= 1, (name, required)  # or the video
    # An API caller (and the UI, whose widgets these defaults are) starts from the command line's defaults on this
    # device: a CPU here, so the instance tab's reduced working size.
    from models import tasks

    for tab, endpoint, *_ in CASES:
        task = tasks.get_task(tab)
        defaults = {p["parameter_name"]: p["parameter_default"]
                    for p in api["named_endpoints"][endpoint]["parameters"] if p["parameter_has_default"]}
        for name, expected in task.defaults().items():
            if name in defaults:
                assert task.option(name).coerce(defaults[name]) == expected, (endpoint, name, defaults[name])
        assert defaults["model"] == task.default_model, endpoint
    instance_defaults = {p["parameter_name"]: p["parameter_default"]
                         for p in api["named_endpoints"]["/instance"]["parameters"] if p["parameter_has_default"]}
    assert instance_defaults["working_size"] == 800 and instance_defaults["rpn_top_n"] == 1000


def test_widgets_start_from_the_device_default(monkeypatch):
    """A slider shows the value a run on this device would use: torchvision's 1333 on a GPU, 800 on a CPU."""
    from demos import _widgets
    from models.tabs import instance

    option = instance.TASK.option("working_size")
    monkeypatch.setattr(_widgets, "on_accelerator", lambda: True)
    assert _widgets.option_widget(option, "instance").value == 1333
    monkeypatch.setattr(_widgets, "on_accelerator", lambda: False)
    assert _widgets.option_widget(option, "instance").value == 800


def test_every_tab_is_an_mcp_tool_with_its_parameters(tmp_path_factory):
    """`python app.py --mcp`: Gradio's MCP server lists each tab as a tool, described by its handler's docstring."""
    import urllib.request

    import app
    from conftest import launch_app

    demo = app.build_app()
    url = launch_app(demo, mcp_server=True)
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/gradio_api/mcp/schema", timeout=60) as response:
            tools = json.loads(response.read())
    finally:
        demo.close()
    by_name = {tool["name"]: tool for tool in tools}
    for _, endpoint, _, options, _ in CASES:
        tool = next((tool for name, tool in by_name.items() if name.endswith(endpoint.strip("/"))), None)
        assert tool is not None, (endpoint, list(by_name))
        assert tool["description"].strip(), endpoint
        properties = tool["inputSchema"]["properties"]
        assert {"image", "model", *options} <= set(properties), (endpoint, list(properties))
