"""benchmarks/RESULTS.md, shared by the scripts that each own one "## " section of it."""
from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_heading_section(heading: str, text: str, path: Path = RESULTS) -> None:
    """Replace the section that starts at `heading` (up to the next "## " heading) with `text`, which starts with
    that heading too; append it at the end when the file has no such section. The rest of the file stays."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if heading in old:
        head, rest = old.split(heading, 1)
        tail = rest[rest.index("\n## "):] if "\n## " in rest else ""
        path.write_text(head + text.rstrip() + "\n" + tail)
    else:
        path.write_text(old.rstrip() + "\n\n" + text.rstrip() + "\n")
