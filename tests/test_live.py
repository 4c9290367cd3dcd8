"""Live in a real browser: each tab's stream delivers numbered frames, stopping it stops the frames, and a denied or
lost camera gives a message instead of a frozen result.

Headless Chromium's fake camera stands in for a webcam. No timing is asserted (the machine may be busy): each check
waits for frames to arrive or, after a stop, for the counts to stay still. benchmarks/live.py measures the speed.
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest
import torch

from conftest import SHARED
from models.tasks import module_name

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
TIMEOUT_MS = 120_000  # a first frame includes loading the model on two busy cores
FRAMES = 3  # numbered results that must come back before a stream counts as delivering
QUIET_S = 3.0  # after a stop, the counts must stay still this long
# (tab, model): real weights from ../shared/weights, except bicubic (none) and CycleGAN (random, official file name)
STREAMS = [("face-deid", "retinaface-mnet"), ("keypoint-detectors", "centerface"), ("super-resolution", "bicubic-x4"),
           ("super-resolution", "srgan-x2"), ("cyclegan", "horse2zebra")]
NO_SHARED_WEIGHTS_NEEDED = ("bicubic-x4", "horse2zebra")
SR = "super-resolution"
DENIED_CAMERA_JS = """
if (navigator.mediaDevices) navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def weights_home(tmp_path, monkeypatch) -> Path:
    """../shared/weights plus a random CycleGAN generator under its official name (the app runs in this process)."""
    from models import cyclegan

    if (SHARED / "weights").is_dir():
        for item in (SHARED / "weights").iterdir():
            (tmp_path / item.name).symlink_to(item)
    torch.manual_seed(0)
    torch.save(cyclegan.build().state_dict(), tmp_path / "cyclegan_horse2zebra.pth")
    monkeypatch.setenv("CVPG_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def new_page(browser, served_app):
    """Opens the app in a fresh context (camera allowed, `init_script` run first on every page); closes them after."""
    contexts = []

    def open_page(init_script: str | None = None):
        context = browser.new_context(permissions=["camera"], viewport={"width": 1280, "height": 900})
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        page.goto(served_app)
        expect(page.locator("#device-line")).to_be_visible(timeout=TIMEOUT_MS)
        return page

    yield open_page
    for context in contexts:
        context.close()


def open_tab(page, tab: str, model: str | None = None) -> None:
    """Select the tab and, if given, the model (a radio or a dropdown, found by the label the app gives it)."""
    title = importlib.import_module(f"demos.{module_name(tab)}").TITLE
    button = page.get_by_role("tab", name=title, exact=True)
    if button.is_visible():
        button.click()
    else:  # the tab bar moved it into its "More tabs" menu
        page.get_by_role("button", name="More tabs").first.click()
        page.locator(".overflow-dropdown").get_by_role("button", name=title, exact=True).click()
    expect(page.locator(f"#{tab}-live")).to_be_visible(timeout=TIMEOUT_MS)
    if model is None:
        return
    label = page.evaluate("""([id, model]) => window.gradio_config.components
        .find((component) => component.props.elem_id === id).props.choices
        .find(([label, value]) => value === model)[0]""", [f"{tab}-model", model])
    widget = page.locator(f"#{tab}-model")
    if widget.get_by_role("radio").count():
        widget.get_by_role("radio", name=label, exact=True).check()
    else:
        widget.locator("input[role=combobox]").click()
        page.get_by_role("option", name=label, exact=True).click()


def start_live(page, tab: str):
    """Tick Live, open the fake camera and press Record; returns the Record/Stop button."""
    page.locator(f"#{tab}-live input[type=checkbox]").check()
    camera = page.locator(f"#{tab}-camera")
    camera.locator("button", has_text="Webcam").click()
    record = camera.get_by_role("button", name="capture photo")
    record.click()
    expect(record).to_contain_text("Stop", timeout=TIMEOUT_MS)
    return record


def bicubic_stream(new_page):
    """A page streaming the super-resolution tab with bicubic (no weights needed), results already arriving."""
    page = new_page()
    open_tab(page, SR, "bicubic-x4")
    start_live(page, SR)
    wait_for_frames(page, SR)
    return page


def frames(page, tab: str) -> dict:
    """Frames the page sent and numbered results it showed for this tab's output."""
    return page.evaluate("""(output) => ({sent: window.cvpgLive ? window.cvpgLive.seq : 0,
        shown: window.cvpgLive ? window.cvpgLive.log.filter((entry) => entry.output === output).length : 0})""",
                         f"{tab}-live-output")


def wait_for_frames(page, tab: str, count: int = FRAMES) -> None:
    page.wait_for_function("""([output, count]) => window.cvpgLive &&
        window.cvpgLive.log.filter((entry) => entry.output === output).length >= count""",
                           arg=[f"{tab}-live-output", count], timeout=TIMEOUT_MS)


def wait_until_still(page, tab: str) -> dict:
    """The counts once they have stayed the same for QUIET_S (frames in flight at the stop may still land)."""
    last, since = frames(page, tab), time.monotonic()
    deadline = since + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = frames(page, tab)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET_S:
            return now
    pytest.fail(f"the {tab} stream kept going after it was stopped: {last}")


@pytest.mark.parametrize("tab, model", STREAMS, ids=[f"{tab}-{model}" for tab, model in STREAMS])
def test_live_delivers_frames_and_stop_stops_them(new_page, weights_home, tab, model):
    if not (SHARED / "weights").is_dir() and model not in NO_SHARED_WEIGHTS_NEEDED:
        pytest.skip("../shared/weights is absent: the real checkpoints are not here")
    page = new_page()
    open_tab(page, tab, model)
    record = start_live(page, tab)
    wait_for_frames(page, tab)
    meter = page.locator(f"#{tab}-live-output .cvpg-live-meter")
    expect(meter).to_contain_text("frames/s", timeout=TIMEOUT_MS)
    expect(meter).to_contain_text("lag", timeout=TIMEOUT_MS)
    summary = model if tab != "cyclegan" else "horse2zebra"  # the status line starts with what ran
    expect(page.locator(f"#{tab}-live-status")).to_contain_text(summary, timeout=TIMEOUT_MS)
    record.click()  # Stop
    expect(record).to_contain_text("Record", timeout=TIMEOUT_MS)
    stopped = wait_until_still(page, tab)
    assert stopped["shown"] >= FRAMES


def test_unticking_live_stops_the_stream(new_page):
    page = bicubic_stream(new_page)
    page.locator(f"#{SR}-live input[type=checkbox]").uncheck()
    expect(page.locator(f"#{SR}-camera")).to_be_hidden(timeout=TIMEOUT_MS)
    wait_until_still(page, SR)


def test_denied_camera_says_so_on_the_result(new_page):
    page = new_page(DENIED_CAMERA_JS)
    open_tab(page, SR)
    page.locator(f"#{SR}-live input[type=checkbox]").check()
    page.locator(f"#{SR}-camera").locator("button", has_text="Webcam").click()
    expect(page.locator(f"#{SR}-live-output .cvpg-live-message")).to_contain_text("denied", timeout=TIMEOUT_MS)


def test_lost_camera_replaces_the_frozen_result_with_a_message(new_page):
    page = bicubic_stream(new_page)
    page.evaluate(f"""() => document.querySelector('#{SR}-camera video').srcObject.getVideoTracks()
        .forEach((track) => track.dispatchEvent(new Event('ended')))""")  # what an unplugged camera fires
    expect(page.locator(f"#{SR}-live-output .cvpg-live-message")).to_contain_text("camera stopped", timeout=TIMEOUT_MS)
    wait_until_still(page, SR)  # nothing more is sent from a dead camera
