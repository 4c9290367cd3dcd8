"""Talk mode and ZeroGPU: `--tabs` shows only the chosen tabs, `--preload` warms their models before the first
request, and the `spaces.GPU` wrapping changes nothing off a ZeroGPU Space."""
from __future__ import annotations

import inspect
import os
import sys

import pytest
from PIL import Image

from conftest import drawn_scene, free_port, launch_app


def _tab_ids(blocks) -> list[str]:
    import gradio as gr

    return [block.id for block in blocks.blocks.values() if isinstance(block, gr.Tab)]


def test_gpu_wrapping_is_inert_off_zero_gpu():
    import gpu
    from models import tasks

    assert "spaces" in sys.modules and gpu.spaces is not None  # the pinned package is imported, and does nothing
    assert not gpu.on_zero_gpu()

    def double(x):
        return 2 * x

    assert gpu.gpu_call(5)(double) is double
    task = tasks.get_task("super-resolution")
    assert gpu.on_gpu(task.id, task.run) is task.run
    assert gpu.on_gpu("face-deid", tasks.get_task("face-deid").run_video, "video") is tasks.get_task("face-deid").run_video
    with pytest.raises(ValueError, match="kind must be one of"):
        gpu.on_gpu(task.id, task.run, "batch")


def test_zero_gpu_wrapper_passes_only_what_crosses_into_the_worker():
    """What on_gpu builds on a ZeroGPU Space, exercised here where spaces.GPU itself is inert."""
    import gpu

    seen = {}

    def run(image, progress=None, should_stop=None, steps=1):
        seen.update(progress=progress, should_stop=should_stop, steps=steps)
        return image + 1

    def stream(image, progress=None, steps=1):
        yield from range(image, image + steps)

    wrapped = gpu._across_processes(run, 10)
    assert wrapped(1, progress=lambda fraction, text: None, should_stop=os.getpid, steps=3) == 2
    assert seen == {"progress": None, "should_stop": os.getpid, "steps": 3}  # a lambda cannot be pickled; a builtin can
    streamed = gpu._across_processes(stream, 10)
    assert inspect.isgeneratorfunction(streamed)  # Gradio streams it, spaces holds the GPU for the whole stream
    assert list(streamed(5, progress=lambda f, t: None, steps=3)) == [5, 6, 7]


def test_gpu_durations_fit_the_tab():
    import gpu

    assert gpu.duration_for("face-deid", "run") == gpu.RUN_SECONDS["face-deid"]
    assert gpu.duration_for("a-tab-added-later", "run") == gpu.DEFAULT_RUN_SECONDS
    assert gpu.duration_for("face-deid", "live") == gpu.LIVE_SECONDS < gpu.RUN_SECONDS["face-deid"]
    gatys = gpu.duration_for("style", "stream")
    assert gatys(object(), model="gatys", steps=100) == 35 and gatys(object(), model="gatys", steps=2000) == 300
    assert gatys(object(), model="mosaic") == gpu.RUN_SECONDS["style"]  # a one-shot model streams one run
    assert gpu.duration_for("face-deid", "video")("no-such-clip.mp4", "out.webm") == gpu.VIDEO_BASE_SECONDS


def test_build_app_with_tabs_has_exactly_those_tabs_in_that_order():
    import app
    from models import tasks

    blocks = app.build_app(tabs=["super-resolution", "face-deid"])
    assert _tab_ids(blocks) == ["super-resolution", "face-deid"]
    with pytest.raises(tasks.OptionError, match="valid: instance"):
        app.build_app(tabs=["no-such-tab"])


def test_a_tab_named_with_its_model_opens_on_that_model():
    """`--tabs keypoint-detectors:centerface`: the page (and the API's default) starts on CenterFace, not CenterNet."""
    import app

    blocks = app.build_app(["face-deid", "keypoint-detectors"], {"keypoint-detectors": "centerface"})
    menus = {block.elem_id: block for block in blocks.blocks.values() if getattr(block, "elem_id", None)}
    assert menus["keypoint-detectors-model"].value == "centerface"
    assert menus["face-deid-model"].value == "retinaface-mnet"  # a tab named without a model keeps its default
    config_values = {c["props"].get("elem_id"): c["props"].get("value") for c in blocks.get_config_file()["components"]}
    assert config_values["keypoint-detectors-model"] == "centerface"  # what the page is served


def test_tabs_flag_parses_tabs_and_models():
    import app
    import doctor

    args = app._parser().parse_args(["--tabs", "face-deid,keypoint-detectors:centerface", "--preload"])
    assert args.preload and doctor.parse_tabs(args.tabs) == {"face-deid": None, "keypoint-detectors": ("centerface",)}
    assert app.main(["--tabs", "face-deid,nope", "--port", str(free_port())]) == 2  # refused before serving


@pytest.mark.slow
def test_preload_warms_the_chosen_models_so_the_first_request_loads_nothing(shared_weights, tmp_path, monkeypatch,
                                                                             capsys):
    from gradio_client import Client, handle_file

    import app
    import doctor
    from models import retinaface, runtime, sr

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    runtime.MODELS.clear()
    selection = doctor.parse_tabs("super-resolution:srgan-x4,face-deid")
    app._preload(selection)
    printed = capsys.readouterr().out
    assert "preloaded super-resolution/srgan-x4" in printed and "preloaded face-deid/retinaface-mnet" in printed
    dev = runtime.device()
    assert sr.cache_key("srgan-x4", dev) in runtime.MODELS
    assert retinaface.cache_key("retinaface-mnet", dev) in runtime.MODELS

    loads = []
    original_get = runtime.MODELS.get

    def counting_get(key, loader):
        def counted():
            loads.append(key)
            return loader()

        return original_get(key, counted)

    monkeypatch.setattr(runtime.MODELS, "get", counting_get)
    blocks = app.build_app(list(selection))
    assert _tab_ids(blocks) == ["super-resolution", "face-deid"]
    url = launch_app(blocks)
    try:
        photo = tmp_path / "scene.png"
        Image.fromarray(drawn_scene(48, 64)).save(photo)
        client = Client(url, verbose=False)
        # the photo as the endpoint's first parameter, every other one at its widget's default (a file input: none)
        parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"][
            "/super_resolution"]["parameters"]
        values = {p["parameter_name"]: None for p in parameters if not p["parameter_has_default"]}
        values[parameters[0]["parameter_name"]] = handle_file(str(photo))
        (_, after), status, *_ = client.predict(**values, api_name="/super_resolution")
        assert Image.open(after).size == (256, 192) and "srgan-x4" in status
    finally:
        blocks.close()
    assert loads == []  # the first request found its model loaded and warm
