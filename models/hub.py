"""Hugging Face repositories as checkpoints (kind "huggingface"): find a complete local copy, or download one.

Such a catalogue entry is a `Checkpoint` with `repo` the repository id and `filename` the name of its folder in
$CVPG_HOME (the model's name). Lookup order: a copy placed by hand in $CVPG_HOME/<filename>/, then a snapshot in the
Hugging Face cache, then a download into that cache. Offline (`--offline` or HF_HUB_OFFLINE=1) nothing touches the
network and a missing repository raises MissingWeightsError naming the repository and the command that fetches it.

What is fetched is a transformers model: config.json, preprocessor_config.json and one weights file (safetensors
first; transformers opens pytorch_model.bin with torch.load(weights_only=True)). No SHA-256 is kept here: the Hub
publishes each weights file's SHA-256 (its LFS id), the cache stores the file under that name and huggingface_hub
checks each download's size. `huggingface_hub` is imported only when a repository is looked for.
"""
from __future__ import annotations

from pathlib import Path

from .checkpoints import (UNWRITABLE, CacheFolderError, Checkpoint, MissingWeightsError, ProgressCallback,
                          WeightsError, home_dir, is_offline)

_REVISION = "main"
_CONFIG_FILES = ("config.json", "preprocessor_config.json")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # the first one present wins


def fetch(checkpoint: Checkpoint, progress: ProgressCallback | None = None) -> Path:
    """A local folder with the repository's config, processor config and weights; downloaded into the Hugging Face
    cache when allowed and needed."""
    _check_kind(checkpoint)
    folder = placed_folder(checkpoint) or _cached_snapshot(checkpoint)
    if folder is not None:
        return folder
    if is_offline():
        raise MissingWeightsError(_offline_message(checkpoint))
    return _download(checkpoint, progress)


def status(checkpoint: Checkpoint) -> str:
    """"cached (<folder>)" or "not cached", like weights.status; never touches the network."""
    _check_kind(checkpoint)
    folder = placed_folder(checkpoint) or _cached_snapshot(checkpoint)
    return f"cached ({folder})" if folder else "not cached"


def placed_folder(checkpoint: Checkpoint) -> Path | None:
    """A copy placed by hand: $CVPG_HOME/<filename>/ holding the repository's files (config.json and weights)."""
    home = home_dir()
    folder = home / checkpoint.filename if home else None
    return folder if folder is not None and _complete(folder) else None


def cache_dir() -> Path:
    """The Hugging Face hub cache (HF_HUB_CACHE, by default ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _check_kind(checkpoint: Checkpoint) -> None:
    if checkpoint.kind != "huggingface" or not checkpoint.repo:
        raise WeightsError(f"{checkpoint.name} is not a Hugging Face repository entry (kind {checkpoint.kind!r}).")


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / f).is_file() for f in _WEIGHT_FILES)


def _cached_snapshot(checkpoint: Checkpoint) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    for weight_file in _WEIGHT_FILES:  # one pattern set per weights file: a cache holding one of them is complete
        try:  # local_files_only: a look in the cache, never the network
            folder = Path(snapshot_download(checkpoint.repo, revision=_REVISION, local_files_only=True,
                                            allow_patterns=[*_CONFIG_FILES, weight_file]))
        except (LocalEntryNotFoundError, OSError, ValueError):
            continue
        if _complete(folder):
            return folder
    return None


def _download(checkpoint: Checkpoint, progress: ProgressCallback | None) -> Path:
    from huggingface_hub import snapshot_download

    if progress is not None:
        progress(0.0, f"Downloading {checkpoint.repo} ({_size_text(checkpoint)}) from the Hugging Face Hub")
    try:
        folder = None
        for weight_file in _WEIGHT_FILES:  # one weights file, safetensors first: never both copies
            folder = Path(snapshot_download(checkpoint.repo, revision=_REVISION,
                                            allow_patterns=[*_CONFIG_FILES, weight_file]))
            if _complete(folder):
                break
    except Exception as error:  # huggingface_hub raises many kinds (HTTP, connection, missing entry)
        if isinstance(error, OSError) and error.errno in UNWRITABLE:  # the cache folder, not the network
            raise CacheFolderError(
                f"Cannot save {checkpoint.repo} ({_size_text(checkpoint)}) in the Hugging Face cache {cache_dir()}: "
                f"{UNWRITABLE[error.errno]}. Make that folder writable or free some space, or point HF_HOME (or "
                f"HF_HUB_CACHE) at a writable one; or copy the repository's files into "
                f"$CVPG_HOME/{checkpoint.filename}."
            ) from None
        raise MissingWeightsError(
            f"Could not download {checkpoint.name} from {checkpoint.url} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). " + _placement_hint(checkpoint)
        ) from None
    if folder is None or not _complete(folder):
        raise MissingWeightsError(f"{checkpoint.url} has no config.json with model.safetensors or "
                                  "pytorch_model.bin; it is not a transformers model repository.")
    if progress is not None:
        progress(1.0, f"Downloaded {checkpoint.repo}")
    return folder


def _size_text(checkpoint: Checkpoint) -> str:
    return f"about {checkpoint.bytes / 1e6:.0f} MB" if checkpoint.bytes else "unknown size"


def _offline_message(checkpoint: Checkpoint) -> str:
    return (f"{checkpoint.name} (Hugging Face repository {checkpoint.repo}, {_size_text(checkpoint)}) is not on this "
            "machine and the app is offline. " + _placement_hint(checkpoint))


def _placement_hint(checkpoint: Checkpoint) -> str:
    home = home_dir()
    placed = f"$CVPG_HOME/{checkpoint.filename} ({home / checkpoint.filename})" if home else \
        f"$CVPG_HOME/{checkpoint.filename}"
    return (f"On a connected machine run `python app.py download {checkpoint.name}` (or `hf download "
            f"{checkpoint.repo}`), which fills the Hugging Face cache ({cache_dir()}); or copy the repository's files "
            f"(config.json, preprocessor_config.json, model.safetensors) into {placed}.")
