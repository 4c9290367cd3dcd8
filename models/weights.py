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
import threading
from pathlib import Path

from . import downloads, hub
from .checkpoints import (HASH_ORIGINS, UNWRITABLE, CacheFolderError, Checkpoint, ChecksumError,  # noqa: F401
                          MissingWeightsError, ProgressCallback, WeightsError, cache_dir, catalogue, get, home_dir,
                          is_offline, offline_message, placement_hint, register, set_offline)

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
            try:
                verify(checkpoint, path)
                return path
            except ChecksumError as error:
                if path.parent != cache_dir():
                    raise  # a file placed by hand ($CVPG_HOME): the person decides what replaces it
                aside = _move_aside(path)  # our own cache heals: the bad copy is never loaded again
                if is_offline():
                    raise ChecksumError(f"{error} It was moved aside to {aside.name}; {placement_hint(checkpoint)}"
                                        ) from None
        if is_offline():
            raise MissingWeightsError(offline_message(checkpoint))
        return download(checkpoint, cache_dir(), progress)


def download(checkpoint: Checkpoint, folder: Path, progress: ProgressCallback | None = None) -> Path:
    """Download `checkpoint` into `folder` (resuming an interrupted attempt) and remember its verified hash."""
    final, actual = downloads.download(checkpoint, folder, progress)
    if checkpoint.sha256 is None:
        _trust_first_copy(final, actual)
    _remember(final, actual)
    return final


def verify(checkpoint: Checkpoint, path: Path) -> str:
    """Check a local file against the published hash (or the one recorded at first download); return its hash."""
    actual = sha256_of(path)
    expected = checkpoint.sha256 or _recorded_hash(path)
    if expected is None:
        _trust_first_copy(path, actual)  # placed by hand; from now on this content is the one accepted
    elif actual != expected:
        raise ChecksumError(
            f"{path.name} does not match {checkpoint.name}: expected SHA-256 {expected}, found {actual}. "
            f"Delete {path.name}{' and ' + _sidecar(path).name if _sidecar(path).exists() else ''} in "
            f"{path.parent} and download it again (`python app.py download {checkpoint.name}`) from {checkpoint.url}"
        )
    return actual


def _trust_first_copy(path: Path, digest: str) -> None:
    """Record the first copy's hash, but only once the file opens as what it claims to be: a truncated first download
    must not become the trusted content."""
    problem = _unreadable(path)
    if problem:
        bad = _move_aside(path)
        raise ChecksumError(f"{path.name} is damaged ({problem}); it was moved aside to {bad.name}. Download it again.")
    _record_first_hash(path, digest)


def _unreadable(path: Path) -> str | None:
    """Why a checkpoint file cannot be what its suffix says (None when it reads)."""
    import zipfile

    suffix = path.suffix.lower()
    if suffix == ".zip" or (suffix in (".pth", ".pt", ".bin") and zipfile.is_zipfile(path)):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            return f"damaged archive member {bad}" if bad else None
        except (zipfile.BadZipFile, OSError) as error:
            return str(error)
    if suffix in (".pth", ".pt", ".bin"):  # the legacy (pre-zip) format: let the safe loader judge
        import torch

        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 (any failure means: not a readable checkpoint)
            return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


def _move_aside(path: Path) -> Path:
    """Rename a bad file to `<name>.corrupt` (and drop its recorded hash) so it is never loaded again."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
        _sidecar(path).unlink(missing_ok=True)
    except OSError as error:  # a read-only cache: the bad file stays, so say which one to delete
        raise CacheFolderError(
            f"{path.name} in {path.parent} is damaged or is not the published file, and it cannot be moved aside "
            f"({UNWRITABLE.get(error.errno, error.strerror)}). Delete it"
            f"{' and ' + _sidecar(path).name if _sidecar(path).exists() else ''} by hand or make the folder "
            "writable, then download it again.") from None
    return aside


def sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(downloads.CHUNK):
                digest.update(chunk)
        _verified[key] = digest.hexdigest()
    return _verified[key]


class UnsafeCheckpointError(WeightsError):
    """A checkpoint that holds Python objects beyond tensors and plain containers (opening it could run code)."""

    def __init__(self, message: str, refused: str):
        super().__init__(message)
        self.refused = refused  # the object torch's safe loader refused, as torch names it


def load_state_dict(path: Path | str) -> dict:
    """Open a checkpoint safely: tensors and plain containers only, never arbitrary pickled objects."""
    import torch  # here, not at the top: listing and fetching checkpoints must not pay for importing torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Checkpoint file {path.name} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for "not a checkpoint" and for unsafe pickles
        text = str(error)
        if "Weights only load failed" in text:  # never pass on torch's advice to retry with weights_only=False
            detail = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else ""
            refused = next((line.strip() for line in detail.splitlines() if line.strip()),
                           "an object that is not a tensor")
            raise UnsafeCheckpointError(
                f"{path.name} holds Python objects beyond tensors ({refused}); opening it could run code, so this app "
                "refuses it. Use a file that holds only the weights (a state dict of tensors).", refused) from None
        raise WeightsError(f"{path.name} cannot be read as a PyTorch checkpoint ({type(error).__name__}: "
                           f"{text.splitlines()[0] if text else ''}).") from None


def strict_load(net: "torch.nn.Module", state: dict, label: str, expected: str = "the official layout"):
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


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())
