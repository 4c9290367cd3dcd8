"""`python app.py batch`: the same outputs as `predict`, on a local Ray runtime with 2 CPUs (127.0.0.1 only).

Real photos from ../shared and a small made-up clip; super-resolution with bicubic-x2 and face-deid with the real
RetinaFace weights. A corrupt file fails alone, a killed batch resumes without redoing finished inputs, and a video
split into frame ranges is joined back into the frames a sequential run writes. Ray's tests skip without Ray.
"""
from __future__ import annotations

import faulthandler
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported: a runtime on 127.0.0.1

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import app
import batch
from conftest import ROOT, SHARED
from models import video

TIMINGS = ("ms", "total_ms")
PHOTOS = ("sr/baboon_lq.png", "sr/comic_lq.png", "odd/0014.jpg", "odd/children-alpha.png", "odd/wolf_gray.jpg")


@pytest.fixture(autouse=True)
def _bounded():
    """No test here may hang the suite: past the limit the process prints where it was and exits."""
    faulthandler.dump_traceback_later(600, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def one_thread():
    """Ray gives each of the 2 workers one core; predict runs with as many threads, so the float maths match."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ray_runtime():
    """A local Ray runtime with 2 CPUs, started once for this file; yields its address for other drivers."""
    ray = pytest.importorskip("ray")
    before = os.environ.get("CVPG_HOME")
    if (SHARED / "weights").is_dir():
        os.environ["CVPG_HOME"] = str(SHARED / "weights")  # the workers inherit the runtime's environment
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    if before is None:
        os.environ.pop("CVPG_HOME", None)
    else:
        os.environ["CVPG_HOME"] = before


def _photos(shared: Path, folder: Path, names=PHOTOS) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(shared / "images" / name, folder / Path(name).name)
    return sorted(str(path) for path in folder.iterdir())


def _clip(path: Path, shared: Path, frames: int = 12) -> Path:
    """A 10 fps clip of a face that moves, with empty frames in between (the face count changes at the seams)."""
    face = cv2.resize(np.asarray(Image.open(shared / "images/people_demo.jpg").convert("RGB")), (96, 144))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 144))
    for index in range(frames):
        frame = np.zeros_like(face) if index in (4, 5, 9) else np.roll(face, 2 * index, axis=1)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _decoded(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    return frames


def _values(record: dict) -> dict:
    """A record without its timings, with file paths reduced to their names (the output folders differ)."""
    out = {}
    for key, value in record.items():
        if key in TIMINGS:
            continue
        if key == "files":
            value = {name: Path(path).name for name, path in value.items()}
        elif key == "output":
            value = Path(value).name
        out[key] = value
    return out


def _assert_same_outputs(expected: Path, actual: Path) -> None:
    names = sorted(path.name for path in expected.iterdir())
    assert names == sorted(path.name for path in actual.iterdir() if path.name != batch.SUMMARY_NAME)
    for name in names:
        if name.endswith(".png"):
            assert (expected / name).read_bytes() == (actual / name).read_bytes(), name
        elif name.endswith(".json"):
            want, got = (json.loads((folder / name).read_text()) for folder in (expected, actual))
            assert _values(want) == _values(got), name
        else:  # a WebM names itself with a random id: compare the frames it holds
            want, got = _decoded(expected / name), _decoded(actual / name)
            assert len(want) == len(got) and all(np.array_equal(a, b) for a, b in zip(want, got)), name


def _summary(folder: Path) -> dict:
    return json.loads((folder / batch.SUMMARY_NAME).read_text())


# Without Ray: the pieces, and the one-process fallback --------------------------------------------------------------

def test_ranges_cover_the_video_and_scale_with_workers():
    assert batch.plan_ranges(20, 2, range_frames=6) == [(0, 6), (6, 12), (12, 18), (18, None)]
    assert batch.plan_ranges(20, 4) == [(0, None)]  # too short to be worth splitting
    assert batch.plan_ranges(0, 2) == [(0, None)]  # a container that does not say: one open range
    assert batch.plan_ranges(300, 2) == [(0, 75), (75, 150), (150, 225), (225, None)]
    assert batch.plan_ranges(40, 2) == [(0, 20), (20, None)]


def test_face_deid_in_ranges_and_steps_equals_its_run_video(tmp_path, shared_weights, shared, one_thread):
    """What the workers and the driver do with a split clip, here in one process: analyse two ranges, plan the
    whole clip (the hold links faces across the seam), render the ranges, join. Same frames and record as the tab's
    own run_video, so the adapter in batch.py follows the tab."""
    from models.tabs import face_deid

    clip = _clip(tmp_path / "clip.mp4", shared)
    options = face_deid.TASK.defaults()
    (tmp_path / "whole").mkdir()
    expected = face_deid.run_video(clip, tmp_path / "whole" / "clip.webm", **options)
    hooks = batch.video_hooks(face_deid.TASK)
    split = batch.SplitVideo(batch.plan_ranges(12, 1, range_frames=5), hooks, time.perf_counter())
    analyse = hooks.analyse(face_deid.DEFAULT_DETECTOR, **options)
    analyses = [analyse(rgb) for start, stop in split.ranges
                for rgb in video.read_frames(clip, start, None if stop is None else stop - start)]
    plans = hooks.plan(analyses, **options)
    render = hooks.render(face_deid.DEFAULT_DETECTOR, **options)
    rendered = [list(zip(*[render(rgb, plan) for rgb, plan in zip(video.read_frames(clip, start, 5), plans[start:])]))
                for start, _ in split.ranges]
    job = batch.Job("face-deid", face_deid.DEFAULT_DETECTOR, None, options, str(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    outcome = batch.join_ranges(face_deid.TASK, job, str(clip), split, rendered)
    assert outcome.status == "done" and outcome.frames == 12
    record = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert _values({**expected, "input": str(clip), "options": options}) == _values(record)
    assert sum(record["held_per_frame"]) > 0  # the hold filled in frames, some of them across a seam
    want, got = _decoded(tmp_path / "whole" / "clip.webm"), _decoded(tmp_path / "out" / "clip.webm")
    assert len(want) == 12 and all(np.array_equal(a, b) for a, b in zip(want, got))


def test_inputs_from_a_folder_or_a_glob_and_clashing_names(tmp_path):
    from models import tasks

    task = tasks.get_task("face-deid")
    for name in ("a.jpg", "b.PNG", "c.mp4", "notes.txt", ".hidden.jpg", "sub/d.jpg", "sub/a.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    sources, failed = batch.collect_inputs([str(tmp_path)], task)
    assert [Path(s).name for s in sources] == ["a.jpg", "b.PNG", "c.mp4"] and failed == []
    sources, failed = batch.collect_inputs([str(tmp_path / "**" / "*.*g"), str(tmp_path / "none*.jpg")], task)
    assert [Path(s).name for s in sources] == ["a.jpg", "d.jpg"]
    assert {Path(f.input).name: f.reason[:20] for f in failed} == {
        "a.png": "its outputs would ov", "none*.jpg": "no such file, folder"}


def test_without_ray_it_runs_here_says_so_and_resumes(tmp_path, shared, main, monkeypatch):
    monkeypatch.setattr(batch, "ray_installed", lambda: False)
    photos = _photos(shared, tmp_path / "in", PHOTOS[:3])
    code, _, _ = main("predict", "super-resolution", *photos, "-o", str(tmp_path / "predict"), "--model", "bicubic-x2")
    assert code == 0
    code, out, err = main("batch", "super-resolution", str(tmp_path / "in"), "-o", str(tmp_path / "batch"),
                          "--model", "bicubic-x2")
    assert code == 0, err
    assert "Ray is not installed" in out and _summary(tmp_path / "batch")["engine"]["kind"] == "local"
    _assert_same_outputs(tmp_path / "predict", tmp_path / "batch")
    code, out, _ = main("batch", "super-resolution", str(tmp_path / "in"), "-o", str(tmp_path / "batch"),
                        "--model", "bicubic-x2")
    assert code == 0 and "3 of 3 inputs already have complete outputs" in out
    assert _summary(tmp_path / "batch")["skipped"] == 3
    code, _, _ = main("batch", "super-resolution", str(tmp_path / "in"), "-o", str(tmp_path / "batch"),
                      "--model", "bicubic-x2", "--set", "mode=check")  # other options: not the same outputs
    assert _summary(tmp_path / "batch")["done"] == 3


# On a local Ray runtime with 2 CPUs ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_photos_equal_predict_and_a_corrupt_file_fails_alone(ray_runtime, shared_weights, shared, tmp_path, main):
    photos = _photos(shared, tmp_path / "in")
    (tmp_path / "in" / "broken.jpg").write_bytes((shared / "images/people_demo.jpg").read_bytes()[:3000])
    code, _, _ = main("predict", "super-resolution", *photos, "-o", str(tmp_path / "predict"), "--model", "bicubic-x2")
    assert code == 0
    code, out, err = main("batch", "super-resolution", str(tmp_path / "in"), "-o", str(tmp_path / "batch"),
                          "--model", "bicubic-x2", "--workers", "2", "--offline")
    assert code == 1 and "broken.jpg is damaged or truncated" in err
    summary = _summary(tmp_path / "batch")
    assert summary["engine"]["kind"] == "ray" and summary["engine"]["workers"] == 2
    assert (summary["done"], summary["failed"], summary["throughput"]["images"]) == (5, 1, 5)
    assert [failure["input"] for failure in summary["failures"]] == [str(tmp_path / "in" / "broken.jpg")]
    _assert_same_outputs(tmp_path / "predict", tmp_path / "batch")


@pytest.mark.slow
def test_face_deid_photo_and_clip_split_into_ranges_equal_predict(ray_runtime, shared_weights, shared, tmp_path,
                                                                  main, one_thread):
    folder = tmp_path / "in"
    inputs = [*_photos(shared, folder, ["people_demo.jpg"]), str(_clip(folder / "clip.mp4", shared))]
    code, _, err = main("predict", "face-deid", *inputs, "-o", str(tmp_path / "predict"), "--offline")
    assert code == 0, err
    code, out, err = main("batch", "face-deid", str(folder), "-o", str(tmp_path / "batch"), "--workers", "2",
                          "--range-frames", "4", "--offline")
    assert code == 0, err
    summary = _summary(tmp_path / "batch")
    assert (summary["done"], summary["throughput"]["images"], summary["throughput"]["video_frames"]) == (2, 1, 12)
    _assert_same_outputs(tmp_path / "predict", tmp_path / "batch")
    record = json.loads((tmp_path / "batch" / "clip.json").read_text())
    assert record["faces_per_frame"][4:6] == [0, 0] and record["max_faces"] == max(record["faces_per_frame"]) >= 1


@pytest.mark.slow
def test_a_killed_batch_resumes_without_redoing_finished_inputs(ray_runtime, shared_weights, shared, tmp_path, main):
    """Another driver joins this runtime (its inputs travel to the workers as a cluster's would), is killed once
    its first outputs are written; the same command run again does the rest only, though a worker dies under it."""
    folder, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "driver.log"
    folder.mkdir()
    for index, photo in enumerate(sorted((shared / "images").glob("flickr_*.jpg"))[:4] * 3):
        shutil.copy(photo, folder / f"{index:02d}.jpg")
    command = ["batch", "face-deid", str(folder), "-o", str(out), "--workers", "2", "--offline", "--set",
               "working_side=320"]
    with log.open("wb") as printed:
        driver = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *command, "--address", ray_runtime],
                                  env={**os.environ, "CVPG_HOME": str(shared_weights)}, stdout=printed,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        try:
            while not list(out.glob("[0-9]*.json")) and driver.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=60)
    finished = {path.name: path.stat().st_mtime_ns for path in out.glob("[0-9]*.json")}
    assert finished, log.read_text()[-3000:]
    assert len(finished) < 12 and not (out / batch.SUMMARY_NAME).exists(), "the batch ended before it was killed"
    # The rerun loses a worker too, once it has written something: Ray restarts it and retries what it held.
    killed = []
    killer = threading.Thread(target=_kill_a_worker, args=(lambda: len(list(out.glob("[0-9]*.json"))) > len(finished),
                                                           killed), daemon=True)
    killer.start()
    code, printed, err = main(*command)
    killer.join(timeout=10)
    assert code == 0, err
    summary = _summary(out)
    assert (summary["skipped"], summary["done"]) == (len(finished), 12 - len(finished)), printed
    assert {name: (out / name).stat().st_mtime_ns for name in finished} == finished
    assert len(list(out.glob("[0-9]*.json"))) == 12 and not list(out.glob(".*partial*"))
    assert killed, "no worker was killed: the rerun ended first"


def _kill_a_worker(ready, killed: list, timeout: float = 240) -> None:
    """Once `ready()` holds, SIGKILL one of this machine's batch workers (ray::ModelWorker, started by this test)."""
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.02)
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::ModelWorker"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
                return
        except OSError:
            continue
