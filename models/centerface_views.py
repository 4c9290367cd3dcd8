"""CenterFace's teaching views: CenterNet's lesson ("objects as points") on real faces.

CenterFace answers at every stride-4 cell with four maps: how likely a face centre falls in the cell, the box's log
height and width, the centre's offset inside the cell, and five landmarks relative to the box. A face is read at a
local maximum of the heatmap: its size and offset come from the same cell. The views show the heatmap over the
photo, the width and height maps in pixels with a colour scale, each face's peak cell magnified with the offset
that moves the cell's centre to the face's centre, and the decoded boxes with centres and landmarks. `table` is the
same reading as JSON-ready rows.
"""
from __future__ import annotations

import cv2
import numpy as np

from . import draw
from .centerface import CenterFaceDetections
from .detections import (BOX_COLOR, PEAK_COLOR, Detections, Peaks, dim, heatmap_view, lines, map_on_image,
                         marker_radius)
from .mmdet import Geometry

# The images `render` returns, in display order, with a caption for the UI.
VIEWS = (
    ("detections", "Faces: box, centre point and five landmarks"),
    ("center_heatmap", "Face-centre heatmap (each face's peak ringed)"),
    ("width", "Predicted box width at every cell: exp(scale) x 4 px"),
    ("height", "Predicted box height at every cell: exp(scale) x 4 px"),
    ("offsets", "Sub-cell offsets: the peak cell (grid of stride-4 cells) and the centre its offset points to"),
)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
CENTER_COLOR = "#ffffff"
ZOOM_CELLS = 9  # cells a side of each magnified peak
ZOOM_CELL_PX = 32  # tile pixels per cell
ZOOM_FACES = 3  # the best faces magnified in the offsets view


# ----------------------------------------------------------------------------------------------------------------
# What each face read from the maps


def readings(faces: CenterFaceDetections) -> dict[str, np.ndarray]:
    """Per face, the maps at its peak cell: `cells` (N, 2) row, col; `offsets` (N, 2) x, y in cells; `sizes` (N, 2)
    width, height in photo pixels (before clipping to the photo); `centers` (N, 2) x, y in photo pixels."""
    maps, cells = faces.maps, np.asarray(faces.cells, np.int64).reshape(-1, 2)
    rows, cols = cells[:, 0], cells[:, 1]
    to_image = np.asarray(maps.to_image, np.float32)
    offsets = maps.offset[::-1, rows, cols].T.reshape(-1, 2)  # the maps hold y, x
    sizes = np.exp(maps.scale[::-1, rows, cols].T.reshape(-1, 2)) * maps.stride * to_image
    centers = (cells[:, ::-1] + offsets + 0.5) * maps.stride * to_image
    return {"cells": cells, "offsets": offsets, "sizes": sizes, "centers": centers}


def table(faces: CenterFaceDetections) -> list[dict]:
    """One JSON-ready row per face: score, box, centre, predicted size, offset, peak cell and the five landmarks."""
    read = readings(faces)
    rounded = lambda values, digits=1: [round(float(v), digits) for v in values]
    return [{"label": "face", "score": round(float(faces.scores[i]), 4), "box": rounded(faces.boxes[i]),
             "center": rounded(read["centers"][i]), "size": rounded(read["sizes"][i]),
             "offset": rounded(read["offsets"][i], 3), "cell_row_col": [int(v) for v in read["cells"][i]],
             "landmarks": {name: rounded(point) for name, point in zip(LANDMARK_NAMES, faces.landmarks[i])}}
            for i in range(len(faces))]


def as_detections(faces: CenterFaceDetections) -> Detections:
    """The maps as the shared `Detections`, so the heatmap helpers of CenterNet and CornerNet draw them too.

    The network's input is the photo (shrunk to the working size) padded at the bottom and right; a cell (i, j)
    stands for the input point ((j + 0.5) * 4, (i + 0.5) * 4). `Geometry` puts cell j at j * 4 after its border, so
    the half cell is a border of -2 px at the top and left. Every map is one channel; the label ids mean nothing.
    """
    maps, read = faces.maps, readings(faces)
    work_w, work_h = working_size(faces)
    half = maps.stride / 2
    feature_size = (maps.heatmap.shape[1], maps.heatmap.shape[0])
    geometry = Geometry(faces.image_size, (work_w, work_h), maps.input_size,
                        (-half, work_h - half, -half, work_w - half), feature_size)
    peak_points = (read["cells"][:, ::-1] + 0.5) * maps.stride * np.asarray(maps.to_image, np.float32)
    no_labels = np.zeros(len(faces), np.int64)
    sizes = size_maps(faces)
    heatmaps = {"center": maps.heatmap[None], "height": sizes[:1], "width": sizes[1:]}
    return Detections(faces.boxes, faces.scores, no_labels, geometry, heatmaps,
                      {"center": Peaks(peak_points.reshape(-1, 2), faces.scores, no_labels)}, centers=read["centers"])


def working_size(faces: CenterFaceDetections) -> tuple[int, int]:
    """(w, h) of the image the network saw, before its padding."""
    width, height = faces.image_size
    return round(width / faces.maps.to_image[0]), round(height / faces.maps.to_image[1])


def size_maps(faces: CenterFaceDetections) -> np.ndarray:
    """(2, h, w) the box height and width each cell predicts, exp(scale) * 4, in photo pixels."""
    maps = faces.maps
    return np.exp(maps.scale) * maps.stride * np.reshape(maps.to_image[::-1], (2, 1, 1)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# The pictures


def center_heatmap_view(rgb: np.ndarray, faces: CenterFaceDetections) -> np.ndarray:
    """The face-centre heatmap over the photo, each face's peak cell ringed (a dot would hide the small blobs)."""
    found = as_detections(faces)
    image = np.ascontiguousarray(heatmap_view(rgb, found, "center", None, min_score=np.inf))
    radius = max(2 * marker_radius(rgb), round(2 * faces.maps.stride * max(faces.maps.to_image)))
    color = tuple(int(PEAK_COLOR[i:i + 2], 16) for i in (1, 3, 5))
    for x, y in found.peaks["center"].points:
        cv2.circle(image, (int(round(x)), int(round(y))), radius, color, max(1, marker_radius(rgb) // 2), cv2.LINE_AA)
    return image


def faces_view(rgb: np.ndarray, faces: CenterFaceDetections) -> np.ndarray:
    """The decoded faces: boxes with scores, the centre each grew from, and the five landmarks."""
    image = draw.boxes(rgb, faces.boxes, [f"face {score:.2f}" for score in faces.scores], color=BOX_COLOR)
    image = draw.points(image, readings(faces)["centers"].reshape(-1, 1, 2), CENTER_COLOR, marker_radius(rgb))
    return draw.points(image, faces.landmarks, draw.FACE_LANDMARK_COLORS)


def color_bar(width: int, low: float, high: float, unit: str) -> np.ndarray:
    """A strip `width` px wide: the inferno scale from `low` (left) to `high` (right), its ends and middle labelled."""
    font = max(10, round(width / 40))
    bar_h, strip_h = 2 * font, 4 * font
    strip = np.full((strip_h, width, 3), 32, np.uint8)
    strip[:bar_h] = draw.colorize(np.broadcast_to(np.linspace(0, 1, width, dtype=np.float32), (bar_h, width)))
    ticks = [(0, low), (width // 2, (low + high) / 2), (width - 1, high)]
    return draw.texts(strip, [(x, bar_h + font, f"{value:.0f} {unit}") for x, value in ticks], size=font)


def size_view(rgb: np.ndarray, faces: CenterFaceDetections, which: str, low: float, high: float) -> np.ndarray:
    """The width or height map over the photo's area, coloured from `low` to `high` px, with each face's box and the
    value read at its peak, and the colour scale beneath."""
    found = as_detections(faces)
    values = map_on_image(found, which)
    image = draw.colorize((values - low) / max(high - low, 1e-6))
    image = draw.boxes(image, faces.boxes, None, color=BOX_COLOR, width=1)
    column = 0 if which == "width" else 1
    read = readings(faces)
    labels = [(int(x), int(y1) - 2 * marker_radius(rgb), f"{size[column]:.0f} px")
              for (x, _), (_, y1, _, _), size in zip(read["centers"], faces.boxes, read["sizes"])]
    image = draw.texts(image, labels[:10])  # the ten best: a crowd would bury the map in labels
    return np.concatenate([image, color_bar(rgb.shape[1], low, high, "px")], axis=0)


def size_range(faces: CenterFaceDetections) -> tuple[float, float]:
    """One colour scale for width and height: the 1st to 99th percentile over the cells that saw the photo, widened
    to every face's size so no face is off the scale."""
    stride = faces.maps.stride
    work_w, work_h = working_size(faces)
    low, high = np.percentile(size_maps(faces)[:, :-(-work_h // stride), :-(-work_w // stride)], [1, 99])
    face_sizes = readings(faces)["sizes"]
    if len(face_sizes):
        low, high = min(low, face_sizes.min()), max(high, face_sizes.max())
    return float(low), float(high)


def zoom_tile(rgb: np.ndarray, faces: CenterFaceDetections, row: int, col: int, offset: np.ndarray) -> np.ndarray:
    """ZOOM_CELLS x ZOOM_CELLS cells around (row, col), magnified: the photo tinted by the heatmap, the cell grid,
    the peak cell outlined, a white dot at its centre and a cyan dot where the offset puts the face's centre."""
    maps, scale = faces.maps, ZOOM_CELL_PX / faces.maps.stride  # tile px per input px
    side = ZOOM_CELLS * ZOOM_CELL_PX
    row0, col0 = row - ZOOM_CELLS // 2, col - ZOOM_CELLS // 2
    tx, ty = maps.to_image
    # tile pixel -> photo pixel, pixel centres aligned: photo + 0.5 = ((tile + 0.5) / scale + origin) * to_image
    warp = np.array([[tx / scale, 0, (0.5 / scale + col0 * maps.stride) * tx - 0.5],
                     [0, ty / scale, (0.5 / scale + row0 * maps.stride) * ty - 0.5]])
    photo = dim(cv2.warpAffine(np.ascontiguousarray(rgb), warp, (side, side), flags=cv2.INTER_LINEAR |
                               cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0), 0.8)
    heat = np.zeros((ZOOM_CELLS, ZOOM_CELLS), np.float32)
    rows = slice(max(row0, 0), min(row0 + ZOOM_CELLS, maps.heatmap.shape[0]))
    cols = slice(max(col0, 0), min(col0 + ZOOM_CELLS, maps.heatmap.shape[1]))
    heat[rows.start - row0:rows.stop - row0, cols.start - col0:cols.stop - col0] = maps.heatmap[rows, cols]
    tile = draw.overlay(photo, cv2.resize(heat, (side, side), interpolation=cv2.INTER_NEAREST), 0.6)
    grid = [((k * ZOOM_CELL_PX, 0), (k * ZOOM_CELL_PX, side)) for k in range(1, ZOOM_CELLS)] + \
           [((0, k * ZOOM_CELL_PX), (side, k * ZOOM_CELL_PX)) for k in range(1, ZOOM_CELLS)]
    tile = lines(tile, grid, ["#606060"] * len(grid))
    corner = (ZOOM_CELLS // 2) * ZOOM_CELL_PX
    tile = draw.boxes(tile, np.array([[corner, corner, corner + ZOOM_CELL_PX, corner + ZOOM_CELL_PX]]), None,
                      color=BOX_COLOR, width=2)
    middle = np.array([corner + ZOOM_CELL_PX / 2] * 2)
    moved = middle + offset * ZOOM_CELL_PX
    tile = lines(tile, [(tuple(middle), tuple(moved))], [PEAK_COLOR])
    tile = draw.points(tile, moved.reshape(1, 1, 2), PEAK_COLOR, radius=4)
    tile = draw.points(tile, middle.reshape(1, 1, 2), CENTER_COLOR, radius=2)  # on top: offsets are often tiny
    caption = f"offset x {offset[0]:+.2f}, y {offset[1]:+.2f} of a cell"
    return draw.texts(tile, [(side // 2, side - 12, caption)], size=13)


def offsets_view(rgb: np.ndarray, faces: CenterFaceDetections) -> np.ndarray:
    """The best faces' peak cells magnified side by side; with no face, the heatmap's hottest cell."""
    read = readings(faces)
    if len(faces):
        spots = [(int(r), int(c), read["offsets"][i]) for i, (r, c) in enumerate(read["cells"][:ZOOM_FACES])]
    else:
        maps = faces.maps
        r, c = np.unravel_index(int(np.argmax(maps.heatmap)), maps.heatmap.shape)
        spots = [(int(r), int(c), maps.offset[::-1, r, c].astype(np.float32))]
    return draw.tile_row([zoom_tile(rgb, faces, r, c, offset) for r, c, offset in spots])


def render(rgb: np.ndarray, faces: CenterFaceDetections) -> dict[str, np.ndarray]:
    """Every view of VIEWS for one result; the heatmap marks the faces' peak cells."""
    low, high = size_range(faces)
    return {"detections": faces_view(rgb, faces),
            "center_heatmap": center_heatmap_view(rgb, faces),
            "width": size_view(rgb, faces, "width", low, high),
            "height": size_view(rgb, faces, "height", low, high),
            "offsets": offsets_view(rgb, faces)}
