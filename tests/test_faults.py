"""Faults and load (issue 17): abandoned work is cancelled, work is budgeted, one client cannot fill the queue,
uploads are checked, a read-only cache explains itself, and the disk is swept.

The fast tests check the pieces (models.cancel, models.budget, demos._limits, the download folder errors). The slow
ones serve super-resolution and face de-identification in a subprocess on 127.0.0.1 (benchmarks/faults.py) and
speak Gradio's HTTP protocol to it, with small inputs and the real checkpoints from ../shared.
"""
from __future__ import annotations

import errno
import logging
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import faults
from models import budget, cancel, downloads, weights

NEEDED = ("netG_epoch_4_100.pth", "retinaface_mobilenet0.25_Final.pth", "centerface_bnmerged.onnx")


# --- models.cancel -----------------------------------------------------------------------------------------------

def test_check_outside_a_job_does_nothing():
    cancel.check()
    cancel.check(3, 10, "tile")


def test_an_abandoned_job_stops_at_its_next_step():
    gone = threading.Event()
    done = []
    with cancel.job(cancel.Token(abandoned=gone.is_set)):
        with pytest.raises(cancel.Cancelled) as stopped:
            for step in range(100):
                cancel.check(step, 100)
                done.append(step)
                if step == 4:
                    gone.set()
    assert done == [0, 1, 2, 3, 4] and stopped.value.reason == "abandoned"


def test_a_job_over_its_time_limit_stops_and_says_why():
    token = cancel.Token(limit_s=0.05)
    with cancel.job(token), pytest.raises(cancel.Cancelled) as stopped:
        for _ in range(1000):
            cancel.check()
            time.sleep(0.01)
    assert stopped.value.reason == "time" and "a run may compute for at most" in str(stopped.value)
    assert "smaller input" in str(stopped.value)


def test_a_loop_that_cannot_finish_in_time_is_refused_early(monkeypatch):
    monkeypatch.setattr(cancel, "MIN_ESTIMATE_S", 0.05)
    token = cancel.Token(limit_s=5.0)
    started = time.monotonic()
    with cancel.job(token), pytest.raises(cancel.Cancelled) as stopped:
        for frame in range(1000):  # 1000 frames at 20 ms: 20 s, four times the limit
            cancel.check(frame, 1000, "frame")
            time.sleep(0.02)
    assert time.monotonic() - started < 2.0
    message = str(stopped.value)
    assert "of 1000 frames done" in message and "Trim the video" in message and stopped.value.reason == "time"


def test_watch_stops_a_forward_pass_between_layers():
    net = torch.nn.Sequential(*[torch.nn.Conv2d(3, 3, 1) for _ in range(5)])
    calls = []
    cancel.watch(net)
    cancel.watch(net)  # idempotent: one hook per module
    token = cancel.Token(abandoned=lambda: len(calls) >= 3 or calls.append(1))
    net(torch.zeros(1, 3, 4, 4))  # outside a job: the hooks do nothing
    with cancel.job(token), pytest.raises(cancel.Cancelled):
        net(torch.zeros(1, 3, 4, 4))
    assert len(calls) == 3


def test_every_prepared_model_stops_between_layers():
    """runtime.prepare watches every network the app loads, not only the super-resolution ones."""
    from models import runtime

    net = runtime.prepare(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.ReLU()), torch.device("cpu"))
    token = cancel.Token()
    token.cancel("Stopped by the test.")
    assert net(torch.zeros(1, 3, 2, 2)).shape == (1, 3, 2, 2)  # outside a job it simply runs
    with cancel.job(token), pytest.raises(cancel.Cancelled, match="Stopped by the test"):
        net(torch.zeros(1, 3, 2, 2))


def test_reading_a_video_stops_with_its_job(tmp_path):
    """The look-only first pass over a clip (face-deid's detector) stops between frames too."""
    import cv2

    from models import video

    clip = tmp_path / "clip.webm"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"VP80"), 10, (32, 24))
    for value in range(20):
        writer.write(np.full((24, 32, 3), value * 10, np.uint8))
    writer.release()
    assert sum(1 for _ in video.read_frames(clip)) == 20
    token, seen = cancel.Token(), 0
    with cancel.job(token), pytest.raises(cancel.Cancelled):
        for _ in video.read_frames(clip):
            seen += 1
            if seen == 3:
                token.cancel("Stopped.")
    assert seen == 3


def test_each_thread_sees_its_own_job():
    seen = {}

    def other():
        seen["other"] = cancel.current()

    with cancel.job(cancel.Token()) as token:
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert cancel.current() is token
    assert seen["other"] is None and cancel.current() is None


# --- models.budget -----------------------------------------------------------------------------------------------

def test_budget_scales_down_an_input_that_would_take_minutes(monkeypatch):
    device = torch.device("cpu")
    monkeypatch.setattr(budget, "device_speed", lambda device: 10.0)  # GMAC/s: a slow CPU
    seconds = budget.estimate_s("super-resolution", "srgan-x4", (640, 480), {}, device)
    assert seconds == pytest.approx(0.3072 * 6_100 / 10.0)
    fitted = budget.fit("super-resolution", "srgan-x4", (640, 480), {}, device)
    assert fitted is not None and fitted.max_side < 640 and fitted.planned_s == budget.MAX_RUN_S * budget.SHARE
    assert budget.estimate_s("super-resolution", "srgan-x4", (fitted.max_side, fitted.max_side * 3 // 4), {},
                             device) <= fitted.planned_s
    assert 64 <= fitted.options["tile"] < 256  # small tiles: each takes a few seconds, so a Stop is quick
    assert "would have computed for about" in budget.reason(fitted, "srgan-x4", device)
    check = budget.fit("super-resolution", "srgan-x4", (640, 480), {"mode": "check"}, device)
    assert check is None or check.max_side is None  # the model sees the photo shrunk by 4: it fits
    assert budget.fit("super-resolution", "srgan-x4", (640, 480), {"tile": 128}, device).options == {}


def test_budget_leaves_fast_devices_and_uncosted_models_alone(monkeypatch):
    monkeypatch.setattr(budget, "device_speed", lambda device: 100_000.0)
    assert budget.fit("super-resolution", "srgan-x4", (1024, 768), {}, torch.device("cpu")) is None
    assert budget.fit("face-deid", "retinaface-mnet", (4000, 3000)) is None
    assert budget.fit("super-resolution", "bicubic-x4", (1024, 768)) is None


def test_device_speed_is_measured_once():
    first = budget.device_speed(torch.device("cpu"))
    assert first > 0 and budget.device_speed(torch.device("cpu")) == first


# --- a read-only or full checkpoint folder -------------------------------------------------------------------------

@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_an_unwritable_checkpoint_folder_says_which_and_what_to_do(tmp_path, monkeypatch, code):
    folder = tmp_path / "hub" / "checkpoints"
    checkpoint = weights.get("srgan-x4") if "srgan-x4" in weights.catalogue() else _srgan_entry()

    def refuse(*args, **kwargs):
        raise OSError(code, "refused", str(folder))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(downloads.CacheFolderError) as failure:
        downloads.download(checkpoint, folder)
    message = str(failure.value)
    assert str(folder) in message and "TORCH_HOME" in message and "CVPG_HOME" in message
    assert "python app.py download srgan-x4" in message
    assert isinstance(failure.value, weights.WeightsError)  # the UI shows it as it is, in one line


def test_a_damaged_file_in_a_read_only_cache_says_which_file_to_delete(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    bad = folder / "netG_epoch_4_100.pth"
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setattr(weights, "cache_dir", lambda: folder)
    monkeypatch.setattr(weights, "cached_path", lambda checkpoint: bad)

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(weights.os, "replace", read_only)  # root ignores chmod: refuse the rename itself
    with pytest.raises(downloads.CacheFolderError) as failure:
        weights.fetch(_srgan_entry())
    message = str(failure.value)
    assert "netG_epoch_4_100.pth" in message and "Delete it" in message and "read-only file system" in message
    assert bad.exists()  # nothing was loaded, nothing deleted behind the person's back


@pytest.mark.parametrize("code", [errno.EACCES, errno.ENOSPC])
def test_an_unwritable_hugging_face_cache_says_what_to_do(monkeypatch, code):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from models import hub
    from models.checkpoints import Checkpoint

    def refuse(*args, **kwargs):
        raise OSError(code, "refused")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    entry = Checkpoint(name="panoptic-test", task="panoptic", url="https://huggingface.co/org/repo",
                       filename="panoptic-test", sha256=None, bytes=None, license="-", source="-",
                       kind="huggingface", repo="org/repo")
    with pytest.raises(downloads.CacheFolderError) as failure:
        hub._download(entry, None)
    message = str(failure.value)
    assert "Hugging Face cache" in message and "HF_HOME" in message and "CVPG_HOME/panoptic-test" in message


def test_the_ui_shows_the_folder_error_without_the_server_path(tmp_path, caplog):
    gr = pytest.importorskip("gradio")
    from demos import _ui

    folder = tmp_path / "hub" / "checkpoints"

    @_ui.friendly_errors
    def handler():
        raise downloads.CacheFolderError(f"Cannot save x.pth in the checkpoint folder {folder}: read-only file "
                                         "system. Make that folder writable.")

    with caplog.at_level(logging.INFO, logger="cvpg"), pytest.raises(gr.Error) as shown:
        handler()
    assert str(tmp_path) not in shown.value.message and "checkpoints" in shown.value.message
    assert str(folder) in caplog.text and "Traceback" not in caplog.text  # the log keeps it, in one line


def _srgan_entry():
    from models import sr

    return sr.CHECKPOINTS["srgan-x4"]


# --- demos._limits and demos._ui's job wrapper ---------------------------------------------------------------------

def test_file_kinds_are_judged_by_content(tmp_path):
    from demos import _limits

    samples = {"photo.png": faults.png(32, 24), "clip.mp4": b"\x00\x00\x00\x18ftypmp42" + bytes(64),
               "clip.webm": b"\x1a\x45\xdf\xa3" + bytes(64), "weights.pth": b"PK\x03\x04" + bytes(64),
               "old.pth": b"\x80\x02" + bytes(64), "model.onnx": b"\x08\x04\x12\x07pytorch" + bytes(64),
               "page.png": b"<html><script>alert(1)</script></html>"}
    kinds = {}
    for name, content in samples.items():
        (tmp_path / name).write_bytes(content)
        kinds[name] = _limits.file_kind(tmp_path / name)
    assert kinds == {"photo.png": "image", "clip.mp4": "video", "clip.webm": "video", "weights.pth": "checkpoint",
                     "old.pth": "checkpoint", "model.onnx": "checkpoint", "page.png": None}


def test_taken_kinds_come_from_the_inputs():
    gr = pytest.importorskip("gradio")
    from demos import _limits

    with gr.Blocks() as blocks:
        image, video = gr.Image(), gr.Video()
        checkpoint, out = gr.File(file_types=[".pth", ".pt", ".onnx"]), gr.File()
        gr.Button().click(lambda *a: None, [image, video, checkpoint], out)
    assert _limits.taken_kinds(blocks) == {"image", "video", "checkpoint"}


def test_a_burst_from_one_client_gets_at_most_its_places():
    """Simultaneous pushes are counted while under way, so a burst cannot slip past the limit."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from demos import _limits

    waiting = SimpleNamespace(queue=[])
    queue = SimpleNamespace(event_queue_per_concurrency_id={"models": waiting}, active_jobs=[None])

    async def push(body, request, username):
        await asyncio.sleep(0.01)  # the real push awaits too before the event is in the queue
        event = SimpleNamespace(_id=uuid.uuid4().hex, session_hash=body.session_hash or "", request=request)
        waiting.queue.append(event)
        return True, "event", "success"

    queue.push = push
    _limits.limit_jobs_per_client(SimpleNamespace(_queue=queue), per_client=3, per_address=5)
    request = SimpleNamespace(headers={}, client=SimpleNamespace(host="10.0.0.7"))

    async def burst(session, count):
        return await asyncio.gather(*[queue.push(SimpleNamespace(session_hash=session), request, None)
                                      for _ in range(count)])

    def run(coroutine):  # an own thread: another test's browser may hold a running loop on this one
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine).result(timeout=60)

    answers = run(burst("one", 100))
    assert sum(ok for ok, _, _ in answers) == 3
    assert {state for ok, _, state in answers if not ok} == {"error"}
    assert sum(ok for ok, _, _ in run(burst("two", 10))) == 2  # the address's 5 places are now full
    assert "network address" in run(burst("three", 1))[0][1]


def test_hang_up_watch_knows_whose_stream_it_is():
    from demos import _limits

    assert _limits._stream_of({"path": "/gradio_api/queue/data", "query_string": b"session_hash=abc"}) == \
        {"session_hash": "abc"}
    assert _limits._stream_of({"path": "/gradio_api/call/face_deid/e1f2", "query_string": b""}) == {"event_id": "e1f2"}
    assert _limits._stream_of({"path": "/gradio_api/info", "query_string": b""}) is None


def test_the_cache_sweep_survives_a_file_added_while_it_walks(monkeypatch):
    from gradio import route_utils

    from demos import _limits

    calls = []

    def flaky_sweep(blocks, age):
        calls.append(age)
        if len(calls) == 1:
            raise RuntimeError("Set changed size during iteration")

    monkeypatch.setattr(route_utils, "delete_files_created_by_app", flaky_sweep)
    _limits.keep_sweeping_gradio_cache()
    _limits.keep_sweeping_gradio_cache()  # once is enough
    route_utils.delete_files_created_by_app(None, 20)
    assert calls == [20, 20]


def test_friendly_errors_stops_quietly_and_frees_the_run(caplog):
    gr = pytest.importorskip("gradio")
    from demos import _ui

    @_ui.friendly_errors
    def handler():
        big = np.ones(1000)  # noqa: F841 (a local the failed run leaves behind in its frame)
        raise cancel.Cancelled("Stopped: nobody is waiting for this result any more.", "abandoned")

    with caplog.at_level(logging.INFO, logger="cvpg"), pytest.raises(gr.Error) as shown:
        handler()
    assert "nobody is waiting" in shown.value.message and "Traceback" not in caplog.text
    assert len([r for r in caplog.records if r.name == "cvpg"]) == 1


def test_a_handler_runs_as_a_job():
    from demos import _ui

    seen = []

    @_ui.friendly_errors
    def handler():
        seen.append(cancel.current())
        return "done"

    @_ui.friendly_errors
    def streaming():
        for _ in range(2):
            seen.append(cancel.current())
            yield "step"

    assert handler() == "done" and list(streaming()) == ["step", "step"]
    assert all(isinstance(token, cancel.Token) for token in seen) and seen[1] is seen[2]
    assert seen[0].limit_s == budget.MAX_RUN_S


# --- the served app ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not all((faults.SHARED / "weights" / name).is_file() for name in NEEDED):
        pytest.skip("../shared/weights lacks the SRGAN x4, RetinaFace or CenterFace checkpoint")
    if not Path("/proc/self/status").is_file():
        pytest.skip("memory is read from /proc (Linux only)")
    served = faults.start_server("super-resolution,face-deid", tmp_path_factory.mktemp("served"),
                                 CVPG_KEEP_OUTPUTS_S="20", OMP_NUM_THREADS="2")
    api = faults.Api(served.url)
    with faults.client() as http:  # load the models once, so the tests time the work and not the loading
        small = faults.upload(http, served.url, faults.png(48, 48))
        assert faults.request(http, api, "super_resolution", image=small).ok
        assert faults.request(http, api, "face_deid", image=small).ok
    yield served, api
    served.stop()


@pytest.mark.slow
def test_a_client_that_hangs_up_stops_its_job_and_frees_memory(server):
    served, api = server
    with faults.client() as http:
        photo = faults.upload(http, served.url, faults.png(640, 480, seed=7))
        before, mark = served.rss_mb(), len(served.log())
        hung_up, detail = faults.hang_up_mid_job(http, api, "super_resolution", 1.0, image=photo, model="srgan-x4",
                                                 tile=64)
        if not hung_up and "finished" in detail:
            pytest.skip("this device finished the job before the client could hang up")
        assert hung_up, detail
        took = served.wait_for_log("super_resolution stopped", 30, mark)
        assert took is not None and took < 10, served.log()[mark:]
        time.sleep(1)
        assert served.rss_mb() < before + 300  # the stopped run's buffers went back to the system
        other = faults.request(http, api, "face_deid", image=faults.upload(http, served.url, faults.face_png(96)))
        assert other.ok and other.seconds < 60, other


@pytest.mark.slow
def test_one_client_cannot_fill_the_queue(server):
    served, api = server
    flood, other = uuid.uuid4().hex[:11], uuid.uuid4().hex[:11]
    with faults.client() as http:
        photo = faults.upload(http, served.url, faults.png(256, 192, seed=8))
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: faults.join(http, api, "super_resolution", flood, image=photo,
                                                          tile=32), range(100)))
        accepted = [event for ok, event in answers if ok]
        refusals = {event for ok, event in answers if not ok}
        assert len(accepted) <= 3 and len(answers) - len(accepted) >= 97
        assert any("at most 3 at a time" in refusal for refusal in refusals)
        face = faults.upload(http, served.url, faults.face_png(96))
        assert faults.join(http, api, "face_deid", other, image=face)[0]  # another person still gets a place
        mark = len(served.log())
        faults.hang_up(http, api, flood)  # the flood's client leaves: its waiting and running jobs go
        assert served.wait_for_log("super_resolution stopped", 30, mark) is not None, served.log()[mark:]
        result = faults.result(http, api, other)
        assert result.ok and result.seconds < 60, result


@pytest.mark.slow
def test_uploads_are_checked_for_kind_and_size(server):
    served, _ = server
    with faults.client() as http:
        # a page is no kind any tab takes (a damaged file named .png passes on, so the tab's decoder can explain it)
        refused = http.post(f"{served.url}/gradio_api/upload",
                            files={"files": ("notes.html", b"<html>not a picture</html>", "text/html")})
        assert refused.status_code == 415 and "not a file this app takes" in refused.json()["detail"]
    assert _status_of_announced_upload(served.url, 10**10) == 413  # refused before a byte of it is read
    leftovers = [path for path in (served.folder / "gradio").rglob("notes.html")]
    assert not leftovers


def _status_of_announced_upload(url: str, length: int) -> int:
    """The status a server answers to an upload that announces `length` bytes (httpx would not send such a lie)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(f"POST /gradio_api/upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n"
                           "Content-Type: multipart/form-data; boundary=x\r\n\r\n".encode())
        return int(connection.recv(1024).split()[1])


@pytest.mark.slow
def test_load_and_disk(server):
    """20 clients x 5 face de-identifications and 10 x 3 super-resolutions at once: no failures, memory bounded;
    then 300 requests in all, and the disk goes back under a bound once the sweep has run."""
    served, api = server
    before = served.rss_mb()
    served.reset_peak()
    face = faults.run_clients(served, api, "face_deid", clients=20, each=5, side=64)
    sr = faults.run_clients(served, api, "super_resolution", clients=10, each=3, side=32)
    rest = faults.run_clients(served, api, "face_deid", clients=10, each=17, side=32)
    failures = [outcome for outcome in face + sr + rest if not outcome.ok]
    assert not failures, failures[:3]
    assert served.peak_rss_mb() < before + 1500, (before, served.peak_rss_mb())
    assert served.wait_for_disk(bound=5_000_000, timeout=150), _leftovers(served.folder)  # sweeps: every 60 s


def _leftovers(folder: Path) -> str:
    now = time.time()
    files = sorted((path for path in folder.rglob("*") if path.is_file()), key=lambda path: -path.stat().st_size)
    return "\n".join(f"{path.relative_to(folder)}: {path.stat().st_size} bytes, {now - path.stat().st_mtime:.0f} s old"
                     for path in files[:20])
