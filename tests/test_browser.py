"""End-to-end tests in a real browser: headless Chromium drives the Super-resolution tab of the served app.

Chromium's fake camera (a moving green test pattern) stands in for a webcam, so the Live stream runs headless too.
Screenshots land in test-artifacts/ at the repository root, for a person to look at after a run.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from conftest import ROOT, drawn_scene

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 60_000  # two slow cores: model loads and first frames can take a while; never assert on timings
BICUBIC = "Bicubic x4 (baseline, no network)"  # needs no checkpoint, so these tests run without ../shared
TAB = "super-resolution"


# --- fixtures ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run these, so a missing browser is a broken CI image, not a skip
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, served_app):
    """A fresh page (own context, camera allowed) on the app; each test starts from the app's initial state."""
    context = browser.new_context(permissions=["camera"], viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(served_app)
    expect(page.locator(f"#{TAB}-run")).to_be_visible(timeout=TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture
def scene_png(tmp_path) -> Path:
    """A small drawn scene, 64x48 px, so x4 gives a known 256x192."""
    path = tmp_path / "scene.png"
    Image.fromarray(drawn_scene(48, 64)).save(path)
    return path


# --- helpers -------------------------------------------------------------------------------------------------------

def upload(page, path: Path) -> None:
    # The file input is hidden inside the drop zone; Playwright can still set its files directly.
    page.locator(f"#{TAB}-input input[type=file]").set_input_files(str(path))


def choose_model(page, label: str) -> None:
    page.locator(f"#{TAB}-model input[role=combobox]").click()
    page.get_by_role("option", name=label, exact=True).click()
    expect(page.locator(f"#{TAB}-model input[role=combobox]")).to_have_value(label)


def run_and_wait(page) -> None:
    page.locator(f"#{TAB}-run").click()
    expect(page.locator(f"#{TAB}-slider img[src]:not([src=''])")).to_have_count(2, timeout=TIMEOUT_MS)


def expect_status(page, *parts: str) -> None:
    status = page.locator(f"#{TAB}-status")
    for part in parts:
        expect(status).to_contain_text(part, timeout=TIMEOUT_MS)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    # Full page: the result, its status line and the inputs in one picture; CSS animations are finished first.
    page.screenshot(path=str(ARTIFACTS / name), full_page=True, animations="disabled")


# --- tests ---------------------------------------------------------------------------------------------------------

def test_upload_bicubic(page, scene_png):
    upload(page, scene_png)
    choose_model(page, BICUBIC)
    run_and_wait(page)
    expect_status(page, "bicubic-x4", "256x192")
    screenshot(page, "super-resolution-upload.png")


def test_upload_srgan_with_real_weights(page, shared, shared_weights):
    # shared_weights points $CVPG_HOME at ../shared/weights; the app runs in this process, so it sees that.
    upload(page, shared / "images/sr/comic_lq.png")
    run_and_wait(page)  # the default model, srgan-x4
    expect_status(page, "srgan-x4")
    screenshot(page, "super-resolution-srgan.png")


def test_bad_upload_shows_error_and_app_keeps_working(page, tmp_path, scene_png):
    # The frontend only checks the file name's type (image/png from ".png"), so this reaches the server, which fails
    # to decode it; friendly_errors turns that into a gr.Error, shown as an error toast.
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    upload(page, bad)
    choose_model(page, BICUBIC)
    page.locator(f"#{TAB}-run").click()
    toast = page.locator("[data-testid='toast-body']").filter(has_text="is not an image this app can read")
    expect(toast.first).to_be_visible(timeout=TIMEOUT_MS)
    expect(toast.first).to_have_css("opacity", "1")  # its fade-in is script-driven; wait so the screenshot shows it
    screenshot(page, "super-resolution-bad-upload.png")

    # The server keeps serving: replace the bad file with a good one and enlarge it.
    page.locator(f"#{TAB}-input button[aria-label='Remove Image']").click()
    upload(page, scene_png)
    run_and_wait(page)
    expect_status(page, "bicubic-x4", "256x192")


def test_live_webcam_stream(page):
    choose_model(page, BICUBIC)
    page.locator(f"#{TAB}-live input[type=checkbox]").check()
    camera = page.locator(f"#{TAB}-camera")
    expect(camera).to_be_visible()
    camera.locator("button", has_text="Webcam").click()  # "Click to Access Webcam": starts the fake camera
    record = camera.get_by_role("button", name="capture photo")  # one button: "Record", then "Stop"
    record.click()
    expect(record).to_contain_text("Stop")

    expect(page.locator(f"#{TAB}-live-output img[src]:not([src=''])").first).to_be_visible(timeout=TIMEOUT_MS)
    # "frames/s" appears from the second processed frame on, so it shows the stream keeps running.
    expect(page.locator(f"#{TAB}-live-status")).to_contain_text("frames/s", timeout=TIMEOUT_MS)
    screenshot(page, "super-resolution-live.png")

    record.click()  # end the stream before the context closes
    expect(record).to_contain_text("Record")
