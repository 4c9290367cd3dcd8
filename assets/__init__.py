"""Example inputs the tabs offer, made at run time from photos that installed packages ship (nothing is downloaded).

scikit-image's wheel carries a few public-domain or freely licensed photos (see skimage/data/README.txt); the tabs use
them as they are or shrunk, written once to a temporary folder that Gradio is allowed to serve.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

_FOLDER = Path(tempfile.gettempdir()) / "cvpg-examples"


def skimage_photo(name: str, max_side: int | None = None) -> str:
    """Path of scikit-image's sample `name` (e.g. "chelsea", "astronaut"), shrunk to `max_side` if given."""
    import skimage.data

    target = _FOLDER / (f"{name}-{max_side}.png" if max_side else f"{name}.png")
    if not target.is_file():
        _FOLDER.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(getattr(skimage.data, name)())
        if max_side:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        temp = target.with_suffix(".tmp.png")
        image.save(temp)
        temp.replace(target)
    return str(target)
