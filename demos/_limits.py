"""Server-wide limits that keep one client from crowding out the others: queue places per client, the sizes and
kinds of what may be uploaded, and jobs abandoned by a client that hung up.

`app.launch` installs them: `limit_jobs_per_client(blocks)` on Gradio's queue, `middleware(blocks, ...)` (UploadGuard,
HangUpWatch) in front of every route. What a single job may compute is `models.budget`'s business, and stopping it
between steps is `models.cancel`'s.
"""
from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

import gradio as gr
from starlette.middleware import Middleware

MAX_JOBS_PER_CLIENT = int(os.environ.get("CVPG_MAX_JOBS_PER_CLIENT", "3"))  # one browser tab or API client
MAX_JOBS_PER_ADDRESS = int(os.environ.get("CVPG_MAX_JOBS_PER_ADDRESS", "24"))  # every client behind one address
# Behind a proxy (Hugging Face Spaces) every request comes from the proxy: the client's address is the first of
# X-Forwarded-For. Elsewhere that header is whatever the client wrote, so it is only trusted when asked to.
TRUST_FORWARDED = os.environ.get("CVPG_TRUST_FORWARDED", "1" if os.environ.get("SPACE_ID") else "") not in ("", "0")
CHECKPOINT_SUFFIXES = {".pth", ".pt", ".tar", ".model", ".bin", ".onnx"}
log = logging.getLogger("cvpg")


def client_address(request) -> str:
    if TRUST_FORWARDED and (forwarded := request.headers.get("x-forwarded-for", "")):
        return forwarded.split(",")[0].strip()
    return request.client.host if getattr(request, "client", None) else "unknown"


def _client_keys(session_hash: str | None, address: str) -> tuple[str, str]:
    """(the client, its address): a request without a session counts as the address's anonymous client."""
    return (f"session {session_hash}" if session_hash else f"anonymous at {address}"), f"address {address}"


def _held(queue) -> Counter:
    """Queued and running events per client and per address (running ones whose client left included: they hold a
    worker until their job notices)."""
    events = [event for waiting in queue.event_queue_per_concurrency_id.values() for event in waiting.queue]
    events += [event for running in queue.active_jobs if running for event in running]
    counts: Counter = Counter()
    for event in events:
        session = event.session_hash if event.session_hash != event._id else None  # the queue's stand-in: none given
        counts.update(_client_keys(session, client_address(event.request)))
    return counts


def limit_jobs_per_client(blocks: gr.Blocks, per_client: int = MAX_JOBS_PER_CLIENT,
                          per_address: int = MAX_JOBS_PER_ADDRESS) -> None:
    """Refuse a new event (HTTP 400, the message shown in the UI) from a client that already has `per_client` events
    queued or running, or whose address has `per_address`: one client cannot fill the queue.

    Gradio has no per-client limit, and a `validator` runs before the event is counted (so a burst would pass). This
    wraps the queue's `push`, which every route that queues work goes through (the UI's /queue/join, the API's
    /call); pushes still under way count too, so a burst of simultaneous requests is counted exactly."""
    queue = blocks._queue
    push = queue.push
    joining: Counter = Counter()

    async def fair_push(body, request, username):
        client, address = keys = _client_keys(body.session_hash, client_address(request))
        counts = _held(queue) + joining
        if counts[client] >= per_client:
            refusal = (f"You already have {counts[client]} requests waiting or running (at most {per_client} at a "
                       "time); wait for one to finish, then try again.")
        elif counts[address] >= per_address:
            refusal = (f"Your network address already has {counts[address]} requests waiting or running (at most "
                       f"{per_address}); wait for some to finish, then try again.")
        else:
            joining.update(keys)
            try:
                return await push(body, request, username)
            finally:
                joining.subtract(keys)
        log.info("refused a request from %s: %s", client, refusal)
        return False, refusal, "error"

    queue.push = fair_push


def taken_kinds(blocks: gr.Blocks) -> set[str]:
    """What this app's inputs take: "image", "video", "checkpoint", or "any" (an input that takes any file)."""
    inputs = {block._id: block for fn in blocks.fns.values() for block in fn.inputs}.values()
    kinds = set()
    for block in inputs:
        if isinstance(block, gr.Video):
            kinds.add("video")
        elif isinstance(block, (gr.Image, gr.ImageEditor, gr.ImageSlider, gr.Gallery)):
            kinds.add("image")
        elif isinstance(block, gr.File):
            types = {suffix.lower() for suffix in block.file_types or ()}
            kinds.add("checkpoint" if types and types <= CHECKPOINT_SUFFIXES else "any")
        elif isinstance(block, (gr.Audio, gr.Model3D, gr.UploadButton, gr.MultimodalTextbox)):
            kinds.add("any")
    return kinds


def file_kind(path: str | Path) -> str | None:
    """What a file is by its content (not its name): "image", "video", "checkpoint", "missing", or None."""
    from PIL import Image

    try:
        with open(path, "rb") as stream:
            head = stream.read(512)
    except OSError:  # not written yet (Gradio copies across file systems after answering): nothing to judge
        return "missing"
    if head[4:8] == b"ftyp" and head[8:12] not in (b"avif", b"heic", b"heix", b"mif1") \
            or head[:4] == b"\x1a\x45\xdf\xa3" or head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"  # MP4/MOV/M4V, WebM/MKV, AVI
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80" or head[257:262] == b"ustar" \
            or head[:1] == b"\x08" and 0 < head[1] < 16 and head[2:3] == b"\x12":
        return "checkpoint"  # torch's zip format, a legacy pickle, a tar, ONNX (protobuf: ir_version, producer)
    try:
        with Image.open(path):  # reads the header only
            return "image"
    except Exception:  # noqa: BLE001 (any failure: not an image PIL knows)
        return None


_SUFFIX_KINDS = {**dict.fromkeys((".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"), "image"),
                 **dict.fromkeys((".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"), "video"),
                 **dict.fromkeys((".pth", ".pt", ".bin", ".onnx", ".zip"), "checkpoint")}
_KIND_NAMES = {"image": "images", "video": "videos (MP4, WebM, MOV, MKV, AVI)", "checkpoint": "checkpoints (.pth)"}


class UploadGuard:
    """ASGI middleware: every request body within a size limit, and uploads only of the kinds this app's inputs take.

    Gradio checks each uploaded file's size but not how many files one request holds, nor any size for JSON bodies
    (a webcam frame arrives inline as a data: URL); and /upload stores any kind of file. Bodies over the limit are
    refused (413) by Content-Length, or cut off when they grow past it; stored uploads of another kind are deleted
    and refused (415)."""

    def __init__(self, app, kinds: set[str], max_file_bytes: int, files_per_upload: int = 4):
        self.app, self.kinds = app, kinds
        self.max_body = max_file_bytes
        self.max_upload = max_file_bytes * files_per_upload

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        upload = scope["path"].rstrip("/").endswith("/upload")
        limit = self.max_upload if upload else self.max_body
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if int(length or 0) > limit:
            return await _reply(send, 413, f"Request too large: at most {limit // 1_000_000} MB.")
        receive = _limited(receive, limit)
        if not upload or "any" in self.kinds:
            return await self.app(scope, receive, send)
        held: list[dict] = []

        async def hold(message):  # the answer is the stored paths: check them before the client sees it
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                await self._release(held, send)

        await self.app(scope, receive, hold)

    async def _release(self, held: list[dict], send) -> None:
        start = held[0]
        body = b"".join(message.get("body", b"") for message in held[1:])
        try:
            paths = json.loads(body) if start["status"] == 200 else []
        except ValueError:
            paths = []
        # A file named like a kind this app takes passes on, whatever it holds: the tab's decoder then says what is
        # wrong with it in words (a damaged photo); anything else (a page, a program) is refused here.
        wrong = [path for path in paths if isinstance(path, str) and file_kind(path) not in self.kinds | {"missing"}
                 and _SUFFIX_KINDS.get(Path(path).suffix.lower()) not in self.kinds]
        if not wrong:
            for message in held:
                await send(message)
            return
        for path in paths:  # refuse the whole upload, and keep none of it on disk
            Path(path).unlink(missing_ok=True)
        taken = ", ".join(_KIND_NAMES[kind] for kind in sorted(self.kinds) if kind in _KIND_NAMES)
        log.info("refused an upload of %s: not one of %s", ", ".join(Path(path).name for path in wrong), taken)
        await _reply(send, 415, f"{Path(wrong[0]).name} is not a file this app takes ({taken}).")


class HangUpWatch:
    """ASGI middleware: a client that hangs up its result stream abandons its jobs.

    Gradio marks a session's events abandoned only when the hang-up reaches its stream loop as a cancellation while
    it waits for a message; when it lands while a message is being sent, the stream just ends, the events stay
    alive and their jobs run on (issue 17: two abandoned super-resolution runs went on for minutes). Here, a result
    stream that ends with the client gone calls the queue's own `clean_events` for its session (or event): waiting
    events are dropped, running ones marked not alive, which `demos._ui.job_token` turns into a stop at the next
    step of the model's loop."""

    def __init__(self, app, blocks: gr.Blocks):
        self.app, self.blocks = app, blocks

    async def __call__(self, scope, receive, send):
        target = _stream_of(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if target is None:
            return await self.app(scope, receive, send)
        gone = False

        async def watched_receive():
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        async def watched_send(message):
            nonlocal gone
            try:
                await send(message)
            except OSError:  # servers that report a closed connection when sending to it
                gone = True
                raise

        try:
            await self.app(scope, watched_receive, watched_send)
        finally:
            if gone:
                await self.blocks._queue.clean_events(**target)


def _stream_of(scope) -> dict | None:
    """Whose results a GET streams: {"session_hash": ...} for /queue/data, {"event_id": ...} for /call/<api>/<id>."""
    path = scope["path"].rstrip("/")
    if path.endswith("/queue/data"):
        session = parse_qs(scope.get("query_string", b"").decode()).get("session_hash", [""])[0]
        return {"session_hash": session} if session else None
    parts = path.split("/")
    if "call" in parts and len(parts) - parts.index("call") >= 3:
        return {"event_id": parts[-1]}
    return None


def _limited(receive, limit: int):
    seen = 0

    async def counted():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:  # a body without Content-Length that grew too big: stop reading it
            return {"type": "http.disconnect"}
        return message

    return counted


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def keep_sweeping_gradio_cache() -> None:
    """Gradio sweeps its cache (`delete_cache`) by walking live sets of file names that requests add to from other
    threads: on a busy server a walk can meet "Set changed size during iteration", which ends its sweeping task for
    good, and uploads and results pile up from then on. Walk again instead (a copy of each set is taken each time)."""
    from gradio import route_utils

    sweep = route_utils.delete_files_created_by_app
    if getattr(sweep, "keeps_sweeping", False):
        return

    def sweep_until_done(blocks, age):
        for _ in range(10):
            try:
                return sweep(blocks, age)
            except RuntimeError as error:  # a request added a file during the walk
                log.info("the cache sweep walked into a new file (%s); sweeping again", error)
        return None

    sweep_until_done.keeps_sweeping = True
    route_utils.delete_files_created_by_app = sweep_until_done


def middleware(blocks: gr.Blocks, max_file_bytes: int) -> list[Middleware]:
    """The ASGI middleware for `blocks`' FastAPI app (launch's `app_kwargs["middleware"]`)."""
    return [Middleware(UploadGuard, kinds=taken_kinds(blocks), max_file_bytes=max_file_bytes),
            Middleware(HangUpWatch, blocks=blocks)]
