"""CycleGAN: horse2zebra at 256 and 512 px, the generator alone (without the cycle)."""
from __future__ import annotations

from . import Case, _translation


def models() -> list[str]:
    return ["horse2zebra@256", "horse2zebra@512"]


def case(spec: str) -> Case:
    from models import cyclegan
    from models.tabs import cyclegan as tab

    model_name, size = spec.split("@")
    return _translation.case(cyclegan, tab, model_name, int(size), int(size), show_cycle=False,
                             working_side=int(size))
