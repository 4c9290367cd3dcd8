"""The frame every tab shares: its explanation, then an input column (the upload / webcam / Live panel first) beside
a wider output column."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import gradio as gr

from models.tasks import get_task

from . import _ui


class TabLayout:
    """`inputs()` and `outputs()` open the two columns of one row (a Gradio layout block can be re-entered)."""

    def __init__(self, tab_id: str, explanation: str):
        self.task = get_task(tab_id)
        gr.Markdown(explanation)
        self.row = gr.Row()

    @contextmanager
    def inputs(self) -> Iterator[_ui.InputPanel]:
        with self.row, gr.Column(scale=1):
            yield _ui.input_panel(self.task.id, self.task.max_side)

    @contextmanager
    def outputs(self) -> Iterator[None]:
        with self.row, gr.Column(scale=2):
            yield
