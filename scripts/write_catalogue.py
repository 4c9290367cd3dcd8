"""Write models/catalogue.json from the checkpoints every family registers (run after adding or changing one).

    python scripts/write_catalogue.py

`python app.py models` reads that file, so listing the catalogue needs neither torch nor any model family; a test
fails when the file and the registered entries differ.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import checkpoints, tasks  # noqa: E402

if __name__ == "__main__":
    tasks.load_all()
    checkpoints.CATALOGUE_FILE.write_text(checkpoints.catalogue_json(checkpoints.catalogue()))
    print(f"wrote {len(checkpoints.catalogue())} entries to {checkpoints.CATALOGUE_FILE}")
