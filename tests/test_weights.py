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
    ranges: list[str] = []  # the Range headers received, in order
    drop_once: set[str] = set()  # paths whose next plain request is cut halfway

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        asked = self.headers.get("Range")
        self.ranges.append(asked or "")
        if asked and self.path.endswith("/resume.pth"):  # this one honours Range: 206 with the rest
            start = int(asked.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])
            return
        cut = self.path.endswith("/cut.pth") or self.path in self.drop_once  # promise all, send half, hang up
        self.drop_once.discard(self.path)
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


def test_interrupted_download_never_takes_the_final_name(server, tmp_path):
    base, files = server
    files["/cut.pth"] = _checkpoint_bytes(tmp_path) * 50
    entry = _entry(f"{base}/cut.pth", "cut.pth", hashlib.sha256(files["/cut.pth"]).hexdigest())
    with pytest.raises(weights.WeightsError, match="run the same command again to resume"):
        weights.download(entry, tmp_path / "cache")
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [".cut.pth.partial"]


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path):
    base, files = server
    body = bytes(range(256)) * 4096  # 1 MiB
    files["/resume.pth"] = body
    _Handler.drop_once.add("/resume.pth")
    _Handler.ranges.clear()
    entry = _entry(f"{base}/resume.pth", "resume.pth", hashlib.sha256(body).hexdigest(), len(body))
    with pytest.raises(weights.WeightsError, match="resume"):
        weights.download(entry, tmp_path / "cache")
    partial = tmp_path / "cache" / ".resume.pth.partial"
    assert partial.stat().st_size == len(body) // 2
    path = weights.download(entry, tmp_path / "cache")
    assert path.read_bytes() == body and not partial.exists()
    assert _Handler.ranges == ["", f"bytes={len(body) // 2}-"]  # the second request asked only for the rest


def test_a_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    base, files = server
    body = _checkpoint_bytes(tmp_path) * 20
    files["/plain.pth"] = body
    _Handler.drop_once.add("/plain.pth")
    entry = _entry(f"{base}/plain.pth", "plain.pth", hashlib.sha256(body).hexdigest())
    with pytest.raises(weights.WeightsError):
        weights.download(entry, tmp_path / "cache")
    assert weights.download(entry, tmp_path / "cache").read_bytes() == body


def test_a_corrupted_cached_checkpoint_heals_on_the_next_online_request(server, tmp_path, monkeypatch):
    base, files = server
    body = _checkpoint_bytes(tmp_path)
    files["/heal.pth"] = body
    entry = _entry(f"{base}/heal.pth", "heal.pth", hashlib.sha256(body).hexdigest())
    monkeypatch.delenv("CVPG_HOME", raising=False)
    cached = weights.cache_dir() / "heal.pth"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(body[: len(body) // 2])  # truncated in the app's own cache
    with pytest.raises(weights.ChecksumError, match="moved aside") as caught:  # offline: says what happened
        weights.fetch(entry)
    assert "python app.py download test-heal.pth" in str(caught.value)
    assert not cached.exists() and (cached.parent / "heal.pth.corrupt").exists()
    cached.write_bytes(b"garbage" * 10)  # corrupted again; this time the app is online
    monkeypatch.setattr(checkpoints, "_offline", False)
    assert weights.fetch(entry).read_bytes() == body
    cached.unlink()


def test_a_truncated_first_download_is_not_trusted(server, tmp_path):
    base, files = server
    good = _checkpoint_bytes(tmp_path)
    files["/first.pth"] = good[: len(good) // 2]  # the server hands out a broken file once
    entry = _entry(f"{base}/first.pth", "first.pth", None)
    with pytest.raises(weights.ChecksumError, match="damaged"):
        weights.download(entry, tmp_path / "cache")
    assert not (tmp_path / "cache" / "first.pth.sha256").exists()
    files["/first.pth"] = good
    path = weights.download(entry, tmp_path / "cache")
    assert (tmp_path / "cache" / "first.pth.sha256").read_text().split()[0] == hashlib.sha256(good).hexdigest()
    assert torch.equal(weights.load_state_dict(path)["w"], torch.arange(6.0).reshape(2, 3))


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
    """Every real file in ../shared/weights is a catalogued checkpoint whose published hash and size it matches."""
    from models import tasks

    tasks.load_all()  # every family registers its checkpoints
    by_file = {entry.filename: entry for entry in weights.catalogue().values()}
    held = sorted(path for path in shared_weights.iterdir() if path.is_file() and not path.name.startswith("."))
    assert [path.name for path in held if path.name not in by_file] == []
    for path in held:
        entry = by_file[path.name]
        assert entry.sha256 is not None and entry.hash_origin == "published", entry.name
        assert weights.fetch(entry) == path and path.stat().st_size == entry.bytes


def test_loading_refuses_pickled_code_and_non_checkpoints(tmp_path):
    import pickle

    class Sneaky:
        def __reduce__(self):
            return (print, ("this would run on load",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"w": Sneaky()}))
    with pytest.raises(weights.UnsafeCheckpointError, match="could run code") as caught:
        weights.load_state_dict(evil)
    assert "Unsupported operand" in caught.value.refused  # what the safe loader refused is named...
    assert "weights_only=False" not in str(caught.value) and str(tmp_path) not in str(caught.value)  # ...no bad advice
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(weights.WeightsError, match="cannot be read as a PyTorch checkpoint"):
        weights.load_state_dict(text)
