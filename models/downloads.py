"""HTTP downloads of checkpoint files: streamed, hashed on the way, resumed after an interruption, renamed atomically.

An interrupted download keeps its bytes in `.<file>.partial` beside the final name; the next attempt asks the server
for the rest (HTTP Range) and hashes what it already has, so a dropped connection at 90 % costs the last 10 %. A
server that ignores Range sends the whole file again and the partial copy is replaced. Only a file whose SHA-256
matches takes the final name.
"""
from __future__ import annotations

import errno
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .checkpoints import (UNWRITABLE, CacheFolderError, Checkpoint, ChecksumError, MissingWeightsError,
                          ProgressCallback, WeightsError, placement_hint)

CHUNK = 1 << 20


def partial_path(folder: Path, checkpoint: Checkpoint) -> Path:
    return folder / f".{checkpoint.filename}.partial"


def download(checkpoint: Checkpoint, folder: Path, progress: ProgressCallback | None = None) -> tuple[Path, str]:
    """Fetch `checkpoint.url` into `folder`; return the final path and its SHA-256 (checked when one is published).

    A folder that cannot be written raises CacheFolderError, which names it and says what to do."""
    try:
        return _download(checkpoint, folder, progress)
    except OSError as error:  # network failures are WeightsErrors already: this is the folder
        if error.errno not in UNWRITABLE:
            raise
        if error.errno in (errno.ENOSPC, errno.EDQUOT):  # give the space back; the download starts over next time
            partial_path(folder, checkpoint).unlink(missing_ok=True)
        raise CacheFolderError(
            f"Cannot save {checkpoint.filename} ({checkpoint.size_text}) in the checkpoint folder {folder}: "
            f"{UNWRITABLE[error.errno]}. Make that folder writable or free some space, or point TORCH_HOME (the "
            f"cache) or CVPG_HOME (a folder of your own) at a writable one; or download it on another machine "
            f"(`python app.py download {checkpoint.name}`) and copy the file into one of them.") from None


def _download(checkpoint: Checkpoint, folder: Path, progress: ProgressCallback | None) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    final, partial = folder / checkpoint.filename, partial_path(folder, checkpoint)
    digest, have = hashlib.sha256(), 0
    if partial.is_file():
        with partial.open("rb") as stream:  # hash what an earlier attempt already fetched
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                have += len(chunk)
    response = _open(checkpoint, have)
    with response:
        resumed = have > 0 and response.status == 206 and _range_start(response) == have
        if not resumed:  # fresh start (or a server that ignores Range): forget the partial bytes
            digest, have = hashlib.sha256(), 0
        total = have + int(response.headers.get("Content-Length") or 0) or (checkpoint.bytes or 0)
        done = _stream(response, partial, "ab" if resumed else "wb", digest, have, total, checkpoint, progress)
    if total and done < total:
        raise WeightsError(f"Download of {checkpoint.url} stopped after {done} of {total} bytes; run the same command "
                           "again to resume it.")
    actual = digest.hexdigest()
    if checkpoint.sha256 is not None and actual != checkpoint.sha256:
        partial.unlink(missing_ok=True)
        raise ChecksumError(
            f"SHA-256 mismatch for {checkpoint.url}: expected {checkpoint.sha256}, got {actual}. "
            "The download was deleted; the file on the server may have changed, or the download was corrupted.")
    os.replace(partial, final)  # atomic: a reader never sees a half-written file under the final name
    return final, actual


def _stream(response, partial: Path, mode: str, digest, done: int, total: int, checkpoint: Checkpoint,
            progress: ProgressCallback | None) -> int:
    bar = _terminal_bar(total, checkpoint.filename, done)
    try:
        with partial.open(mode) as out:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, ValueError):  # connection reset or closed mid-body: keep what arrived
                    break
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
                if progress is not None:
                    progress(done / total if total else 0.0, f"Downloading {checkpoint.filename}")
    finally:
        if bar is not None:
            bar.close()
    return done


def _open(checkpoint: Checkpoint, start: int):
    headers = {"User-Agent": "cv-playground"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(checkpoint.url, headers=headers), timeout=30)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # nothing left to send: the partial file may already be whole
            return _open(checkpoint, 0)
        raise MissingWeightsError(f"Could not download {checkpoint.name} from {checkpoint.url} ({error}). "
                                  + placement_hint(checkpoint)) from None
    except (urllib.error.URLError, OSError) as error:
        raise MissingWeightsError(f"Could not download {checkpoint.name} from {checkpoint.url} ({error}). "
                                  + placement_hint(checkpoint)) from None


def _range_start(response) -> int | None:
    """The first byte a 206 answer holds, from `Content-Range: bytes START-END/TOTAL`."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _terminal_bar(total: int, label: str, initial: int):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # only for people at a terminal; the UI gets `progress` instead

    return tqdm(total=total or None, initial=initial, unit="B", unit_scale=True, desc=label)
