"""Widgets declared by a task's options: each slider, checkbox or choice takes its range, default and help from the
`Option`, so the UI, the command line's `--set` and the API's keyword parameters are one vocabulary."""
from __future__ import annotations

import gradio as gr

import assets

from models.tasks import Option, Task, on_accelerator

RADIO_MAX_CHOICES = 5  # more choices than this become a dropdown


def label_of(option: Option) -> str:
    return option.label or option.name.replace("_", " ").capitalize()


def option_widget(option: Option, tab_id: str = "", **overrides) -> gr.components.Component:
    """The widget for one option; `overrides` replace any of its settings (labelled choices, a shorter label...)."""
    settings = dict(label=label_of(option), info=option.help, value=option.default_for(on_accelerator()),
                    elem_id=f"{tab_id}-{option.name.replace('_', '-')}" if tab_id else None)
    default = option.default
    if isinstance(default, bool):
        return gr.Checkbox(**{**settings, **overrides})
    if option.choices is not None or "choices" in overrides:
        choices = overrides.pop("choices", list(option.choices or ()))
        kind = overrides.pop("kind", gr.Radio if len(choices) <= RADIO_MAX_CHOICES else gr.Dropdown)
        return kind(choices=choices, **{**settings, **overrides})
    if isinstance(default, (int, float)):
        settings |= dict(minimum=option.minimum, maximum=option.maximum)  # overrides may narrow the UI's range
        if overrides.get("kind", gr.Slider) is gr.Slider and None not in (option.minimum, option.maximum):
            overrides.pop("kind", None)
            step = option.step or (1 if isinstance(default, int) else (option.maximum - option.minimum) / 100)
            return gr.Slider(step=step, **{**settings, **overrides})
        overrides.pop("kind", None)  # a number box: no range, or one a slider would make too coarse (seeds, tiles)
        return gr.Number(precision=0 if isinstance(default, int) else None, **{**settings, **overrides})
    return gr.Textbox(**{**settings, **overrides})


def option_widgets(task: Task, names: list[str] | tuple[str, ...], **overrides_by_name) -> dict:
    """Widgets for `names` (in that order), keyed by option name; `overrides_by_name[name]` is a dict of overrides."""
    return {name: option_widget(task.option(name), task.id, **overrides_by_name.get(name, {})) for name in names}


def model_widget(task: Task, labels: dict[str, str] | None = None, label: str = "Model") -> gr.Dropdown:
    """The model choice: every model of the task, labelled for people, the value being the name the CLI takes."""
    labels = labels or {}
    return gr.Dropdown([(labels.get(name, name), name) for name in task.models], value=task.default_model,
                       label=label, elem_id=f"{task.id}-model")


def scene_examples(image: gr.Image) -> gr.Examples:
    """Two everyday scenes (scikit-image's astronaut and coffee photos) for the tabs that find objects in a photo."""
    return gr.Examples([[assets.skimage_photo("astronaut")], [assets.skimage_photo("coffee")]], [image],
                       label="Examples (scikit-image sample photos, public domain / CC0)")
