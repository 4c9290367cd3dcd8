"""End-to-end tests in a real browser: headless Chromium drives the Super-resolution and Face de-identification tabs.

Chromium's fake camera (a moving green test pattern) stands in for a webcam, so the Live streams run headless too.
Screenshots land in test-artifacts/ at the repository root, for a person to look at after a run.
"""
from __future__ import annotations

import os
import re
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
VIDEO_TIMEOUT_MS = 180_000  # a whole clip goes through the detector frame by frame
BICUBIC = "Bicubic x4 (baseline, no network)"  # needs no checkpoint, so these tests run without ../shared
SR = "super-resolution"
DEID = "face-deid"  # needs the RetinaFace checkpoint in ../shared/weights: its tests use `shared_weights`
DEID_LABEL = "Face de-identification"
VIDEO_FRAMES = 10
FILLED_IMG = "img[src]:not([src=''])"


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
    expect(page.locator(f"#{SR}-run")).to_be_visible(timeout=TIMEOUT_MS)  # the first tab is open at start
    yield page
    context.close()


@pytest.fixture
def scene_png(tmp_path) -> Path:
    """A small drawn scene, 64x48 px, so x4 gives a known 256x192."""
    path = tmp_path / "scene.png"
    Image.fromarray(drawn_scene(48, 64)).save(path)
    return path


@pytest.fixture
def people_mp4(shared, tmp_path) -> Path:
    """A short MP4 (MPEG-4 part 2, as OpenCV writes it without extra codecs): the people photo, 320x240."""
    import cv2

    photo = cv2.resize(cv2.imread(str(shared / "images/people_demo.jpg")), (320, 240))
    path = tmp_path / "people.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 240))
    assert writer.isOpened(), "this OpenCV cannot write mp4v"
    for _ in range(VIDEO_FRAMES):
        writer.write(photo)
    writer.release()
    return path


# --- helpers (every helper takes the tab's id, the prefix of its elem_ids) -----------------------------------------

def open_tab(page, label: str, tab: str) -> None:
    page.get_by_role("tab", name=label, exact=True).click()
    expect(page.locator(f"#{tab}-run")).to_be_visible()


def upload(page, tab: str, path: Path) -> None:
    # The file input is hidden inside the drop zone; Playwright can still set its files directly.
    page.locator(f"#{tab}-input input[type=file]").set_input_files(str(path))


def choose_model(page, tab: str, label: str) -> None:
    page.locator(f"#{tab}-model input[role=combobox]").click()
    page.get_by_role("option", name=label, exact=True).click()
    expect(page.locator(f"#{tab}-model input[role=combobox]")).to_have_value(label)


def run_and_wait(page, tab: str) -> None:
    page.locator(f"#{tab}-run").click()
    expect(page.locator(f"#{tab}-slider {FILLED_IMG}")).to_have_count(2, timeout=TIMEOUT_MS)


def expect_text(locator, *parts: str, timeout: int = TIMEOUT_MS) -> None:
    for part in parts:
        expect(locator).to_contain_text(part, timeout=timeout)


def expect_status(page, tab: str, *parts: str) -> None:
    expect_text(page.locator(f"#{tab}-status"), *parts)


def start_live(page, tab: str):
    """Tick Live, open the fake camera and press Record; returns the Record/Stop button (click it to stop)."""
    page.locator(f"#{tab}-live input[type=checkbox]").check()
    camera = page.locator(f"#{tab}-camera")
    expect(camera).to_be_visible()
    camera.locator("button", has_text="Webcam").click()  # "Click to Access Webcam": starts the fake camera
    record = camera.get_by_role("button", name="capture photo")  # one button: "Record", then "Stop"
    record.click()
    expect(record).to_contain_text("Stop")
    return record


def expect_live_frames(page, tab: str, *parts: str) -> None:
    expect(page.locator(f"#{tab}-live-output {FILLED_IMG}").first).to_be_visible(timeout=TIMEOUT_MS)
    # "frames/s" appears from the second processed frame on, so it shows the stream keeps running.
    expect_text(page.locator(f"#{tab}-live-status"), "frames/s", *parts)


def stop_live(record) -> None:
    record.click()  # end the stream before the context closes
    expect(record).to_contain_text("Record")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    # Full page: the result, its status line and the inputs in one picture; CSS animations are finished first.
    page.screenshot(path=str(ARTIFACTS / name), full_page=True, animations="disabled")


# --- super-resolution ----------------------------------------------------------------------------------------------

def test_upload_bicubic(page, scene_png):
    upload(page, SR, scene_png)
    choose_model(page, SR, BICUBIC)
    run_and_wait(page, SR)
    expect_status(page, SR, "bicubic-x4", "256x192")
    screenshot(page, "super-resolution-upload.png")


def test_upload_srgan_with_real_weights(page, shared, shared_weights):
    # shared_weights points $CVPG_HOME at ../shared/weights; the app runs in this process, so it sees that.
    upload(page, SR, shared / "images/sr/comic_lq.png")
    run_and_wait(page, SR)  # the default model, srgan-x4
    expect_status(page, SR, "srgan-x4")
    screenshot(page, "super-resolution-srgan.png")


def test_bad_upload_shows_error_and_app_keeps_working(page, tmp_path, scene_png):
    # The frontend only checks the file name's type (image/png from ".png"), so this reaches the server, which fails
    # to decode it; friendly_errors turns that into a gr.Error, shown as an error toast.
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    upload(page, SR, bad)
    choose_model(page, SR, BICUBIC)
    page.locator(f"#{SR}-run").click()
    toast = page.locator("[data-testid='toast-body']").filter(has_text="is not an image this app can read")
    expect(toast.first).to_be_visible(timeout=TIMEOUT_MS)
    expect(toast.first).to_have_css("opacity", "1")  # its fade-in is script-driven; wait so the screenshot shows it
    screenshot(page, "super-resolution-bad-upload.png")

    # The server keeps serving: replace the bad file with a good one and enlarge it.
    page.locator(f"#{SR}-input button[aria-label='Remove Image']").click()
    upload(page, SR, scene_png)
    run_and_wait(page, SR)
    expect_status(page, SR, "bicubic-x4", "256x192")


def test_live_webcam_stream(page):
    choose_model(page, SR, BICUBIC)
    record = start_live(page, SR)
    expect_live_frames(page, SR)
    screenshot(page, "super-resolution-live.png")
    stop_live(record)


# --- face de-identification (RetinaFace MobileNet-0.25 from ../shared/weights) -------------------------------------

def test_face_deid_upload_pixelate(page, shared, shared_weights):
    open_tab(page, DEID_LABEL, DEID)
    upload(page, DEID, shared / "images/people_demo.jpg")
    page.locator(f"#{DEID}-mode").get_by_role("radio", name="Pixelate", exact=True).check()
    run_and_wait(page, DEID)
    expect_status(page, DEID, "retinaface-mnet", "1 face", "pixelate")
    expect(page.locator(f"#{DEID}-status")).not_to_contain_text("1 faces")
    expect(page.locator(f"#{DEID}-detections {FILLED_IMG}")).to_have_count(1)
    rows = page.locator(f"#{DEID}-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("1")  # the face's number; then its score, box and landmarks
    screenshot(page, "face-deid-pixelate.png")


def test_face_deid_live_webcam_stream(page, shared_weights):
    open_tab(page, DEID_LABEL, DEID)
    record = start_live(page, DEID)
    # The fake camera shows a test pattern, not a face: the stream runs and says so.
    expect_live_frames(page, DEID, "no faces found")
    screenshot(page, "face-deid-live.png")
    stop_live(record)


def test_face_deid_video(page, people_mp4, shared_weights):
    open_tab(page, DEID_LABEL, DEID)
    page.get_by_role("button", name="Video file").click()  # the accordion, closed at start
    video_in = page.locator(f"#{DEID}-video-in")
    expect(video_in).to_be_visible()
    video_in.locator("input[type=file]").set_input_files(str(people_mp4))
    # The preview gets the server's copy once the upload is done. Browsers cannot decode mp4v, so Chromium fails to
    # play that preview and Gradio shows a "Video not playable" toast; the server reads the file with OpenCV anyway.
    expect(video_in.locator("video[src*='gradio_api/file=']")).to_have_count(1)
    page.locator(f"#{DEID}-video-run").click()
    expect_text(page.locator(f"#{DEID}-video-status"), f"{VIDEO_FRAMES} frames", "320x240", "up to 1 face",
                timeout=VIDEO_TIMEOUT_MS)
    result = page.locator(f"#{DEID}-video-out video[src]:not([src=''])")
    expect(result).to_have_count(1)
    expect(result).to_have_attribute("src", re.compile(r"\.webm$"))
    # Chromium really decodes it: the metadata gives the clip's size (the status line only reports what was written).
    page.wait_for_function("video => video.readyState >= 1 && video.videoWidth === 320 && video.videoHeight === 240",
                           arg=result.element_handle(), timeout=TIMEOUT_MS)
    page.locator(f"#{DEID}-video-status").scroll_into_view_if_needed()
    screenshot(page, "face-deid-video.png")
