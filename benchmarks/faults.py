"""Load and fault checks of a served CV Playground, on 127.0.0.1 only: abandoned jobs, floods, load, disk.

    python -m benchmarks.faults [--quick]     run the scenarios, print the numbers, and write the
                                               "## Load and faults" section of benchmarks/RESULTS.md

The server runs in a subprocess (`python app.py --offline`, checkpoints from ../shared/weights), so its memory is
its own; clients speak Gradio's HTTP protocol directly (/upload, /queue/join, /queue/data), which lets a client
hang up mid-job or never read its result. tests/test_faults.py uses the same pieces with smaller counts.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from benchmarks import results

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SECTION = "## Load and faults"


def free_port() -> int:
    with socket.socket() as sock:
        return sock.bind(("127.0.0.1", 0)) or sock.getsockname()[1]


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A smooth random picture (distinct per seed, so every upload and result is a new file)."""
    small = np.random.default_rng(seed).integers(0, 256, (max(height // 8, 2), max(width // 8, 2), 3), np.uint8)
    return _png(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))


def face_png(side: int = 160) -> bytes:
    """A real face photo (scikit-image's astronaut, public domain), scaled to `side`."""
    from skimage import data

    return _png(Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.BILINEAR))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Server:
    """A `python app.py` serving on 127.0.0.1 in a subprocess, with its own temp folders."""

    process: subprocess.Popen
    url: str
    folder: Path
    log_path: Path

    def rss_mb(self) -> float:
        return _status_kb(self.process.pid, "VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        """The highest RSS since start-up, or since `reset_peak()`."""
        return _status_kb(self.process.pid, "VmHWM") / 1024

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # Linux: VmHWM starts again from VmRSS

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def disk_bytes(self) -> int:
        """Bytes under the server's temp folders: uploads, Gradio's cache of results, our result files."""
        return sum(path.stat().st_size for path in self.folder.rglob("*") if path.is_file()
                   and path.name != "server.log")

    def wait_for_log(self, text: str, timeout: float, after: int = 0) -> float | None:
        """Seconds until `text` appears in the log past character `after` (None: not within `timeout`)."""
        return _wait(lambda: text in self.log()[after:], timeout, 0.1)

    def wait_for_disk(self, bound: int, timeout: float) -> bool:
        """Wait until the server's temp folders hold at most `bound` bytes (its sweeps run every minute or so)."""
        return _wait(lambda: self.disk_bytes() <= bound, timeout, 1.0) is not None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (a clean shutdown: the server deletes its files) and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def _wait(condition, timeout: float, every: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(every)
    return None


def _status_kb(pid: int, key: str) -> float:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return float(status.get(key, "0 kB").split()[0])


def start_server(tabs: str, folder: Path, timeout: float = 600, **env: str) -> Server:
    """Serve `tabs` offline with the shared checkpoints; wait until it answers. Extra `env` for the server."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tmp").mkdir(exist_ok=True)
    port = free_port()
    environment = {**os.environ, "CVPG_HOME": str(SHARED / "weights"), "GRADIO_TEMP_DIR": str(folder / "gradio"),
                   "TMPDIR": str(folder / "tmp"), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
                   **env}
    log_path = folder / "server.log"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--offline", "--tabs", tabs, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=environment, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", folder, log_path)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{server.log()[-3000:]}")
        try:
            return httpx.get(f"{server.url}/config", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    if _wait(answers, timeout, 0.5) is None:
        server.stop()
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s:\n{server.log()[-3000:]}")
    return server


class Api:
    """One server's public endpoints: their fn_index and parameters (names and defaults, in order)."""

    def __init__(self, url: str):
        self.url = url
        config = httpx.get(f"{url}/config", timeout=30).json()
        self.fn_index = {dep["api_name"]: dep["id"] for dep in config["dependencies"] if dep.get("api_name")}
        info = httpx.get(f"{url}/gradio_api/info", timeout=30).json()["named_endpoints"]
        self.parameters = {name.lstrip("/"): [(p["parameter_name"], p.get("parameter_default"))
                                              for p in endpoint["parameters"]] for name, endpoint in info.items()}

    def payload(self, api: str, session: str, **values) -> dict:
        if unknown := set(values) - {name for name, _ in self.parameters[api]}:
            raise KeyError(f"{api} has no parameter {', '.join(unknown)}")
        data = [values.get(name, default) for name, default in self.parameters[api]]
        return {"data": data, "fn_index": self.fn_index[api], "session_hash": session, "event_data": None,
                "trigger_id": None}


def client() -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(60), limits=httpx.Limits(max_connections=200))


def upload(http: httpx.Client, url: str, content: bytes, name: str = "input.png") -> dict:
    """Upload a file; returns the FileData an input takes."""
    answer = http.post(f"{url}/gradio_api/upload", files={"files": (name, content, "application/octet-stream")})
    answer.raise_for_status()
    return {"path": answer.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def join(http: httpx.Client, api: Api, name: str, session: str, **values) -> tuple[bool, str]:
    """Queue one event: (True, event id) or (False, the server's refusal)."""
    answer = http.post(f"{api.url}/gradio_api/queue/join", json=api.payload(name, session, **values))
    if answer.status_code != 200:
        json_answer = "json" in answer.headers.get("content-type", "")
        return False, answer.json().get("detail", "") if json_answer else answer.text
    return True, answer.json()["event_id"]


def messages(http: httpx.Client, api: Api, session: str, read_s: float = 60):
    """The JSON messages of a session's result stream (/queue/data); closing the generator hangs up."""
    with http.stream("GET", f"{api.url}/gradio_api/queue/data", params={"session_hash": session},
                     timeout=httpx.Timeout(30, read=read_s)) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                yield json.loads(line[5:])


@dataclass
class Outcome:
    ok: bool
    seconds: float
    error: str = ""


def request(http: httpx.Client, api: Api, name: str, session: str | None = None, timeout: float = 300,
            **values) -> Outcome:
    """One whole request as the browser makes it: join, then read the session's stream until the result."""
    session = session or uuid.uuid4().hex[:11]
    started = time.monotonic()
    joined, event = join(http, api, name, session, **values)
    if not joined:
        return Outcome(False, time.monotonic() - started, event)
    return result(http, api, session, event, started, timeout)


def result(http: httpx.Client, api: Api, session: str, event: str | None = None, started: float | None = None,
           timeout: float = 300) -> Outcome:
    """Read a session's stream until its event (or its next event) completes."""
    started = time.monotonic() if started is None else started
    for message in messages(http, api, session):
        if message.get("msg") == "process_completed" and event in (None, message.get("event_id")):
            output = message.get("output") or {}
            return Outcome(bool(message.get("success")), time.monotonic() - started,
                           "" if message.get("success") else str(output.get("error") or output))
        if time.monotonic() - started > timeout:
            break
    return Outcome(False, time.monotonic() - started, "no result")


def hang_up_mid_job(http: httpx.Client, api: Api, name: str, after_s: float, **values) -> tuple[bool, str]:
    """Join, read the stream until the job has started and run `after_s` more seconds, then close the connection."""
    session = uuid.uuid4().hex[:11]
    joined, event = join(http, api, name, session, **values)
    if not joined:
        return False, event
    started = None
    for message in messages(http, api, session, read_s=120):
        if message.get("msg") == "process_starts":
            started = time.monotonic()
        elif message.get("msg") == "process_completed":
            return False, "the job finished before the hang-up"
        if started is not None and time.monotonic() - started >= after_s:
            return True, session  # returning closes the stream: the connection goes mid-job
    return False, "the stream ended"


def hang_up(http: httpx.Client, api: Api, session: str) -> None:
    """Open a session's result stream and close it at the first message: the client has left."""
    next(messages(http, api, session), None)  # the generator is dropped at once, which closes the connection


def run_clients(server: Server, api: Api, name: str, clients: int, each: int, side: int, **values) -> list[Outcome]:
    """`clients` people at once, each sending `each` requests one after the other (a new picture every time)."""
    def one_client(number: int) -> list[Outcome]:
        session, outcomes = uuid.uuid4().hex[:11], []
        with client() as http:
            for index in range(each):
                picture = upload(http, server.url, png(side, side, seed=number * 1000 + index))
                outcomes.append(request(http, api, name, session, image=picture, **values))
        return outcomes

    with ThreadPoolExecutor(clients) as pool:
        return [outcome for outcomes in pool.map(one_client, range(clients)) for outcome in outcomes]


def percentile(values: list[float], share: float) -> float:
    return sorted(values)[round(share * (len(values) - 1))] if values else float("nan")


# --- the benchmark: python -m benchmarks.faults --------------------------------------------------------------------

class Numbers(list):
    """What the scenarios measured: (scenario, result) rows for the RESULTS.md section."""

    def add(self, what: str, result: str) -> None:
        print(f"{what}: {result}", flush=True)
        self.append((what, result))


def latencies(outcomes: list[Outcome]) -> str:
    seconds = [outcome.seconds for outcome in outcomes if outcome.ok]
    return (f"{len(outcomes)} requests, {len(outcomes) - len(seconds)} failed; p50 {percentile(seconds, 0.5):.2f} s, "
            f"p95 {percentile(seconds, 0.95):.2f} s, max {max(seconds, default=float('nan')):.2f} s")


def abandoned_runs(server: Server, api: Api, numbers: Numbers, runs: int) -> None:
    """Issue 17's probe: super-resolution on a 640x480 upload by clients that hang up, and someone else's request."""
    before, mark = server.rss_mb(), len(server.log())
    with client() as http:
        photo = upload(http, server.url, png(640, 480, seed=17))
        with ThreadPoolExecutor(runs) as pool:
            hung = sum(ok for ok, _ in pool.map(lambda _: hang_up_mid_job(http, api, "super_resolution", 3.0,
                                                                           image=photo), range(runs)))
        took = _wait(lambda: server.log()[mark:].count("super_resolution stopped") >= hung, 120, 0.1)
        other = request(http, api, "face_deid", image=upload(http, server.url, face_png(160)))
    numbers.add(f"{runs} clients hang up 3 s into super-resolution of a 640x480 upload (srgan-x4, default options)",
                f"{hung} hung up mid-job; " + (f"all stopped within {max(took, 0.1):.1f} s" if took is not None else
                                               "NOT all stopped within 120 s")
                + f"; RSS {before:.0f} MB before, {server.rss_mb():.0f} MB after; another user's face "
                f"de-identification then: {'ok' if other.ok else 'FAILED'} in {other.seconds:.1f} s")


def flood(server: Server, api: Api, numbers: Numbers, count: int) -> None:
    """One client sends `count` requests at once; another person asks for one meanwhile."""
    session = uuid.uuid4().hex[:11]
    with client() as http:
        photo = upload(http, server.url, png(256, 192, seed=18))
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: join(http, api, "super_resolution", session, image=photo, tile=32),
                                    range(count)))
        joined, event = join(http, api, "face_deid", other_session := uuid.uuid4().hex[:11],
                             image=upload(http, server.url, face_png(96)))
        hang_up(http, api, session)
        other = result(http, api, other_session, event) if joined else Outcome(False, 0, event)
    accepted = sum(ok for ok, _ in answers)
    numbers.add(f"one client sends {count} requests at once", f"{accepted} accepted, {count - accepted} refused "
                f"(\"{next((text for ok, text in answers if not ok), '')}\"); another user's request then "
                f"{'ok' if other.ok else 'FAILED'} in {other.seconds:.1f} s, after the flooding client left")


def load(server: Server, api: Api, numbers: Numbers, name: str, clients: int, each: int, side: int) -> list[Outcome]:
    before, started = server.rss_mb(), time.monotonic()
    server.reset_peak()
    outcomes = run_clients(server, api, name, clients, each, side)
    wall, peak = time.monotonic() - started, server.peak_rss_mb()
    numbers.add(f"{clients} clients x {each} requests, {name}, {side}x{side} pictures",
                f"{latencies(outcomes)}; {wall:.0f} s in all; RSS {before:.0f} MB before, peak {peak:.0f} MB, "
                f"{server.rss_mb():.0f} MB after")
    return outcomes


def disk(server: Server, api: Api, numbers: Numbers, total: int, done: int, bound: int) -> None:
    """Top up to `total` requests (each a new picture, so each leaves files), then time the sweep."""
    extra = run_clients(server, api, "face_deid", clients=10, each=max(0, -((done - total) // 10)), side=48)
    high, took = server.disk_bytes(), _wait(lambda: server.disk_bytes() <= bound, 150, 1.0)
    numbers.add(f"disk after {done + len(extra)} requests (uploads and results kept 20 s, Gradio sweeps every 60 s)",
                f"{high / 1e6:.1f} MB in the server's temp folders at the end; " + (
                    "none of it older than the 20 s kept" if took == 0 else f"{server.disk_bytes() / 1e6:.1f} MB "
                    + (f"{took:.0f} s later" if took is not None else "still after 150 s"))
                + f" (bound {bound / 1e6:.0f} MB)")


def render(numbers: Numbers, machine: str) -> str:
    lines = [SECTION, "",
             f"`python -m benchmarks.faults` on {machine}: the app serving super-resolution and face "
             "de-identification in a subprocess on 127.0.0.1 (offline, checkpoints from ../shared), clients speaking "
             "Gradio's HTTP protocol. Latencies run from joining the queue to the result (2 workers, so they include "
             "the wait); RSS is the server process's. Issue 17's probe on the old code: abandoned runs went on for "
             "7 minutes and grew the server to 6.0 GB; 100 requests from one client took 66 queue places. The machine "
             "was shared with other jobs while this ran: the times are noisy, the counts are not.", "",
             "| scenario | result |", "|---|---|"]
    lines += [f"| {what} | {result} |" for what, result in numbers]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts, no RESULTS.md")
    args = parser.parse_args(argv)
    scale = 5 if args.quick else 1
    numbers = Numbers()
    with tempfile.TemporaryDirectory(prefix="cvpg-faults-") as folder:
        server = start_server("super-resolution,face-deid", Path(folder), CVPG_KEEP_OUTPUTS_S="20")
        try:
            api = Api(server.url)
            with client() as http:  # load both models once
                small = upload(http, server.url, png(48, 48))
                request(http, api, "super_resolution", image=small)
                request(http, api, "face_deid", image=small)
            numbers.add("server after start-up and one request per tab", f"RSS {server.rss_mb():.0f} MB")
            abandoned_runs(server, api, numbers, runs=2)
            flood(server, api, numbers, count=100)
            done = len(load(server, api, numbers, "face_deid", 20 // scale, 5, 160))
            done += len(load(server, api, numbers, "super_resolution", 10 // scale, 3, 64))
            disk(server, api, numbers, 300 // scale, done + 2, bound=5_000_000)
            numbers.add("peak RSS of the server over the whole run", f"{server.peak_rss_mb():.0f} MB")
        finally:
            code = server.stop()
            numbers.add("shutdown (SIGTERM)", f"exit code {code}; {server.disk_bytes() / 1e6:.2f} MB left in its "
                        "temp folders (the example photos, which Gradio keeps by design)")
    text = render(numbers, f"{os.cpu_count()} CPU cores (no GPU), load average {os.getloadavg()[0]:.0f}")
    print(text)
    if not args.quick:
        results.write_heading_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
