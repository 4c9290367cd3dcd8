"""Run every tab's `python app.py predict` on fixed inputs and fingerprint what it writes.

Used to prove a refactor changed no behaviour: run it before and after, then compare the two manifests.

    python scripts/cli_snapshot.py weights DIR        # seeded random checkpoints in the official layouts (once)
    python scripts/cli_snapshot.py run DIR OUT.json   # predict every case, write {file: sha256 or record}
    python scripts/cli_snapshot.py compare A.json B.json

Image files are compared byte for byte; JSON records with their timings (keys ending in `_ms`, `ms`, `seconds`,
`fps`) removed. The real checkpoints of ../shared/weights are used where they exist; the others are random weights
given as `--checkpoint`, so no download and no hash check is involved.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PHOTO = SHARED / "images" / "flickr_24274813513_0cfd2ce6d0_k.jpg"
FACE = SHARED / "images" / "people_demo.jpg"
SMALL = SHARED / "images" / "sr" / "baboon_lq.png"

# (name, task, input, model, checkpoint file in DIR or None, --set pairs)
CASES = [
    ("sr-srgan", "super-resolution", SMALL, "srgan-x4", None, []),
    ("sr-check", "super-resolution", SMALL, "srgan-x2", None, ["mode=check"]),
    ("sr-bicubic", "super-resolution", SMALL, "bicubic-x4", None, []),
    ("face-blur", "face-deid", FACE, "retinaface-mnet", None, []),
    ("face-pixelate", "face-deid", FACE, "retinaface-mnet", None, ["mode=pixelate", "shape=box"]),
    ("face-eyebar", "face-deid", FACE, "retinaface-mnet", None, ["mode=eye_bar"]),
    ("landmarks-face", "landmarks", FACE, "2dfan4", "fan.pth", []),
    ("landmarks-pose", "landmarks", FACE, "keypointrcnn-resnet50-fpn", "keypointrcnn.pth", ["person_threshold=0.05"]),
    ("instance-maskrcnn", "instance", PHOTO, "maskrcnn-r50-fpn-v2", "maskrcnn_v2.pth",
     ["score_threshold=0.0", "working_size=320", "rpn_top_n=50"]),
    ("instance-yolact", "instance", PHOTO, "yolact-r50", "yolact_r50.pth", ["score_threshold=0.0"]),
    ("centernet", "keypoint-detectors", PHOTO, "centernet-r18", "centernet_r18.pth", ["score_threshold=0.0"]),
    ("pix2pix", "pix2pix", PHOTO, "facades_label2photo", "pix2pix.pth", []),
    ("cyclegan", "cyclegan", PHOTO, "horse2zebra", "cyclegan.pth", ["working_side=256"]),
    ("style-fast", "style", PHOTO, "candy", "fast_style.pth", []),
]
TIMING_KEYS = ("ms", "seconds", "fps")


def make_weights(folder: Path) -> None:
    """Seeded random weights in each family's official layout (written with the current code's builders)."""
    import torch

    sys.path.insert(0, str(ROOT))
    folder.mkdir(parents=True, exist_ok=True)
    from models import centernet, cyclegan, fan, keypointrcnn, maskrcnn, pix2pix, yolact
    from models.fast_style_arch import TransformerNet

    builders = {
        "fan.pth": fan.build,
        "keypointrcnn.pth": keypointrcnn.build,
        "maskrcnn_v2.pth": lambda: maskrcnn.build("maskrcnn-r50-fpn-v2"),
        "yolact_r50.pth": lambda: yolact.build("yolact-r50"),
        "centernet_r18.pth": lambda: centernet.build("centernet-r18"),
        "pix2pix.pth": pix2pix.build,
        "cyclegan.pth": cyclegan.build,
        "fast_style.pth": TransformerNet,
    }
    for index, (name, build) in enumerate(builders.items()):
        torch.manual_seed(index)
        net = build()
        with torch.no_grad():  # random but not degenerate: small weights so outputs are not saturated
            for tensor in net.state_dict().values():
                if tensor.dtype.is_floating_point and tensor.dim() > 1:
                    tensor.copy_(torch.randn_like(tensor) * 0.02)
        torch.save(net.state_dict(), folder / name)
        print("wrote", name)


def run(folder: Path, manifest: Path) -> None:
    result = {}
    env = {**os.environ, "CVPG_HOME": str(SHARED / "weights"), "CVPG_FP32": "1"}
    for name, task, source, model, checkpoint, pairs in CASES:
        out = Path(tempfile.mkdtemp(prefix=f"snap-{name}-"))
        command = [sys.executable, str(ROOT / "app.py"), "predict", task, str(source), "-o", str(out), "--offline",
                   "--device", "cpu", "--model", model]
        if checkpoint:
            command += ["--checkpoint", str(folder / checkpoint)]
        for pair in pairs:
            command += ["--set", pair]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
        if done.returncode != 0:
            result[name] = {"error": done.stderr.strip().splitlines()[-1:]}
            print(name, "FAILED", done.stderr[-500:])
            continue
        files = {}
        for path in sorted(out.rglob("*")):
            if path.suffix == ".json":
                files[path.name] = _without_timings(json.loads(path.read_text()))
            elif path.is_file():
                files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        result[name] = files
        print(name, "ok", len(files), "files")
    manifest.write_text(json.dumps(result, indent=1, sort_keys=True))


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if not any(k == t or k.endswith("_" + t) for t in TIMING_KEYS) and k not in ("summary", "checkpoint", "files")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def compare(a: Path, b: Path) -> int:
    before, after = json.loads(a.read_text()), json.loads(b.read_text())
    differences = 0
    for case in sorted(set(before) | set(after)):
        if before.get(case) != after.get(case):
            differences += 1
            print(f"DIFFERENT: {case}")
            old, new = before.get(case) or {}, after.get(case) or {}
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key):
                    print(f"  {key}: {str(old.get(key))[:300]}\n  -> {str(new.get(key))[:300]}")
    print(f"{len(before)} cases before, {len(after)} after, {differences} different")
    return 1 if differences else 0


if __name__ == "__main__":
    verb, *rest = sys.argv[1:]
    if verb == "weights":
        make_weights(Path(rest[0]))
    elif verb == "run":
        run(Path(rest[0]), Path(rest[1]))
    elif verb == "compare":
        sys.exit(compare(Path(rest[0]), Path(rest[1])))
