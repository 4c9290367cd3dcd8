"""Frame-by-frame video processing shared by the tabs that take video files.

Reads any container OpenCV's FFmpeg can open, refuses clips over the limits before doing any work, and writes a WebM
(VP8) that browsers play, with the input's frame rate and size. Audio is not carried over.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from . import cancel

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
MAX_SECONDS = 120  # longer clips are refused: a CPU takes minutes, and the output would fill the disk
MAX_FRAMES = 3600
MAX_PIXELS = 1920 * 1080


class VideoError(ValueError):
    """A video that cannot be read or is over the limits; the message is for the person who gave it."""


@dataclass
class VideoInfo:
    fps: float
    frames: int
    width: int
    height: int


def probe(source: str | Path) -> VideoInfo:
    capture = cv2.VideoCapture(str(source))
    try:
        return _probe(capture, Path(source).name)
    finally:
        capture.release()


def read_frames(source: str | Path, start: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
    """The RGB frames of `source` from frame `start` on (`count` of them, or to the end), after the same checks as
    `map_frames` (a clip over the limits is refused before the first frame): for a pass that only looks, such as a
    detector run before a video is written, or one worker's range of a batch. Frames before `start` are decoded and
    skipped rather than sought, so every frame is the one a whole run decodes (seeking lands elsewhere in some
    containers)."""
    capture = cv2.VideoCapture(str(source))
    try:
        info = _probe(capture, Path(source).name)
        skipped = 0
        while skipped < start and capture.grab():
            skipped += 1
        total = count if count is not None else max(info.frames - start, 0)
        done = 0
        while count is None or done < count:
            cancel.check(done, total, "frame")  # a Stop, a hang-up or the time limit ends this pass too
            ok, bgr = capture.read()
            if not ok:
                return
            done += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def map_frames(source: str | Path, target: str | Path, transform: Callable[[np.ndarray], np.ndarray],
               progress: Callable[[float, str], None] | None = None) -> tuple[VideoInfo, list]:
    """Write transform(frame) for every RGB frame of `source` to `target` (.webm); returns the info and what each
    call of `transform` returned besides its image, when it returns (image, extra)."""
    capture = cv2.VideoCapture(str(source))
    extras: list = []
    try:
        info = _probe(capture, Path(source).name)
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"VP80"), info.fps, (info.width, info.height))
        if not writer.isOpened():
            raise VideoError("This machine's OpenCV cannot write WebM video.")
        try:
            while True:
                cancel.check(len(extras), info.frames, "frame")
                ok, bgr = capture.read()
                if not ok:
                    break
                result = transform(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                image, extra = result if isinstance(result, tuple) else (result, None)
                if image.shape[:2] != (info.height, info.width):  # the container needs every frame at one size
                    image = cv2.resize(image, (info.width, info.height), interpolation=cv2.INTER_AREA)
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                extras.append(extra)
                if progress is not None:
                    progress(len(extras) / max(info.frames, 1), f"Frame {len(extras)} of {info.frames}")
        finally:
            writer.release()
    finally:
        capture.release()
    if not extras:
        Path(target).unlink(missing_ok=True)
        raise VideoError(f"{Path(source).name} has no frames that could be decoded.")
    return VideoInfo(info.fps, len(extras), info.width, info.height), extras


def _probe(capture: cv2.VideoCapture, name: str) -> VideoInfo:
    if not capture.isOpened():
        raise VideoError(f"{name} is not a video this app can read (MP4, WebM, MOV, MKV and AVI work).")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width <= 0 or height <= 0 or fps <= 0:
        raise VideoError(f"{name} is not a video this app can read (no frame size or frame rate).")
    if width * height > MAX_PIXELS:
        raise VideoError(f"{name} is {width}x{height}; videos up to 1920x1080 are accepted.")
    if frames > MAX_FRAMES or frames / fps > MAX_SECONDS:
        raise VideoError(f"{name} is {frames / fps:.0f} s long ({frames} frames); the limit is {MAX_SECONDS} s "
                         f"and {MAX_FRAMES} frames. Trim it first.")
    return VideoInfo(fps, frames, width, height)
