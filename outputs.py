"""What one input becomes on disk: a PNG per named image plus a JSON record, or a video plus its JSON record.

`python app.py predict` and `python app.py batch` both run an input and write its results through here, so the two
produce the same files under the same names: `<stem>.<image name>.png` and `<stem>.json` for a photo,
`<stem>.<video suffix>` and `<stem>.json` for a video. Every file is written under a temporary name beside its final
one and renamed into place (os.replace, atomic on one filesystem), and the JSON record comes last: a record on disk
means that input's outputs are complete, which is what lets a killed batch resume where it stopped.
"""
from __future__ import annotations

import io
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


def input_errors() -> tuple[type[BaseException], ...]:
    """The errors that fail one input and let the others go on (a bad file, missing weights, a bad option value)."""
    from models import images, weights

    return images.ImageInputError, weights.WeightsError, ValueError, MemoryError


@dataclass
class ImageResult:
    """One photo's results, encoded and ready to write: PNG bytes per image name, the task's record, the summary."""

    pngs: dict[str, bytes]
    record: dict
    summary: str
    total_ms: float


def is_video(task, source) -> bool:
    return task.run_video is not None and Path(source).suffix.lower() in task.video_suffixes


def json_path(outdir: Path, source) -> Path:
    return Path(outdir) / f"{Path(source).stem}.json"


def video_path(task, outdir: Path, source) -> Path:
    return Path(outdir) / f"{Path(source).stem}.{task.video_output_suffix.lstrip('.')}"


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def png_bytes(array) -> bytes:
    """The PNG that `images.save_png` writes, as bytes (so a worker can encode and another process write)."""
    from models import images

    buffer = io.BytesIO()
    images.save_png(array, buffer)
    return buffer.getvalue()


def run_image(task, source, model: str, checkpoint: str | None, options: dict, load_from=None) -> ImageResult:
    """Load `source` (or a local copy of it, `load_from`) at the tab's size limit, run the tab, encode the PNGs."""
    from models import images

    started = time.perf_counter()
    loaded = images.load(load_from or source, max_side=task.max_side)
    out = task.run(loaded, model=model, checkpoint=checkpoint, **options)
    pngs = {name: png_bytes(array) for name, array in out.images.items()}
    return ImageResult(pngs, out.record, out.summary, elapsed_ms(started))


def write_image_result(outdir: Path, source, result: ImageResult, options: dict) -> Path:
    """The PNGs, then the JSON record (with the input, the files, the options and the total time); returns the
    record's path."""
    stem = Path(source).stem
    files = {}
    for name, data in result.pngs.items():
        path = Path(outdir) / f"{stem}.{name}.png"
        write_bytes(path, data)
        files[name] = str(path)
    record = {**result.record, "input": str(source), "files": files, "options": options,
              "total_ms": result.total_ms}
    return write_json(json_path(outdir, source), record)


def run_video(task, source, target: Path, model: str, checkpoint: str | None, options: dict,
              read_from=None) -> dict:
    """Run the tab over a whole video into `target` (written under a temporary name, renamed when finished);
    returns the tab's record naming the final file. `read_from` is a local copy of `source` to read instead."""
    with partial(target) as temporary:
        record = task.run_video(read_from or source, temporary, model=model, checkpoint=checkpoint, **options)
    return named_output(record, target)


def named_output(record: dict, target: Path) -> dict:
    """A video record whose `output` names the final file rather than the temporary one it was written to."""
    return {**record, "output": str(target)} if "output" in record else record


def write_video_record(target: Path, source, record: dict, options: dict, total_ms: float) -> Path:
    record = {**record, "input": str(source), "options": options, "total_ms": total_ms}
    return write_json(Path(target).with_suffix(".json"), record)


def write_json(path: Path, record: dict) -> Path:
    write_bytes(path, json.dumps(record, indent=2).encode())
    return Path(path)


def write_bytes(path: Path, data: bytes) -> None:
    with partial(path) as temporary:
        temporary.write_bytes(data)


@contextmanager
def partial(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` with the same suffix (writers pick the format from it); renamed to `path` when
    the block ends normally, removed when it raises."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def is_complete(task, outdir: Path, source, model: str, options: dict) -> bool:
    """Whether `source` already has all its outputs from a run with the same model and options."""
    try:
        record = json.loads(json_path(outdir, source).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("options") != options or record.get("model", model) != model:
        return False
    if is_video(task, source):
        return video_path(task, outdir, source).is_file()
    files = record.get("files")
    return isinstance(files, dict) and all((Path(outdir) / Path(name).name).is_file() for name in files.values())
