"""Hugging Face repositories as checkpoints (kind "huggingface"): placeholder until the panoptic move lands."""
from __future__ import annotations

from pathlib import Path

from .checkpoints import Checkpoint, ProgressCallback


def fetch(checkpoint: Checkpoint, progress: ProgressCallback | None = None) -> Path:
    raise NotImplementedError("models/hub.py is being written")


def status(checkpoint: Checkpoint) -> str:
    raise NotImplementedError("models/hub.py is being written")
