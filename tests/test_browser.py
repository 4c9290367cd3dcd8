"""End-to-end tests in a real browser: headless Chromium drives the Super-resolution, Pix2Pix, CycleGAN, Face
de-identification, Instance segmentation, Panoptic segmentation, Landmarks and Style transfer tabs.

Chromium's fake camera (a moving green test pattern) stands in for a webcam, so the Live streams run headless too.
Screenshots land in test-artifacts/ at the repository root, for a person to look at after a run.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from conftest import ROOT, SHARED, drawn_scene
from models import cyclegan, pix2pix

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
SR_LABEL = "Super-resolution"
DEID = "face-deid"  # needs the RetinaFace checkpoint in ../shared/weights: its tests use `shared_weights`
DEID_LABEL = "Face de-identification"
VIDEO_FRAMES = 10
FILLED_IMG = "img[src]:not([src=''])"
PIX2PIX = "pix2pix"
CYCLEGAN = "cyclegan"
# Official file names in $CVPG_HOME, random weights: the results are noise, so these tests check structure, not looks.
TRANSLATION_GENERATORS = [("pix2pix", "edges2shoes"), ("pix2pix", "facades_label2photo"),
                          ("cyclegan", "horse2zebra"), ("cyclegan", "zebra2horse")]
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
BACKGROUND, WINDOW = pix2pix.FACADE_PALETTE[0][1], pix2pix.FACADE_PALETTE[2][1]


# --- fixtures ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")  # a live sync Playwright keeps an event loop running: end it with this module
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
    expect(page.locator("#device-line")).to_be_visible(timeout=TIMEOUT_MS)  # below the tabs: the app has rendered
    yield page
    context.close()


def save_scene(folder: Path, height: int, width: int) -> Path:
    path = folder / f"scene-{width}x{height}.png"
    Image.fromarray(drawn_scene(height, width)).save(path)
    return path


@pytest.fixture
def scene_png(tmp_path) -> Path:
    """A small drawn scene, 64x48 px, so x4 gives a known 256x192."""
    return save_scene(tmp_path, 48, 64)


@pytest.fixture
def scene_128_png(tmp_path) -> Path:
    """The drawn scene at 128x96 px: the translation tabs' input."""
    return save_scene(tmp_path, 96, 128)


@pytest.fixture(scope="module")
def translation_generators(tmp_path_factory) -> Path:
    """A folder with random pix2pix/CycleGAN generators under their official file names (the weights manager records a
    .sha256 beside each the first time one loads: none is published)."""
    folder = tmp_path_factory.mktemp("translation-home")
    torch.manual_seed(0)
    for family, model in TRANSLATION_GENERATORS:
        torch.save({"pix2pix": pix2pix, "cyclegan": cyclegan}[family].build().state_dict(), folder / f"{family}_{model}.pth")
    return folder


@pytest.fixture
def translation_home(translation_generators, monkeypatch) -> Path:
    # The app runs in this process, so it finds the generators in $CVPG_HOME.
    monkeypatch.setenv("CVPG_HOME", str(translation_generators))
    return translation_generators


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

def select_tab(page, label: str) -> None:
    """Select the tab `label` of whichever gr.Tabs has it, also when it sits in the bar's "More tabs" menu (Gradio moves
    the tabs that do not fit there: the Pix2Pix tab's sub-tabs do, in its narrow input column)."""
    # Each bar measures all its tabs in a hidden copy of its buttons: that copy names the right bar.
    bar = page.locator(".tab-wrapper").filter(has=page.locator(f".tab-container button:text-is('{label}')"))
    tab = bar.get_by_role("tab", name=label, exact=True)
    more = bar.get_by_role("button", name="More tabs")
    expect(tab.or_(more).first).to_be_visible()
    if not tab.is_visible():
        more.click()
        bar.locator(".overflow-dropdown").get_by_role("button", name=label, exact=True).click()
    else:
        tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")  # a tab picked from the menu joins the bar, selected


def open_tab(page, label: str, tab: str) -> None:
    select_tab(page, label)
    expect(page.locator(f"#{tab}-run")).to_be_visible()


def upload(page, tab: str, path: Path) -> None:
    # The file input is hidden inside the drop zone; Playwright can still set its files directly.
    page.locator(f"#{tab}-input input[type=file]").set_input_files(str(path))


def choose_model(page, tab: str, label: str) -> None:
    page.locator(f"#{tab}-model input[role=combobox]").click()
    page.get_by_role("option", name=label, exact=True).click()
    expect(page.locator(f"#{tab}-model input[role=combobox]")).to_have_value(label)


def run_and_wait(page, tab: str, button: str = "run") -> None:
    page.locator(f"#{tab}-{button}").click()
    expect(page.locator(f"#{tab}-slider {FILLED_IMG}")).to_have_count(2, timeout=TIMEOUT_MS)


def choose_radio(page, element_id: str, label: str) -> None:
    page.locator(f"#{element_id}").get_by_role("radio", name=label, exact=True).check()


def draw_strokes(page, editor_id: str, *strokes, colour: tuple[int, int, int] | None = None) -> None:
    """Paint on a gr.Sketchpad/gr.ImageEditor with the mouse. Each stroke is a list of points given as fractions of
    the canvas element's smaller side, from its centre (the drawing area, 256x256 at about 113%, sits there)."""
    editor = page.locator(f"#{editor_id}")
    brush = editor.get_by_role("button", name="Brush", exact=True)
    brush.click()  # no tool is active at start: the canvas says "select the draw tool to start"
    if colour is not None:
        editor.get_by_role("button", name="Color", exact=True).click()
        swatches = editor.locator("menu.swatch")
        swatches.locator(f"button[style*='background-color: rgb{colour}']").click()
        brush.click()  # the swatches stay open over the canvas until the brush button is pressed again
        expect(swatches).to_be_hidden()
    canvas = editor.locator("canvas").first
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    side = min(box["width"], box["height"])
    centre_x, centre_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for stroke in strokes:
        points = [(centre_x + dx * side, centre_y + dy * side) for dx, dy in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=10)
        page.mouse.up()


def slider_colours(page, tab: str) -> list[set[tuple[int, int, int]]]:
    """The distinct RGB colours of each image in the tab's slider, in DOM order, read back through a canvas."""
    images = page.locator(f"#{tab}-slider {FILLED_IMG}")
    expect(images).to_have_count(2)
    colours = images.evaluate_all("""images => Promise.all(images.map(async image => {
        await image.decode();
        const canvas = document.createElement("canvas");
        canvas.width = image.naturalWidth;
        canvas.height = image.naturalHeight;
        const context = canvas.getContext("2d");
        context.drawImage(image, 0, 0);
        const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
        const seen = new Set();
        for (let i = 0; i < data.length; i += 4) seen.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
        return [...seen].slice(0, 1000);
    }))""")
    return [{tuple(int(v) for v in colour.split(",")) for colour in image} for image in colours]


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
    open_tab(page, SR_LABEL, SR)
    upload(page, SR, scene_png)
    choose_model(page, SR, BICUBIC)
    run_and_wait(page, SR)
    expect_status(page, SR, "bicubic-x4", "256x192")
    screenshot(page, "super-resolution-upload.png")


def test_upload_srgan_with_real_weights(page, shared, shared_weights):
    # shared_weights points $CVPG_HOME at ../shared/weights; the app runs in this process, so it sees that.
    open_tab(page, SR_LABEL, SR)
    upload(page, SR, shared / "images/sr/comic_lq.png")
    run_and_wait(page, SR)  # the default model, srgan-x4
    expect_status(page, SR, "srgan-x4")
    screenshot(page, "super-resolution-srgan.png")


def test_bad_upload_shows_error_and_app_keeps_working(page, tmp_path, scene_png):
    # The frontend only checks the file name's type (image/png from ".png"), so this reaches the server, which fails
    # to decode it; friendly_errors turns that into a gr.Error, shown as an error toast.
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    open_tab(page, SR_LABEL, SR)
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
    open_tab(page, SR_LABEL, SR)
    choose_model(page, SR, BICUBIC)
    record = start_live(page, SR)
    expect_live_frames(page, SR)
    screenshot(page, "super-resolution-live.png")
    stop_live(record)


# --- pix2pix and CycleGAN (random generators under the official names: see translation_home) ----------------------

def test_pix2pix_photo_as_canny_edges(page, translation_home, scene_128_png):
    open_tab(page, "Pix2Pix", PIX2PIX)
    upload(page, PIX2PIX, scene_128_png)
    choose_radio(page, f"{PIX2PIX}-prepare", "edges from the photo (Canny), for edges2shoes")
    run_and_wait(page, PIX2PIX)  # the default model, edges2shoes
    # The edges are made at the model's 256x256, and the result keeps the size of what the model saw.
    expect_status(page, PIX2PIX, "pix2pix edges2shoes", "128x96 via 256x256")
    seen, output = slider_colours(page, PIX2PIX)
    assert seen == {BLACK, WHITE}, "Canny edges are pure black on white"
    assert len(output) > 2
    screenshot(page, "pix2pix-photo.png")


def test_pix2pix_sketchpad(page, translation_home):
    open_tab(page, "Pix2Pix", PIX2PIX)
    choose_model(page, PIX2PIX, "sat2map")  # drawing switches the model to edges2shoes: that shows the sketch arrived
    select_tab(page, "Sketch (edges2shoes)")
    draw_strokes(page, f"{PIX2PIX}-sketch", [(-0.3, -0.25), (0.3, -0.25), (0.3, 0.25)],
                 [(-0.25, 0.0), (-0.1, 0.2), (0.15, 0.1)])
    expect(page.locator(f"#{PIX2PIX}-model input[role=combobox]")).to_have_value("edges2shoes")
    run_and_wait(page, PIX2PIX, "run-sketch")
    expect_status(page, PIX2PIX, "pix2pix edges2shoes", "256x256 via 256x256")
    seen, _ = slider_colours(page, PIX2PIX)
    assert seen == {BLACK, WHITE}, "the sketch reaches the model as black strokes on white"
    screenshot(page, "pix2pix-sketch.png")


def test_pix2pix_label_painter(page, translation_home):
    open_tab(page, "Pix2Pix", PIX2PIX)
    select_tab(page, "Label painter (facades)")
    # The brush starts with the first colour, background: paint with "window" so the stroke shows in the labels.
    draw_strokes(page, f"{PIX2PIX}-painter", [(-0.2, -0.1), (0.2, -0.1)], colour=WINDOW)
    expect(page.locator(f"#{PIX2PIX}-model input[role=combobox]")).to_have_value("facades_label2photo")
    run_and_wait(page, PIX2PIX, "run-painter")
    expect_status(page, PIX2PIX, "pix2pix facades_label2photo", "256x256 via 256x256")
    seen, _ = slider_colours(page, PIX2PIX)
    assert seen == {BACKGROUND, WINDOW}, "unpainted is background, the stroke snaps to the window class"
    screenshot(page, "pix2pix-labels.png")


def test_cyclegan_shows_the_cycle(page, translation_home, scene_128_png):
    open_tab(page, "CycleGAN", CYCLEGAN)
    upload(page, CYCLEGAN, scene_128_png)
    expect(page.locator(f"#{CYCLEGAN}-show-cycle input[type=checkbox]")).to_be_checked()
    run_and_wait(page, CYCLEGAN)  # the default model, horse2zebra, whose reverse is zebra2horse
    expect_status(page, CYCLEGAN, "CycleGAN horse2zebra", "128x96", "through zebra2horse", "mean |X - X'| = ")
    for element in ("reconstructed", "cycle-error"):
        expect(page.locator(f"#{CYCLEGAN}-{element} {FILLED_IMG}")).to_have_count(1)
    page.locator(f"#{CYCLEGAN}-cycle-error").scroll_into_view_if_needed()
    screenshot(page, "cyclegan-cycle.png")


def test_cyclegan_live_webcam_stream(page, translation_home):
    open_tab(page, "CycleGAN", CYCLEGAN)
    record = start_live(page, CYCLEGAN)
    expect_live_frames(page, CYCLEGAN, "CycleGAN horse2zebra")
    screenshot(page, "cyclegan-live.png")
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


# --- instance, panoptic, landmarks, style: random networks seeded into the app's model cache --------------------------
# The app runs in this process, so a fresh runtime.MODELS holding random networks under the official keys stands in for
# the official checkpoints (absent here). Results are noise: these tests check structure, not looks.

INSTANCE, PANOPTIC, LANDMARKS, STYLE = "instance", "panoptic", "landmarks", "style"


def set_slider(page, tab: str, label: str, value: float) -> None:
    """Type `value` into the number box of the slider labelled `label` in the tab `tab` (several tabs have sliders of
    the same label); it applies on Enter / leaving the box."""
    box = page.locator(f"#tab-{tab}").get_by_label(f"number input for {label}", exact=True)
    if not box.is_visible():
        box.scroll_into_view_if_needed()
    box.fill(str(value))
    box.press("Enter")
    box.blur()
    expect(box).to_have_value(str(value))


def expect_table_has_rows(page, element_id: str) -> None:
    """A gr.Dataframe shows at least one data row (its <tbody> also holds hidden measuring rows: go by ARIA roles)."""
    table = page.locator(f"#{element_id}")
    expect(table).to_be_visible()
    expect(table.get_by_role("row").filter(has=page.get_by_role("gridcell")).first).to_be_visible()


def open_accordion(page, tab: str, label: str) -> None:
    page.locator(f"#tab-{tab}").get_by_role("button", name=label).click()


@pytest.fixture
def photo(tmp_path) -> Path:
    """A flickr photo from ../shared/images when it is there, else a drawn scene."""
    if SHARED.is_dir():
        found = sorted((SHARED / "images").glob("flickr_*.jpg"))
        if found:
            return found[0]
    return save_scene(tmp_path, 240, 320)


@pytest.fixture
def people_photo(tmp_path) -> Path:
    path = SHARED / "images/people_demo.jpg"
    return path if path.is_file() else save_scene(tmp_path, 240, 320)


@pytest.fixture(scope="module")
def random_maskrcnn_v2():
    from models import maskrcnn, runtime

    torch.manual_seed(0)
    net = runtime.prepare(maskrcnn.build("maskrcnn-r50-fpn-v2"), torch.device("cpu"), half=False)
    net.roi_heads.detections_per_img = 5  # the mask head is the slow part on a CPU
    return net


@pytest.fixture(scope="module")
def random_mask2former():
    from transformers import Mask2FormerForUniversalSegmentation

    from models import mask2former

    from test_panoptic import _tiny_config  # the same tiny Mask2Former the pipeline tests use

    torch.manual_seed(0)
    return mask2former.wrap(Mask2FormerForUniversalSegmentation(_tiny_config()))


@pytest.fixture(scope="module")
def random_pose_net():
    from models import keypointrcnn

    torch.manual_seed(0)
    net = keypointrcnn.build().eval()
    net.transform.min_size, net.transform.max_size = (96,), 128
    net.roi_heads.detections_per_img = 3
    return net


@pytest.fixture
def model_cache(monkeypatch):
    """An empty model cache for this test, so networks seeded into it never leak into other tests."""
    from models import runtime

    cache = runtime.ModelCache()
    monkeypatch.setattr(runtime, "MODELS", cache)
    return cache


@pytest.fixture
def seeded_segmentation(model_cache, random_maskrcnn_v2, random_mask2former):
    from models import mask2former, maskrcnn, runtime

    device = runtime.device()
    model_cache.get(maskrcnn.cache_key("maskrcnn-r50-fpn-v2", device), lambda: random_maskrcnn_v2.to(device))
    model_cache.get(mask2former.cache_key(mask2former.DEFAULT_MODEL, device), lambda: random_mask2former)
    return model_cache


@pytest.fixture
def seeded_pose(model_cache, random_pose_net):
    from models import keypointrcnn, runtime

    device = runtime.device()
    model_cache.get(keypointrcnn.cache_key(keypointrcnn.MODEL, device), lambda: random_pose_net.to(device))
    return model_cache


@pytest.fixture
def random_style_models(monkeypatch):
    """The style tab's load returns random networks: a TransformerNet for the fast styles, a random VGG-19 for Gatys."""
    from models import adain, gatys
    from models.adain_arch import adain_decoder, adain_encoder
    from models.fast_style_arch import TransformerNet
    from models.tabs import style

    torch.manual_seed(0)
    fast = TransformerNet().eval().requires_grad_(False)
    chosen = {"gatys": gatys.gatys_vgg().eval().requires_grad_(False),
              "adain": adain.AdaIN(adain_encoder(full=False), adain_decoder()).eval().requires_grad_(False)}
    monkeypatch.setattr(style, "load", lambda model, device=None, checkpoint_file=None, progress=None:
                        chosen.get(model, fast))


def test_instance_segmentation_upload(page, seeded_segmentation, photo):
    open_tab(page, "Instance segmentation", INSTANCE)
    upload(page, INSTANCE, photo)
    set_slider(page, INSTANCE, "Score threshold", 0)  # random weights score about 1/91 per class
    open_accordion(page, INSTANCE, "Speed and the proposals view")
    set_slider(page, INSTANCE, "Working size (longest side the network sees)", 320)
    set_slider(page, INSTANCE, "Proposals the box head examines", 50)
    run_and_wait(page, INSTANCE)  # the default model, maskrcnn-r50-fpn-v2
    expect_status(page, INSTANCE, "maskrcnn-r50-fpn-v2", "network at")
    expect_table_has_rows(page, f"{INSTANCE}-table")
    screenshot(page, "instance.png")


def test_panoptic_segmentation_upload(page, seeded_segmentation, photo):
    open_tab(page, "Panoptic segmentation", PANOPTIC)
    upload(page, PANOPTIC, photo)
    set_slider(page, PANOPTIC, "Label-mask threshold", 0)  # the tiny random Mask2Former is never sure of anything
    set_slider(page, PANOPTIC, "Overlap threshold", 0)
    set_slider(page, PANOPTIC, "Mask threshold", 0)  # random mask logits: at 0.5 hardly a pixel is in any mask
    run_and_wait(page, PANOPTIC)
    expect_status(page, PANOPTIC, "things")
    for element in ("stuff", "things"):
        expect(page.locator(f"#{PANOPTIC}-{element} {FILLED_IMG}")).to_have_count(1)
    expect_table_has_rows(page, f"{PANOPTIC}-legend")
    screenshot(page, "panoptic.png")


def test_landmarks_pose(page, seeded_pose, people_photo):
    open_tab(page, "Landmarks", LANDMARKS)
    upload(page, LANDMARKS, people_photo)
    choose_radio(page, f"{LANDMARKS}-model", "Human pose: Keypoint R-CNN (17 COCO keypoints)")
    open_accordion(page, LANDMARKS, "Thresholds and checkpoints")
    set_slider(page, LANDMARKS, "Person score threshold", 0.05)  # random scores
    page.locator(f"#{LANDMARKS}-run").click()
    for element in ("drawing", "heatmap", "target"):
        expect(page.locator(f"#{LANDMARKS}-{element} {FILLED_IMG}")).to_have_count(1)
    expect_status(page, LANDMARKS, "keypointrcnn")
    screenshot(page, "landmarks.png")


def test_style_fast_then_gatys_stopped(page, random_style_models, scene_128_png, monkeypatch):
    from models import budget

    # 500 steps would pass the server's time limit on a slow CPU, and the budget would stop the run itself: this test
    # is about the person's Stop button, so the limit is lifted for it.
    monkeypatch.setattr(budget, "MAX_RUN_S", 3600.0)
    open_tab(page, "Style transfer", STYLE)
    upload(page, STYLE, scene_128_png)
    choose_model(page, STYLE, "Fast style: mosaic")
    run_and_wait(page, STYLE)
    expect_status(page, STYLE, "mosaic")
    screenshot(page, "style-mosaic.png")

    choose_model(page, STYLE, "Gatys: optimise the pixels against VGG-19 (slow, streams)")
    open_accordion(page, STYLE, "Gatys settings")
    set_slider(page, STYLE, "Steps", 500)
    set_slider(page, STYLE, "Working size (0 = the method's default)", 96)
    page.locator(f"#{STYLE}-run").click()
    status = page.locator(f"#{STYLE}-status")
    expect(status).to_contain_text(re.compile(r"step ([5-9]|\d{2,}) of 500"), timeout=VIDEO_TIMEOUT_MS)
    page.locator(f"#{STYLE}-stop").click()
    expect_text(status, "Stopped", "best image", timeout=VIDEO_TIMEOUT_MS)
    expect(page.locator(f"#{STYLE}-slider {FILLED_IMG}")).to_have_count(2)
    expect(page.locator(f"#{STYLE}-losses")).to_be_visible()
    page.locator(f"#{STYLE}-losses").scroll_into_view_if_needed()
    screenshot(page, "style-gatys.png")


# --- CornerNet / CenterNet and YOLACT's prototype view: random networks seeded into the app's model cache -------------

KEYPOINT = "keypoint-detectors"


def test_keypoint_detectors_centernet(page, model_cache, scene_128_png):
    from models import centernet, runtime

    device = runtime.device()
    torch.manual_seed(0)
    net = centernet.build("centernet-r18").eval().requires_grad_(False).to(device)
    model_cache.get(centernet.cache_key("centernet-r18", device), lambda: net)
    open_tab(page, "CornerNet / CenterNet", KEYPOINT)
    upload(page, KEYPOINT, scene_128_png)
    expect(page.locator(f"#{KEYPOINT}-model").get_by_role("radio", name="CenterNet ResNet-18 (AP 25.9, fast)",
                                                          exact=True)).to_be_checked()  # the default model
    set_slider(page, KEYPOINT, "Score threshold", 0)  # random heatmaps: every peak is far below 0.3
    run_and_wait(page, KEYPOINT)
    expect_status(page, KEYPOINT, "centernet-r18")
    # The gallery: the centre heatmap and the centres view.
    expect(page.locator(f"#{KEYPOINT}-views {FILLED_IMG}")).to_have_count(2, timeout=TIMEOUT_MS)
    screenshot(page, "keypoint-detectors.png")


def test_instance_yolact_prototypes(page, model_cache, photo):
    from test_yolact import confident_random_net

    from models import runtime, yolact

    device = runtime.device()
    model_cache.get(yolact.cache_key("yolact-r50", device), lambda: runtime.prepare(confident_random_net(), device))
    open_tab(page, "Instance segmentation", INSTANCE)
    upload(page, INSTANCE, photo)
    choose_model(page, INSTANCE, yolact.MODELS["yolact-r50"].label)
    set_slider(page, INSTANCE, "Score threshold", 0.05)
    run_and_wait(page, INSTANCE)
    expect_status(page, INSTANCE, "yolact-r50")
    section = page.locator(f"#tab-{INSTANCE}").get_by_role(
        "button", name="YOLACT: masks as linear combinations of prototypes")
    expect(section).to_be_visible()  # hidden for Mask R-CNN, shown (open) for YOLACT
    for element in ("prototypes", "coefficients", "assembly"):
        expect(page.locator(f"#{INSTANCE}-{element} {FILLED_IMG}")).to_have_count(1)
    expect_table_has_rows(page, f"{INSTANCE}-table")
    page.locator(f"#{INSTANCE}-assembly").scroll_into_view_if_needed()
    screenshot(page, "instance-yolact.png")
