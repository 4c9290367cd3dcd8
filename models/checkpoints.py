"""What a checkpoint is, the catalogue of them, and where they live: data and rules, no downloading, no torch.

Every family registers its `Checkpoint` entries here at import; `weights` finds, downloads and opens them, `hub` does
the same for Hugging Face repositories. Nothing here imports torch, so listing the catalogue stays fast.
"""
from __future__ import annotations

import errno
import json
import os
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

ProgressCallback = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)


class WeightsError(RuntimeError):
    """A checkpoint could not be found, fetched, verified or read; the message says what to do about it."""


class ChecksumError(WeightsError):
    pass


class MissingWeightsError(WeightsError):
    pass


class CacheFolderError(WeightsError):
    """A checkpoint folder cannot be written (read-only, no permission, disk full); the message says what to do."""


# errno values that mean "this folder cannot take the file", with the words people know them by
UNWRITABLE = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
              errno.EROFS: "read-only file system", errno.ENOSPC: "the disk is full",
              errno.EDQUOT: "the disk quota is used up"}


HASH_ORIGINS = ("published", "third-party", "file-name-prefix", "first-download")


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """One downloadable set of weights: a single file at `url`, or (kind "huggingface") a Hugging Face repository."""

    name: str  # the id people type: `python app.py download srgan-x4`
    task: str  # the tab that uses it
    url: str  # the file's URL, or the repository's page for kind "huggingface"
    filename: str  # the file's name in the cache; for kind "huggingface", the folder's name in $CVPG_HOME
    sha256: str | None  # None: no published hash; the first download's hash is recorded beside the file and enforced
    bytes: int | None
    license: str
    source: str  # the page that documents the checkpoint
    notes: str = ""  # for people: format notes, conversions
    kind: str = "file"  # "file" | "huggingface"
    repo: str | None = None  # kind "huggingface": the repository id, e.g. facebook/mask2former-swin-tiny-coco-panoptic
    hash_origin: str = "published"  # one of HASH_ORIGINS: who vouches for `sha256`
    state_key: str | None = None  # the dict entry that holds the weights (params_ema, state_dict, model...), if any

    def __post_init__(self):
        if self.kind not in ("file", "huggingface"):
            raise ValueError(f"Checkpoint kind must be file or huggingface, not {self.kind!r}")
        if self.hash_origin not in HASH_ORIGINS:
            raise ValueError(f"hash_origin must be one of {HASH_ORIGINS}, not {self.hash_origin!r}")
        if self.sha256 is None and self.hash_origin != "first-download" and self.kind == "file":
            object.__setattr__(self, "hash_origin", "first-download")

    @property
    def size_text(self) -> str:
        return f"{self.bytes / 1e6:.1f} MB" if self.bytes else "unknown size"


CATALOGUE_FILE = Path(__file__).with_name("catalogue.json")  # every family's entries, for listing without imports
_CATALOGUE: dict[str, Checkpoint] = {}
_offline = False


def register(*checkpoints: Checkpoint) -> None:
    for checkpoint in checkpoints:
        _CATALOGUE[checkpoint.name] = checkpoint


def catalogue() -> dict[str, Checkpoint]:
    return dict(_CATALOGUE)


def get(name: str) -> Checkpoint:
    try:
        return _CATALOGUE[name]
    except KeyError:
        raise WeightsError(f"Unknown checkpoint {name!r}; known: {', '.join(sorted(_CATALOGUE))}") from None


def set_offline(offline: bool) -> None:
    global _offline
    _offline = offline


def is_offline() -> bool:
    return _offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def home_dir() -> Path | None:
    home = os.environ.get("CVPG_HOME")
    return Path(home).expanduser() if home else None


def cache_dir() -> Path:
    """torch hub's `checkpoints/` folder (shared with torchvision), without importing torch when it is not loaded."""
    if "torch" in sys.modules:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def offline_message(checkpoint: Checkpoint) -> str:
    return (f"{checkpoint.name} ({checkpoint.filename}, {checkpoint.size_text}) is not on this machine and the app is "
            "offline. " + placement_hint(checkpoint))


def placement_hint(checkpoint: Checkpoint) -> str:
    home = home_dir()
    where = f"$CVPG_HOME ({home})" if home else f"{cache_dir()} (or a folder named by $CVPG_HOME)"
    return (
        f"Put {checkpoint.filename} in {where}: on a connected machine run "
        f"`python app.py download {checkpoint.name}`, or fetch {checkpoint.url}"
    )


def catalogue_json(entries: dict[str, Checkpoint]) -> str:
    """The entries as the JSON kept in `CATALOGUE_FILE` (written by scripts/write_catalogue.py, checked by a test)."""
    return json.dumps([asdict(entry) for entry in entries.values()], indent=1) + "\n"


def read_catalogue_file() -> dict[str, Checkpoint]:
    """The catalogue without importing any family (so without torch): what `python app.py models` lists."""
    names = {field.name for field in fields(Checkpoint)}
    entries = [Checkpoint(**{k: v for k, v in item.items() if k in names})
               for item in json.loads(CATALOGUE_FILE.read_text())]
    return {entry.name: entry for entry in entries}
