"""Retake the README's screenshots: each tab that has real checkpoints in ../shared, run on a real photo.

    python scripts/screenshots.py [--shared ../shared] [--out docs/screenshots] [--tabs face-deid,...]

Serves the app on 127.0.0.1 (a free port, offline, CVPG_HOME=<shared>/weights, only the tabs shot), opens each tab
in headless Chromium (Playwright driving Debian's /usr/bin/chromium), uploads a photo from <shared>/images, picks the
model, presses the tab's run button, waits for the before/after pair and saves <out>/<tab>.png (the tab's panel,
at most 1000 px wide, 256 colours). A tab that fails is reported and the others are still shot; exit code 1 then.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
TIMEOUT_MS = 180_000  # two slow cores: a first load and a run can take a while
MAX_WIDTH = 1000
COLOURS = 256  # a palette PNG: a third of the bytes, and the photos still read well at README size
FILLED_IMG = "img[src]:not([src=''])"


@dataclass(frozen=True)
class Shot:
    tab: str
    photo: str  # under <shared>/images
    model: str | None = None  # a pattern of the model's label in the tab's menu; None: the tab's default


SHOTS = (
    Shot("face-deid", "faces_crowd.jpg"),
    Shot("super-resolution", "sr/baboon_lq.png"),
    Shot("keypoint-detectors", "ski.jpg", model="CenterFace"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def choose_model(page, tab: str, pattern: str) -> None:
    """Pick the model whose label matches `pattern`, in a dropdown or a radio group (the tabs use both)."""
    from playwright.sync_api import expect

    menu = page.locator(f"#{tab}-model")
    combobox = menu.locator("input[role=combobox]")
    if combobox.count():
        combobox.click()
        page.get_by_role("option", name=re.compile(pattern, re.IGNORECASE)).first.click()
    else:
        radio = menu.get_by_role("radio", name=re.compile(pattern, re.IGNORECASE)).first
        radio.check()
        expect(radio).to_be_checked()


def shoot(page, url: str, shot: Shot, images: Path, out: Path) -> Path:
    from playwright.sync_api import expect
    from PIL import Image

    from models import tasks

    page.goto(url)
    title = importlib.import_module(f"demos.{tasks.module_name(shot.tab)}").TITLE  # the tab's label in the app
    page.get_by_role("tab", name=title, exact=True).click()
    expect(page.locator(f"#{shot.tab}-run")).to_be_visible()
    page.locator(f"#{shot.tab}-input input[type=file]").set_input_files(str(images / shot.photo))
    expect(page.locator(f"#{shot.tab}-input {FILLED_IMG}")).to_have_count(1)
    if shot.model:
        choose_model(page, shot.tab, shot.model)
    page.locator(f"#{shot.tab}-run").click()
    expect(page.locator(f"#{shot.tab}-slider {FILLED_IMG}")).to_have_count(2, timeout=TIMEOUT_MS)
    expect(page.locator(f"#{shot.tab}-status")).not_to_be_empty()
    page.wait_for_timeout(1000)  # let the images finish painting
    target = out / f"{shot.tab}.png"
    page.locator(f"#tab-{shot.tab}").screenshot(path=str(target))
    image = Image.open(target)
    if image.width > MAX_WIDTH:
        image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)), Image.Resampling.LANCZOS)
    image.convert("RGB").quantize(COLOURS, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"), help="the folder with weights/ and images/")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--tabs", help="only these of " + ", ".join(shot.tab for shot in SHOTS))
    args = parser.parse_args(argv)
    shared = Path(args.shared)
    if not (shared / "weights").is_dir():
        print(f"error: {shared}/weights is missing: the screenshots need the real checkpoints", file=sys.stderr)
        return 2
    shots = [shot for shot in SHOTS if not args.tabs or shot.tab in args.tabs.split(",")]
    os.environ["CVPG_HOME"] = str((shared / "weights").resolve())  # before the models read it
    os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="cvpg-screenshots-"))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from playwright.sync_api import sync_playwright

    import app
    from models import checkpoints

    checkpoints.set_offline(True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    blocks = app.build_app([shot.tab for shot in shots])
    _, url, _ = app.launch(blocks, port=free_port(), prevent_thread_lock=True, quiet=True)
    failed = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            context.set_default_timeout(60_000)
            page = context.new_page()
            for shot in shots:
                try:
                    print(f"{shot.tab}: {shoot(page, url, shot, shared / 'images', out)}")
                except Exception as error:  # noqa: BLE001 (one tab's failure must not cost the others' shots)
                    print(f"{shot.tab}: FAILED: {type(error).__name__}: {str(error).splitlines()[0]}", file=sys.stderr)
                    failed.append(shot.tab)
            browser.close()
    finally:
        blocks.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
