"""Pix2Pix: edges2shoes at 256 and 512 px (the generator always works at 256x256 and resizes back)."""
from __future__ import annotations

from . import Case, _translation


def models() -> list[str]:
    return ["edges2shoes@256", "edges2shoes@512"]


def case(spec: str) -> Case:
    from models import pix2pix
    from models.tabs import pix2pix as tab

    model_name, size = spec.split("@")
    return _translation.case(pix2pix, tab, model_name, int(size), pix2pix.SIDE)
