"""The temporal hold for video: a face found in frame t is hidden in frames t-k..t+k too.

A detector misses a face now and then (motion blur, a turn of the head, a face growing past the smallest size it
sees), and one frame with a face left visible is a leak, however well the others are hidden. Two steps fill the gaps:
- Detections are linked across frames into tracks; between two sightings of a track up to 2k+1 frames apart, the box
  and its landmarks are interpolated (the face's own motion).
- Every detection is also carried to the k frames either side along the camera's motion (a scale and a shift per
  frame, fitted to the tracks), a little larger for every frame away; it is added wherever no box is there yet. Small
  faces in a crowd are easily linked to a neighbour, so this second step does not trust the tracks for coverage.

Everything here is pure numpy on boxes, so hand-made tests can drive it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .face_verify import iou_matrix

GROWTH_PER_FRAME = 0.25  # a carried box grows by this fraction of its size per frame away from its sighting
SAME_PLACE_IOU = 0.3  # a carried box overlapping a box already in the frame this much adds nothing,
SAME_PLACE = 0.25  # nor one centred this close to it (in its sizes) and no larger than its region
MAX_STEP = 0.75  # a face moves at most this many of its own sizes per frame and still belongs to the same track
MAX_SIZE_RATIO = 1.6  # nor does its size change by more than this factor between sightings
IDENTITY = np.array([1.0, 0.0, 0.0])  # camera motion (scale, shift x, shift y): none


@dataclass
class FrameFaces:
    """One frame's faces: boxes (N, 4) x1, y1, x2, y2 and landmarks (N, 5, 2) or None."""

    boxes: np.ndarray
    landmarks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class HeldFaces(FrameFaces):
    """The faces to hide in one frame: the detected ones first, then `held` more filled in from the neighbours."""

    held: int = 0


@dataclass
class Track:
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    points: list[np.ndarray | None] = field(default_factory=list)

    def predicted(self, frame: int) -> np.ndarray:
        """Where the face should be at `frame`, at the speed of its last two sightings."""
        if len(self.frames) < 2:
            return self.boxes[-1]
        velocity = (self.boxes[-1] - self.boxes[-2]) / (self.frames[-1] - self.frames[-2])
        return self.boxes[-1] + velocity * (frame - self.frames[-1])


def hold(frames: list[FrameFaces], window: int) -> list[HeldFaces]:
    """Per frame, the detected faces plus those filled in from sightings within `window` frames (0: no hold)."""
    boxes = [np.asarray(f.boxes, np.float32).reshape(-1, 4) for f in frames]
    points = [_points(f) for f in frames]
    if window <= 0:
        return [HeldFaces(b, p) for b, p in zip(boxes, points)]
    added: list[list[tuple[np.ndarray, np.ndarray | None]]] = [[] for _ in frames]
    tracks = link(frames, max_gap=2 * window + 1)
    for track in tracks:
        for frame, box, pts in _interpolated(track):
            added[frame].append((box, pts))
    motion = camera_motion(tracks, len(frames))
    for source in range(len(frames)):
        for target in range(max(source - window, 0), min(source + window + 1, len(frames))):
            if target == source or not len(boxes[source]):
                continue
            scale, shift = _motion_between(motion, source, target)
            carried = boxes[source] * scale + np.tile(shift, 2)
            present = np.concatenate([boxes[target], *[b[None] for b, _ in added[target]]])
            new = ~_already_there(carried, present)
            grown = _grown(carried[new], 1 + GROWTH_PER_FRAME * abs(target - source))
            for index, box in zip(np.flatnonzero(new), grown):
                pts = points[source]
                added[target].append((box, None if pts is None else _moved_points(pts[index], carried[index], box)))
    return [_with_added(b, p, extra) for b, p, extra in zip(boxes, points, added)]


def link(frames: list[FrameFaces], max_gap: int) -> list[Track]:
    """Detections joined into tracks, frame by frame: each detection goes to the nearest track (by centre distance
    relative to the face's size, after predicting the track's position) seen at most `max_gap` frames ago."""
    tracks: list[Track] = []
    for index, faces in enumerate(frames):
        boxes = np.asarray(faces.boxes, np.float32).reshape(-1, 4)
        points = _points(faces)
        active = [track for track in tracks if index - track.frames[-1] <= max_gap]
        costs = _distances(active, index, boxes)
        used_tracks, used_boxes = set(), set()
        for t, d in zip(*np.unravel_index(np.argsort(costs, axis=None), costs.shape)):
            if not np.isfinite(costs[t, d]):
                break  # sorted: the rest are not the same face either
            if t in used_tracks or d in used_boxes:
                continue
            used_tracks.add(t)
            used_boxes.add(d)
            _extend(active[t], index, boxes[d], None if points is None else points[d])
        for d, box in enumerate(boxes):
            if d not in used_boxes:
                tracks.append(Track())
                _extend(tracks[-1], index, box, None if points is None else points[d])
    return tracks


def camera_motion(tracks: list[Track], frame_count: int) -> np.ndarray:
    """(frame_count - 1, 3): for each frame f, the scale s and shift (tx, ty) with x' = s * x + tx, y' = s * y + ty
    from frame f to f + 1, fitted to the tracks seen in both (the identity where fewer than 3 are)."""
    pairs: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(max(frame_count - 1, 0))]
    for track in tracks:
        for (f, a), (g, b) in zip(zip(track.frames, track.boxes), zip(track.frames[1:], track.boxes[1:])):
            if g == f + 1:
                pairs[f].append((_centre(a), _centre(b)))
    return np.array([_fit_motion(p) for p in pairs]).reshape(-1, 3)


def _fit_motion(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Least squares of a scale and a shift, refitted once without the pairs far off (wrong links, own motion)."""
    if len(pairs) < 3:
        return IDENTITY
    before, after = (np.array(side, np.float64) for side in zip(*pairs))
    keep = np.ones(len(before), bool)
    for _ in range(2):
        rows = np.concatenate([np.stack([before[keep, 0], np.ones(keep.sum()), np.zeros(keep.sum())], 1),
                               np.stack([before[keep, 1], np.zeros(keep.sum()), np.ones(keep.sum())], 1)])
        solution = np.linalg.lstsq(rows, np.concatenate([after[keep, 0], after[keep, 1]]), rcond=None)[0]
        error = np.linalg.norm(before * solution[0] + solution[1:] - after, axis=1)
        keep = error <= max(3 * float(np.median(error)), 1.0)
        if keep.sum() < 3:
            break
    return solution


def _motion_between(motion: np.ndarray, source: int, target: int) -> tuple[float, np.ndarray]:
    """The camera motion from frame `source` to `target`, composed frame by frame (inverted going back)."""
    scale, shift = 1.0, np.zeros(2)
    for frame in range(min(source, target), max(source, target)):
        s, tx, ty = motion[frame]
        scale, shift = scale * s, shift * s + (tx, ty)
    if target < source:
        scale, shift = 1 / scale, -shift / scale
    return scale, shift.astype(np.float32)


def _distances(tracks: list[Track], frame: int, boxes: np.ndarray) -> np.ndarray:
    """(tracks, boxes): centre distance per frame between each box and where each track should be, in face sizes;
    inf where they cannot be the same face (too far, or too different in size)."""
    if not tracks or not len(boxes):
        return np.full((len(tracks), len(boxes)), np.inf)
    expected = np.stack([track.predicted(frame) for track in tracks])
    gaps = np.array([frame - track.frames[-1] for track in tracks], np.float32)
    size, expected_size = _sizes(boxes)[None, :], _sizes(expected)[:, None]
    distance = np.linalg.norm(_centres(boxes)[None] - _centres(expected)[:, None], axis=2)
    step = distance / np.maximum((size + expected_size) / 2, 1e-6)
    similar = np.maximum(size, expected_size) <= MAX_SIZE_RATIO * np.maximum(np.minimum(size, expected_size), 1e-6)
    return np.where(similar & (step <= MAX_STEP * gaps[:, None]), step, np.inf)


def _interpolated(track: Track):
    """(frame, box, landmarks) for every frame between two sightings of the track (at most 2k frames apart)."""
    sightings = list(zip(track.frames, track.boxes, track.points))
    for (a, box_a, pts_a), (b, box_b, pts_b) in zip(sightings, sightings[1:]):
        for frame in range(a + 1, b):
            w = (frame - a) / (b - a)
            pts = None if pts_a is None or pts_b is None else (1 - w) * pts_a + w * pts_b
            yield frame, (1 - w) * box_a + w * box_b, pts


def _already_there(carried: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Which carried boxes a box already in the frame hides: one overlapping it, or centred on it and no larger than
    its region (the box enlarged 1.5x by default). Tiny faces jitter by a good part of their size between frames."""
    if not len(present):
        return np.zeros(len(carried), bool)
    overlapping = iou_matrix(carried, present) >= SAME_PLACE_IOU
    size = present[None, :, 2:] - present[None, :, :2]
    offset = np.abs(_centres(carried)[:, None] - _centres(present)[None])
    close = (offset <= SAME_PLACE * size).all(axis=2)
    no_larger = ((carried[:, None, 2:] - carried[:, None, :2]) <= 1.25 * size).all(axis=2)
    return (overlapping | (close & no_larger)).any(axis=1)


def _grown(boxes: np.ndarray, factor: float) -> np.ndarray:
    centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2 * factor
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def _moved_points(points: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Landmarks carried from box `source` to box `target` by the same shift and scale."""
    scale = (target[2:] - target[:2]) / np.maximum(source[2:] - source[:2], 1e-6)
    return ((points - source[:2]) * scale + target[:2]).astype(np.float32)


def _with_added(boxes: np.ndarray, points: np.ndarray | None, extra: list) -> HeldFaces:
    if not extra:
        return HeldFaces(boxes, points)
    all_boxes = np.concatenate([boxes, np.stack([box for box, _ in extra])])
    all_points = None
    if points is not None and all(p is not None for _, p in extra):
        all_points = np.concatenate([points, np.stack([p for _, p in extra])])
    return HeldFaces(all_boxes, all_points, held=len(extra))


def _extend(track: Track, frame: int, box: np.ndarray, points: np.ndarray | None) -> None:
    track.frames.append(frame)
    track.boxes.append(np.asarray(box, np.float32))
    track.points.append(None if points is None else np.asarray(points, np.float32))


def _points(faces: FrameFaces) -> np.ndarray | None:
    return None if faces.landmarks is None else np.asarray(faces.landmarks, np.float32).reshape(-1, 5, 2)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _centre(box: np.ndarray) -> np.ndarray:
    return (box[:2] + box[2:]) / 2


def _sizes(boxes: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))
