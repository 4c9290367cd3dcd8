"""Checkpoints as data, and the one place that finds, downloads, verifies and opens them.

Lookup order for a catalogued checkpoint: `$CVPG_HOME/<file>`, then the cache (torch hub's `checkpoints/` folder, shared
with torchvision), then a download (temporary file, SHA-256 check, atomic rename). Offline (`set_offline(True)` or
`HF_HUB_OFFLINE=1`), nothing touches the network and a missing file raises an error that says what to put where.
Files are only ever opened with `torch.load(..., weights_only=True)`.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import torch

from . import hub
from .checkpoints import (HASH_ORIGINS, Checkpoint, ChecksumError, MissingWeightsError, ProgressCallback,  # noqa: F401
                          WeightsError, cache_dir, catalogue, get, home_dir, is_offline, offline_message,
                          placement_hint, register, set_offline)

_CHUNK = 1 << 20
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, so a file is hashed once per process
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def cached_path(checkpoint: Checkpoint) -> Path | None:
    """Where the file already is on this machine, if anywhere (not verified here)."""
    home = home_dir()
    for folder in ([home] if home else []) + [cache_dir()]:
        candidate = folder / checkpoint.filename
        if candidate.is_file():
            return candidate
    return None


def fetch(checkpoint: Checkpoint | str, progress: ProgressCallback | None = None) -> Path:
    """Return the path of a verified local copy of `checkpoint`, downloading it if allowed and needed."""
    if isinstance(checkpoint, str):
        checkpoint = get(checkpoint)
    if checkpoint.kind == "huggingface":  # a repository: a folder, found or fetched by the Hugging Face client
        return hub.fetch(checkpoint, progress)
    with _lock_for(checkpoint.filename):  # two users asking at once share one download
        path = cached_path(checkpoint)
        if path is not None:
            verify(checkpoint, path)
            return path
        if is_offline():
            raise MissingWeightsError(offline_message(checkpoint))
        return download(checkpoint, cache_dir(), progress)


def download(checkpoint: Checkpoint, folder: Path, progress: ProgressCallback | None = None) -> Path:
    """Stream `checkpoint.url` into `folder`, verifying the SHA-256 before the file takes its final name."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / checkpoint.filename
    handle, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{checkpoint.filename}.", suffix=".partial")
    temp = Path(temp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out, _open_url(checkpoint) as response:
            total = int(response.headers.get("Content-Length") or checkpoint.bytes or 0)
            done = 0
            bar = _terminal_bar(total, checkpoint.filename)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
                if progress is not None:
                    progress(done / total if total else 0.0, f"Downloading {checkpoint.filename}")
            if bar is not None:
                bar.close()
            if total and done < total:
                raise WeightsError(f"Download of {checkpoint.url} stopped after {done} of {total} bytes; try again.")
        actual = digest.hexdigest()
        _check_hash(checkpoint, actual)
        os.replace(temp, final)  # atomic: a reader never sees a half-written file under the final name
    finally:
        temp.unlink(missing_ok=True)
    if checkpoint.sha256 is None:
        _record_first_hash(final, actual)
    _remember(final, actual)
    return final


def verify(checkpoint: Checkpoint, path: Path) -> str:
    """Check a local file against the published hash (or the one recorded at first download); return its hash."""
    actual = sha256_of(path)
    expected = checkpoint.sha256 or _recorded_hash(path)
    if expected is None:
        _record_first_hash(path, actual)  # placed by hand; from now on this content is the one accepted
    elif actual != expected:
        raise ChecksumError(
            f"{path} does not match {checkpoint.name}: expected SHA-256 {expected}, found {actual}. "
            f"Delete it and download it again from {checkpoint.url}"
        )
    return actual


def sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        _verified[key] = digest.hexdigest()
    return _verified[key]


def load_state_dict(path: Path | str) -> dict:
    """Open a checkpoint safely: tensors and plain containers only, never arbitrary pickled objects."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Checkpoint file {path} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for "not a checkpoint" and for unsafe pickles
        raise WeightsError(
            f"{path.name} cannot be read as a PyTorch checkpoint with weights_only=True ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})."
        ) from None


def strict_load(net: torch.nn.Module, state: dict, label: str, expected: str = "the official layout") -> torch.nn.Module:
    """Load `state` into `net` with strict=True; a mismatch becomes a WeightsError that names the model and the layout."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise WeightsError(
            f"This checkpoint does not fit {label}: {str(error).splitlines()[0]} ... (expected {expected})"
        ) from None
    return net


def unwrap(state: dict, keys: tuple[str, ...] = ("params_ema", "params", "state_dict", "model")) -> dict:
    """The weights inside an official file's wrapper dict (the first of `keys` present), without a `module.` prefix."""
    for key in keys:
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    return {name.removeprefix("module."): value for name, value in state.items()}


def status(checkpoint: Checkpoint) -> str:
    if checkpoint.kind == "huggingface":
        return hub.status(checkpoint)
    path = cached_path(checkpoint)
    return f"cached ({path})" if path else "not cached"


def _check_hash(checkpoint: Checkpoint, actual: str) -> None:
    if checkpoint.sha256 is not None and actual != checkpoint.sha256:
        raise ChecksumError(
            f"SHA-256 mismatch for {checkpoint.url}: expected {checkpoint.sha256}, got {actual}. "
            "The download was deleted; the file on the server may have changed, or the download was corrupted."
        )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded_hash(path: Path) -> str | None:
    sidecar = _sidecar(path)
    return sidecar.read_text().split()[0] if sidecar.is_file() else None


def _record_first_hash(path: Path, digest: str) -> None:
    print(f"[weights] {path.name} has no published SHA-256; recorded {digest} and will enforce it.", file=sys.stderr)
    try:
        _sidecar(path).write_text(f"{digest}  {path.name}\n")
    except OSError:
        pass  # a read-only folder ($CVPG_HOME on shared media): the hash is still checked within this process
    _remember(path, digest)


def _remember(path: Path, digest: str) -> None:
    stat = path.stat()
    _verified[(str(path.resolve()), stat.st_size, stat.st_mtime_ns)] = digest


def _open_url(checkpoint: Checkpoint):
    request = urllib.request.Request(checkpoint.url, headers={"User-Agent": "cv-playground"})
    try:
        return urllib.request.urlopen(request, timeout=30)
    except (urllib.error.URLError, OSError) as error:
        raise MissingWeightsError(
            f"Could not download {checkpoint.name} from {checkpoint.url} ({error}). "
            + placement_hint(checkpoint)
        ) from None


def _terminal_bar(total: int, label: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # only for people at a terminal; the UI gets `progress` instead

    return tqdm(total=total or None, unit="B", unit_scale=True, desc=label)


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())
