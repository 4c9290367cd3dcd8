"""Shared fixtures: the read-only ../shared folder (skipped when absent), an isolated weights cache, a served app."""
from __future__ import annotations

import os
import socket
import struct
import zlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(items):
    """Markers from what a test uses: the browser module, the served app or a subprocess make a test slow."""
    for item in items:
        if item.module.__name__ == "test_browser":
            item.add_marker(pytest.mark.browser)
        if {"served_app", "client", "cli"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _isolated_weights(tmp_path_factory):
    """No test touches the network or the user's own torch hub cache."""
    from models import weights

    hub = tmp_path_factory.mktemp("torch-hub")
    old_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    weights.set_offline(True)
    yield hub
    torch.hub.set_dir(old_hub)


@pytest.fixture(autouse=True)
def _offline_again():
    """Each test starts offline, whatever an in-process `app.main([...])` before it switched (it sets the switch from
    its own flags)."""
    from models import weights

    weights.set_offline(True)
    yield


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent: real checkpoints and photos are not available here")
    return SHARED


@pytest.fixture
def shared_weights(shared, monkeypatch) -> Path:
    folder = shared / "weights"
    monkeypatch.setenv("CVPG_HOME", str(folder))
    return folder


def drawn_scene(height: int = 96, width: int = 128) -> np.ndarray:
    """A test image with known content: a red square, a blue disc and a diagonal stripe on a grey gradient."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.uint8)
    image[...] = (40 + 150 * x / width)[..., None].astype(np.uint8)
    image[height // 8: height // 2, width // 8: width // 3] = (220, 30, 30)
    disc = (y - height * 0.6) ** 2 + (x - width * 0.7) ** 2 < (height * 0.2) ** 2
    image[disc] = (30, 60, 220)
    image[np.abs(y - x * height / width) < 2] = (250, 250, 250)
    return image


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height (a decompression bomb's signature)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def served_app(tmp_path_factory):
    """The whole Blocks app, launched in-process on a free port; yields its URL."""
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    import app as cvpg_app

    demo = cvpg_app.build_app()
    url = launch_app(demo)
    yield url
    demo.close()


def launch_app(demo, **extra) -> str:
    """Launch in-process on a free 127.0.0.1 port; retried, because Gradio gives up on its start-up check after one
    3-second timeout, which a busy machine can miss."""
    import app as cvpg_app

    for attempt in range(3):
        try:
            _, url, _ = cvpg_app.launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True, **extra)
            return url
        except ValueError as error:  # "When localhost is not accessible, a shareable link must be created"
            demo.close()
            if attempt == 2:
                raise error


@pytest.fixture(scope="session")
def random_srgan_checkpoint(tmp_path_factory) -> Path:
    """A user checkpoint in the official leftthomas format (plain state dict), with random weights."""
    from models.sr_arch import SRGANGenerator

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("user-checkpoints") / "my_srgan_x4.pth"
    torch.save(SRGANGenerator(scale=4).state_dict(), path)
    return path


@pytest.fixture
def main(capsys):
    """`python app.py ...` in this process: (exit code, stdout, stderr); the offline switch and device are restored."""
    import app
    from models import runtime, weights

    def run(*args):
        code = app.main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    weights.set_offline(True)
    runtime.set_device_preference("auto")
