"""The weights manager: lookup order, hash checks, interrupted downloads, offline messages, safe loading."""
from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from models import checkpoints, weights


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        cut = self.path.endswith("/cut.pth")  # promise the whole file, send half, hang up
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.files
    httpd.shutdown()


def _checkpoint_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "tiny.pth"
    torch.save({"w": torch.arange(6.0).reshape(2, 3)}, path)
    return path.read_bytes()


def _entry(url: str, filename: str, sha: str | None, size: int | None = None) -> weights.Checkpoint:
    return weights.Checkpoint(name=f"test-{filename}", task="test", url=url, filename=filename, sha256=sha, bytes=size, license="MIT", source=url)


def test_download_verifies_and_renames_atomically(server, tmp_path):
    base, files = server
    body = _checkpoint_bytes(tmp_path)
    files["/good.pth"] = body
    entry = _entry(f"{base}/good.pth", "good.pth", hashlib.sha256(body).hexdigest(), len(body))
    seen = []
    path = weights.download(entry, tmp_path / "cache", progress=lambda fraction, text: seen.append(fraction))
    assert path == tmp_path / "cache" / "good.pth" and path.read_bytes() == body
    assert seen and seen[-1] == pytest.approx(1.0)
    assert list((tmp_path / "cache").iterdir()) == [path]  # no temporary file left behind
    assert torch.equal(weights.load_state_dict(path)["w"], torch.arange(6.0).reshape(2, 3))


def test_hash_mismatch_deletes_the_download_and_names_everything(server, tmp_path):
    base, files = server
    files["/evil.pth"] = _checkpoint_bytes(tmp_path)
    actual = hashlib.sha256(files["/evil.pth"]).hexdigest()
    entry = _entry(f"{base}/evil.pth", "evil.pth", "0" * 64)
    with pytest.raises(weights.ChecksumError) as caught:
        weights.download(entry, tmp_path / "cache")
    message = str(caught.value)
    assert f"{base}/evil.pth" in message and "0" * 64 in message and actual in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_interrupted_download_leaves_no_partial_file(server, tmp_path):
    base, files = server
    files["/cut.pth"] = _checkpoint_bytes(tmp_path) * 50
    entry = _entry(f"{base}/cut.pth", "cut.pth", hashlib.sha256(files["/cut.pth"]).hexdigest())
    with pytest.raises(Exception):
        weights.download(entry, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_unreachable_url_says_what_to_do(tmp_path):
    entry = _entry("http://127.0.0.1:9/missing.pth", "missing.pth", None)
    with pytest.raises(weights.MissingWeightsError, match="python app.py download test-missing.pth"):
        weights.download(entry, tmp_path / "cache")


def test_fetch_downloads_into_the_cache_once_then_reuses_it(server, tmp_path, monkeypatch):
    base, files = server
    body = _checkpoint_bytes(tmp_path)
    files["/fetched.pth"] = body
    entry = _entry(f"{base}/fetched.pth", "fetched.pth", hashlib.sha256(body).hexdigest())
    monkeypatch.delenv("CVPG_HOME", raising=False)
    monkeypatch.setattr(checkpoints, "_offline", False)
    path = weights.fetch(entry)
    assert path.parent == weights.cache_dir()
    del files["/fetched.pth"]  # a second fetch must not need the server
    assert weights.fetch(entry) == path
    path.unlink()


def test_offline_never_downloads_and_says_where_to_put_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("CVPG_HOME", str(tmp_path))
    entry = _entry("http://127.0.0.1:9/never.pth", "never.pth", None, 1234)
    assert weights.is_offline()  # the test session is offline
    with pytest.raises(weights.MissingWeightsError) as caught:
        weights.fetch(entry)
    message = str(caught.value)
    assert "offline" in message and "never.pth" in message and str(tmp_path) in message
    assert "python app.py download test-never.pth" in message


def test_hf_hub_offline_variable_means_offline(monkeypatch):
    monkeypatch.setattr(checkpoints, "_offline", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights.is_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not weights.is_offline()


def test_cvpg_home_comes_before_the_cache(monkeypatch, tmp_path):
    body = _checkpoint_bytes(tmp_path)
    home, cache_copy = tmp_path / "home", weights.cache_dir() / "both.pth"
    home.mkdir()
    (home / "both.pth").write_bytes(body)
    cache_copy.parent.mkdir(parents=True, exist_ok=True)
    cache_copy.write_bytes(body)
    monkeypatch.setenv("CVPG_HOME", str(home))
    entry = _entry("http://127.0.0.1:9/both.pth", "both.pth", hashlib.sha256(body).hexdigest())
    assert weights.fetch(entry) == home / "both.pth"
    monkeypatch.delenv("CVPG_HOME")
    assert weights.fetch(entry) == cache_copy
    cache_copy.unlink()


def test_a_tampered_local_file_is_refused(monkeypatch, tmp_path):
    (tmp_path / "tampered.pth").write_bytes(b"not the published bytes")
    monkeypatch.setenv("CVPG_HOME", str(tmp_path))
    entry = _entry("http://127.0.0.1:9/tampered.pth", "tampered.pth", "a" * 64)
    with pytest.raises(weights.ChecksumError, match="expected SHA-256 a{64}"):
        weights.fetch(entry)


def test_unpublished_hash_is_recorded_on_first_use_and_enforced(monkeypatch, tmp_path):
    path = tmp_path / "unhashed.pth"
    path.write_bytes(_checkpoint_bytes(tmp_path))
    monkeypatch.setenv("CVPG_HOME", str(tmp_path))
    entry = _entry("http://127.0.0.1:9/unhashed.pth", "unhashed.pth", None)
    weights.fetch(entry)
    recorded = (tmp_path / "unhashed.pth.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(b"swapped for something else")
    with pytest.raises(weights.ChecksumError):
        weights.fetch(entry)


def test_the_shared_copies_match_the_catalogue(shared_weights):
    from models import super_resolution

    for name in ("srgan-x4", "srgan-x2"):
        entry = super_resolution.CHECKPOINTS[name]
        path = weights.fetch(entry)
        assert path.parent == shared_weights and path.stat().st_size == entry.bytes


def test_loading_refuses_pickled_code_and_non_checkpoints(tmp_path):
    import pickle

    class Sneaky:
        def __reduce__(self):
            return (print, ("this would run on load",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"w": Sneaky()}))
    with pytest.raises(weights.WeightsError, match="weights_only=True"):
        weights.load_state_dict(evil)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(weights.WeightsError, match="cannot be read as a PyTorch checkpoint"):
        weights.load_state_dict(text)
