"""What a tab's pipeline looks like to its callers (the UI and `python app.py predict`): options, models, outputs.

Each family module builds one `Task`; `TASKS` maps the tab id to it. Options are declared once here and parsed from
`--set key=value` text for the command line, so the command line and the UI accept exactly the same settings.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np


class OptionError(ValueError):
    """An unknown or malformed option; the message lists the valid ones."""


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    label: str | None = None  # the widget's label in the UI (default: the name, spaced and capitalised)
    step: float | None = None  # the slider's step (default: 1 for integers, a hundredth of the range for floats)
    # A lighter default for machines without a GPU, where `default` (the official setting) takes too long: the one
    # place a CPU-only compromise is declared, so the UI, the command line and the API all start from it there.
    cpu_default: Any = None

    def default_for(self, accelerated: bool) -> Any:
        return self.default if accelerated or self.cpu_default is None else self.cpu_default

    def parse(self, text: str) -> Any:
        kind = type(self.default)
        try:
            if kind is bool:
                lowered = text.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                value = lowered in ("1", "true", "yes", "on")
            else:
                value = kind(text)
        except ValueError:
            raise OptionError(f"option {self.name} expects a {kind.__name__}, got {text!r}") from None
        return self.check(value)

    def coerce(self, value: Any) -> Any:
        """A value from a widget or an API caller in this option's type (sliders send floats for integers)."""
        kind = type(self.default)
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is str and value is None:
            return ""
        if kind is str and isinstance(value, (list, tuple)):  # a multiselect: the command line's comma list
            return ",".join(map(str, value))
        return value

    def check(self, value: Any) -> Any:
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"option {self.name} must be one of {', '.join(map(str, self.choices))}; got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise OptionError(f"option {self.name} must be at least {self.minimum}; got {value}")
        if self.maximum is not None and value > self.maximum:
            raise OptionError(f"option {self.name} must be at most {self.maximum}; got {value}")
        return value


@dataclass
class TaskOutput:
    """What one run produced: named images (RGB or RGBA uint8) and a JSON-ready record of the numbers."""

    images: dict[str, np.ndarray]
    record: dict[str, Any]
    summary: str = ""  # one line for people: model, device, sizes, milliseconds


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    models: tuple[str, ...]
    default_model: str
    options: tuple[Option, ...]
    max_side: int  # inputs with a longer side are scaled down first (the UI says so)
    run: Callable[..., TaskOutput]  # run(loaded_image, model=..., checkpoint=None, progress=None, **options)
    preload: Callable[[str], None] = field(default=lambda model: None)
    # Tabs that also take video files: run_video(source, target, model=..., checkpoint=None, progress=None, **options)
    run_video: Callable[..., dict] | None = None
    video_suffixes: tuple[str, ...] = ()
    video_output_suffix: str = ".webm"
    # Tabs whose work takes many steps (Gatys): stream(loaded_image, model=..., **options) yields a TaskOutput per
    # report; the UI shows each as it comes and a Stop keeps the last one.
    stream: Callable[..., Iterator[TaskOutput]] | None = None

    def option(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        raise OptionError(f"unknown option {name!r} for {self.id}; valid: {', '.join(o.name for o in self.options)}")

    def check_options(self, **values: Any) -> dict[str, Any]:
        """The UI's widget values, each checked against its Option (unknown names and bad values raise OptionError)."""
        return {name: self.option(name).check(self.option(name).coerce(value)) for name, value in values.items()}

    def defaults(self, accelerated: bool | None = None) -> dict[str, Any]:
        """Each option's default on this machine's device (or on a GPU / a CPU when `accelerated` is given)."""
        accelerated = on_accelerator() if accelerated is None else accelerated
        return {option.name: option.default_for(accelerated) for option in self.options}

    def parse_options(self, pairs: list[str], accelerated: bool | None = None) -> dict[str, Any]:
        values = self.defaults(accelerated)
        for pair in pairs:
            if "=" not in pair:
                raise OptionError(f"--set expects key=value, got {pair!r}; valid keys: {', '.join(values)}")
            key, text = pair.split("=", 1)
            values[key.strip()] = self.option(key.strip()).parse(text)
        return values

    def check_model(self, model: str) -> str:
        if model not in self.models:
            raise OptionError(f"unknown model {model!r} for {self.id}; valid: {', '.join(self.models)}")
        return model


# The tabs, in the order the app shows them: the one list the app, the command line, the API and the benchmarks
# derive from. Each id's Task is `TASK` in models/tabs/<id with - as _>.py (imported on first use, so start-up stays
# fast), and its widgets are demos/<same name>.py.
TABS = ("instance", "panoptic", "landmarks", "keypoint-detectors", "super-resolution", "pix2pix", "cyclegan", "style",
        "face-deid")


def on_accelerator() -> bool:
    """Whether models run on a GPU (CUDA or MPS) here; imported late, so listing tasks never loads torch."""
    from . import runtime

    return runtime.device().type != "cpu"


def module_name(task_id: str) -> str:
    return task_id.replace("-", "_")


def task_ids() -> list[str]:
    return list(TABS)


def get_task(task_id: str) -> Task:
    if task_id not in TABS:
        raise OptionError(f"unknown task {task_id!r}; valid: {', '.join(TABS)}")
    return importlib.import_module(f"models.tabs.{module_name(task_id)}").TASK


def load_all() -> list[Task]:
    """Import every family module, which also registers every checkpoint in the weights catalogue."""
    return [get_task(task_id) for task_id in TABS]
