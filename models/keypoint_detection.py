"""Objects as keypoints: the shared half of the CenterNet / CornerNet tab, and the tab's pipeline.

CornerNet (Law & Deng, ECCV 2018) finds a box as a pair of corners: one heatmap per class for top-left corners, one for
bottom-right corners, an embedding per corner that is close for the two corners of one object, and a sub-pixel
offset. CenterNet (Zhou et al., "Objects as Points", 2019) finds a box as its centre: one heatmap per class, plus the
box's width and height and an offset regressed at the centre. Neither needs anchors or (for CenterNet) NMS: a 3x3
max-pool keeps the local maxima of the heatmaps, and the top k maxima become boxes.

Both run with the official mmdetection COCO checkpoints; this module holds what they share: mmdetection's test-time
padding (`RandomCenterCropPad` in test mode) and normalisation, the peak extraction, soft-NMS, the result type, the
teaching views, and `TASK`, which dispatches to `models.centernet` and `models.cornernet`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import coco, draw, draw_masks, runtime, weights
from .images import LoadedImage
from .tasks import Option, Task, TaskOutput

TASK_ID = "keypoint-detectors"
MMDET_DOWNLOADS = "https://download.openmmlab.com/mmdetection/v2.0"
MMDET_LICENSE = "Apache-2.0 (mmdetection code and model zoo; the weights' licence is not stated separately)"
# The 80 COCO classes in mmdetection's CocoDataset order: the checkpoints' label ids 0..79.
COCO_CLASSES = coco.THINGS
# mmdetection's DetDataPreprocessor for both configs: bgr_to_rgb=True, then these RGB statistics on 0-255 pixels.
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)
# Which module implements each model of the tab.
MODEL_MODULES = {"centernet-r18": "centernet", "centernet-r18-dcn": "centernet", "cornernet-hg104": "cornernet"}
DEFAULT_MODEL = "centernet-r18"
DEFAULT_WORKING_SIZE = 512


# ----------------------------------------------------------------------------------------------------------------
# mmcv's ConvModule, as far as these checkpoints use it


class ConvModule(nn.Module):
    """Convolution, optional BatchNorm, optional ReLU, named as mmcv's ConvModule names them (`conv`, `bn`), so
    mmdetection state dicts load as they are. As in mmcv, the convolution has a bias only when no norm follows."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 norm: bool = True, relu: bool = True, conv: nn.Module | None = None):
        super().__init__()
        self.conv = conv if conv is not None else nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                                            bias=not norm)
        if norm:
            self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        return self.activate(x)


# ----------------------------------------------------------------------------------------------------------------
# Geometry: photo -> (downscaled) working image -> centrally padded network input -> heatmap cells


@dataclass(frozen=True)
class Geometry:
    """How network-input pixels and heatmap cells map back to the photo.

    `border` is mmdetection's: (top, bottom, left, right) edges of the working image inside the padded input. A point
    (x, y) of the input is the photo point ((x - left) / sx, (y - top) / sy), sx and sy the downscale factors; a
    heatmap cell (i, j) is the input point (j * rx, i * ry), rx and ry the input size over the heatmap size (4, or
    511 / 128 for CornerNet), exactly as mmdetection's decoders compute it.
    """

    image_size: tuple[int, int]  # (w, h) of the photo
    working_size: tuple[int, int]  # (w, h) after the optional downscale
    input_size: tuple[int, int]  # (w, h) after the central padding: what the network sees
    border: tuple[float, float, float, float]  # top, bottom, left, right
    feature_size: tuple[int, int] = (0, 0)  # (w, h) of the heatmaps, known after the forward

    @property
    def scale(self) -> tuple[float, float]:
        return self.working_size[0] / self.image_size[0], self.working_size[1] / self.image_size[1]

    @property
    def ratio(self) -> tuple[float, float]:
        return self.input_size[0] / self.feature_size[0], self.input_size[1] / self.feature_size[1]

    def input_to_image(self, xs, ys):
        """Input-pixel coordinates -> photo coordinates (tensors or arrays)."""
        (sx, sy), (top, _, left, _) = self.scale, self.border
        return (xs - left) / sx, (ys - top) / sy

    def feature_to_image(self, xs, ys):
        """Heatmap coordinates (column, row, offsets added) -> photo coordinates."""
        rx, ry = self.ratio
        return self.input_to_image(xs * rx, ys * ry)

    def image_to_feature_matrix(self) -> np.ndarray:
        """The 2 x 3 affine map photo pixel -> heatmap coordinate (for warping a heatmap onto the photo)."""
        (sx, sy), (rx, ry), (top, _, left, _) = self.scale, self.ratio, self.border
        return np.array([[sx / rx, 0, left / rx], [0, sy / ry, top / ry]], np.float64)


def padded_size(size: int, mode: str, value: int, add: int = 0) -> int:
    """mmdetection's test-time target size: 'logical_or' gives (size | value) + add, 'size_divisor' rounds up."""
    if mode == "logical_or":
        return (size | value) + add
    if mode == "size_divisor":
        return -(-size // value) * value
    raise ValueError(f"unknown padding mode {mode!r}")


def center_pad(image: np.ndarray, target_h: int, target_w: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Place `image` (H, W, C) in a zero canvas of the target size with the two centres aligned, as
    RandomCenterCropPad does in test mode (`_crop_image_and_paste` with the image centre). A target smaller than the
    image by one pixel (CornerNet's `size | 127` when size is already 128k - 1) crops that pixel, as it does there.
    Returns the canvas and the border (top, bottom, left, right) of the pasted image in it."""
    height, width = image.shape[:2]
    cy, cx = height // 2, width // 2
    x0, x1 = max(0, cx - target_w // 2), min(cx + target_w // 2, width)
    y0, y1 = max(0, cy - target_h // 2), min(cy + target_h // 2, height)
    left, right, top, bottom = cx - x0, x1 - cx, cy - y0, y1 - cy
    canvas_cy, canvas_cx = target_h // 2, target_w // 2
    canvas = np.zeros((target_h, target_w) + image.shape[2:], image.dtype)  # mmdet fills with mean=[0, 0, 0]
    canvas[canvas_cy - top:canvas_cy + bottom, canvas_cx - left:canvas_cx + right] = image[y0:y1, x0:x1]
    return canvas, (canvas_cy - top, canvas_cy + bottom, canvas_cx - left, canvas_cx + right)


def working_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The (w, h) the network works at: the photo's, or scaled down so its longer side is `max_side`."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    factor = max_side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def preprocess(rgb: np.ndarray, pad: tuple[str, int, int], max_side: int | None = None,
               device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, Geometry]:
    """RGB uint8 (H, W, 3) -> normalised (1, 3, h, w) input and its Geometry.

    mmdetection's test pipeline: no resize (ours may shrink to `max_side` first), central zero padding by the
    `pad` rule (mode, value, extra pixels), then (x - mean) / std in RGB order, so padding becomes -mean / std.
    """
    check_rgb(rgb)
    height, width = rgb.shape[:2]
    size = working_size(width, height, max_side)
    image = rgb if size == (width, height) else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    target_h, target_w = padded_size(size[1], *pad), padded_size(size[0], *pad)
    canvas, border = center_pad(image.astype(np.float32), target_h, target_w)
    x = torch.from_numpy(canvas).to(device).permute(2, 0, 1).unsqueeze(0)
    mean = torch.tensor(MEAN_RGB, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD_RGB, device=x.device).view(1, 3, 1, 1)
    x = ((x - mean) / std).to(dtype)
    geometry = Geometry((width, height), size, (target_w, target_h), tuple(float(b) for b in border))
    return x, geometry


def check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        described = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"The detectors need an RGB uint8 array of shape (H, W, 3); got a {described}")


# ----------------------------------------------------------------------------------------------------------------
# Peaks (mmdetection's gaussian_target helpers, rewritten)


def local_maximum(heat: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """Zero every value that is not the maximum of its kernel x kernel neighbourhood: the heatmap "NMS"."""
    pooled = F.max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2)
    return heat * (pooled == heat)


def top_k(heat: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """The k highest values of (B, C, H, W) over classes and positions.

    Returns scores, flat positions (row * W + column), classes, rows and columns (float), each (B, k).
    """
    batch, _, height, width = heat.shape
    scores, flat = torch.topk(heat.reshape(batch, -1), k)
    classes = torch.div(flat, height * width, rounding_mode="floor")
    positions = flat % (height * width)
    rows = torch.div(positions, width, rounding_mode="floor").float()
    columns = (positions % width).float()
    return scores, positions, classes, rows, columns


def gather(feature: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Values of (B, C, H, W) at flat positions (B, K) -> (B, K, C)."""
    batch, channels = feature.shape[:2]
    flat = feature.reshape(batch, channels, -1)
    return flat.gather(2, positions.unsqueeze(1).expand(-1, channels, -1)).permute(0, 2, 1)


# ----------------------------------------------------------------------------------------------------------------
# Soft-NMS (Bodla et al. 2017), as mmcv's CPU soft_nms computes it; torchvision only has hard NMS


def soft_nms(boxes, scores, method: str = "gaussian", sigma: float = 0.5, iou_threshold: float = 0.3,
             min_score: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Greedy soft-NMS: take the best box, decay the others' scores by their overlap with it, repeat.

    Decay: gaussian exp(-iou^2 / sigma) (iou_threshold unused, as in mmcv); linear 1 - iou where iou >= threshold;
    naive 0 where iou >= threshold (hard NMS). Boxes falling below `min_score` are dropped. Returns the kept indices
    in the order taken (decreasing decayed score) and their decayed scores.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    decayed = np.array(scores, np.float32).reshape(-1)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.arange(len(boxes))
    kept, kept_scores = [], []
    while alive.size:
        best = alive[np.argmax(decayed[alive])]
        kept.append(best)
        kept_scores.append(decayed[best])
        alive = alive[alive != best]
        if not alive.size:
            break
        iou = _iou_one_to_many(boxes[best], areas[best], boxes[alive], areas[alive])
        decayed[alive] *= _decay(iou, method, sigma, iou_threshold)
        alive = alive[decayed[alive] >= min_score]
    return np.asarray(kept, np.int64), np.asarray(kept_scores, np.float32)


def batched_soft_nms(boxes, scores, labels, **settings) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS within each class: mmcv's batched_nms shifts each class's boxes by label * (max coordinate + 1), so
    boxes of different classes never overlap, then runs one soft-NMS."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    shift = np.asarray(labels, np.float32)[:, None] * (boxes.max() + 1)
    return soft_nms(boxes + shift, scores, **settings)


def _iou_one_to_many(box, area, others, other_areas) -> np.ndarray:
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = width * height
    with np.errstate(divide="ignore", invalid="ignore"):  # two empty boxes: 0 / 0, no overlap
        return np.nan_to_num(inter / (area + other_areas - inter)).astype(np.float32)


def _decay(iou: np.ndarray, method: str, sigma: float, iou_threshold: float) -> np.ndarray:
    if method == "gaussian":
        return np.exp(-(iou * iou) / sigma)
    if method == "linear":
        return np.where(iou >= iou_threshold, 1 - iou, 1).astype(np.float32)
    if method == "naive":
        return np.where(iou >= iou_threshold, 0, 1).astype(np.float32)
    raise ValueError(f"soft-NMS method must be gaussian, linear or naive; got {method!r}")


# ----------------------------------------------------------------------------------------------------------------
# Results


@dataclass
class Peaks:
    """Heatmap maxima (after the 3x3 max-pool), best first, in photo coordinates."""

    points: np.ndarray  # (K, 2) x, y
    scores: np.ndarray  # (K,)
    label_ids: np.ndarray  # (K,) int64
    embeddings: np.ndarray | None = None  # (K,) CornerNet's associative embedding at each corner

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class Detections:
    """Boxes in photo pixels, best score first, and the heatmaps they came from."""

    boxes: np.ndarray  # (N, 4) float32 x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32
    label_ids: np.ndarray  # (N,) int64, indices into COCO_CLASSES
    geometry: Geometry
    heatmaps: dict[str, np.ndarray]  # "center" | "top_left", "bottom_right": (80, h, w) float32 in [0, 1]
    peaks: dict[str, Peaks]  # same names: the top-k maxima of each heatmap
    centers: np.ndarray | None = None  # CenterNet: (N, 2) the centre each box grew from
    corner_embeddings: np.ndarray | None = None  # CornerNet: (N, 2) top-left and bottom-right embedding values
    corner_scores: np.ndarray | None = None  # CornerNet: (N, 2) top-left and bottom-right heatmap values

    @property
    def labels(self) -> list[str]:
        return [COCO_CLASSES[i] for i in self.label_ids]

    def __len__(self) -> int:
        return len(self.scores)


def select(found: Detections, score_threshold: float = 0.0, classes: Iterable[str] | str | None = None) -> Detections:
    """The detections scoring at least `score_threshold` whose class is in `classes` (names or groups; None: all)."""
    allowed = expand_classes(classes)
    keep = found.scores >= score_threshold
    if allowed is not None:
        keep &= np.array([label in allowed for label in found.labels], bool).reshape(-1)
    pick = lambda values: None if values is None else values[keep]
    return replace(found, boxes=found.boxes[keep], scores=found.scores[keep], label_ids=found.label_ids[keep],
                   centers=pick(found.centers), corner_embeddings=pick(found.corner_embeddings),
                   corner_scores=pick(found.corner_scores))


def expand_classes(classes: Iterable[str] | str | None) -> frozenset[str] | None:
    """The instance tab's class filter (COCO names and the groups people, vehicles, animals; comma-separated text)."""
    from .instance_segmentation import expand_classes as instance_classes  # the same names and groups in every tab

    return instance_classes(classes)


def class_index(name: str | None) -> int | None:
    """A COCO class name -> its label id; None, "" or "all" -> None (every class)."""
    if name in (None, "", "all"):
        return None
    try:
        return COCO_CLASSES.index(name.strip().lower())
    except ValueError:
        raise ValueError(f"unknown COCO class {name!r}") from None


def numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints: mmdetection's files


def fetch_checkpoint(name: str, progress: weights.ProgressCallback | None = None) -> Path:
    """A verified local copy of a catalogued mmdetection checkpoint.

    No full SHA-256 is published for these files, so the weights manager records the first download's hash; openmmlab
    names each file after the first 8 hex digits of its SHA-256 (`..._<date>-<8 hex>.pth`, made by mmdetection's
    publish_model.py), and we check that prefix too, so a corrupted first download is caught.
    """
    checkpoint = weights.get(name)
    path = weights.fetch(checkpoint, progress)
    prefix = Path(checkpoint.filename).stem.rsplit("-", 1)[-1]
    actual = weights.sha256_of(path)
    if not actual.startswith(prefix):
        raise weights.ChecksumError(
            f"{path} is not {checkpoint.name}: its SHA-256 {actual} does not start with {prefix}, the prefix in the "
            f"official file name. Delete it (and {path.name}.sha256 beside it) and download it again from "
            f"{checkpoint.url}")
    return path


def read_mmdet_checkpoint(path: Path | str) -> dict:
    """The state dict of an mmdetection checkpoint file, opened with weights_only=True only.

    mmdetection v2 saves {"meta": {...}, "state_dict": {...}} (publish_model.py drops "optimizer"). "meta" holds plain
    values (mmdet/mmcv versions, the config as text, CLASSES, epoch, iter, time), which the weights_only unpickler
    accepts. If a file's meta held anything else (a numpy scalar, a class), torch.load(weights_only=True) refuses the
    whole file; we then say so and stop, rather than unpickle objects (weights_only=False is never used).
    """
    try:
        return weights.load_state_dict(path)
    except weights.WeightsError as error:
        if "Weights only load failed" not in str(error):
            raise  # missing or not a checkpoint: the weights manager's message says so
        refused = _refused_global(error.__context__)
        raise weights.WeightsError(
            f"{Path(path).name} cannot be opened safely: mmdetection checkpoints keep their weights beside a 'meta' "
            f"dict, and this file holds an object that torch.load(weights_only=True) refuses ({refused}). Re-save "
            "only its 'state_dict' (e.g. torch.load(f, weights_only=True) inside "
            "torch.serialization.safe_globals([that object]), then torch.save(checkpoint['state_dict'], ...)) and "
            "give this app that file."
        ) from None


def _refused_global(error: BaseException | None) -> str:
    """The line of torch's weights_only error that names the refused object (the weights manager keeps only the
    first line of the message)."""
    for line in str(error or "").splitlines():
        if "GLOBAL" in line or "global" in line.split(":")[0]:
            return line.strip()
    return "see torch's message"


def unwrap_state_dict(state: dict) -> dict:
    """Quirk shared by every mmdetection file: the weights sit under "state_dict" next to "meta" (a plain state dict,
    e.g. one re-saved as `read_mmdet_checkpoint` suggests, passes through). A `module.` prefix from a DataParallel
    save is dropped too."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return {key.removeprefix("module."): value for key, value in state.items()}


def state_dict_into(net: nn.Module, state: dict, label: str) -> nn.Module:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise weights.WeightsError(
            f"This checkpoint does not fit {label}: {str(error).splitlines()[0]} ... "
            "(expected the official mmdetection layout)") from None
    return net


def ready(net: nn.Module, device: torch.device) -> nn.Module:
    net.eval().requires_grad_(False).to(device)
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)  # faster convolutions on tensor cores
    if runtime.half_precision(device):
        net.half()
    return net


def cached_load(family: str, name: str, device: torch.device | None, checkpoint_file: str | None, progress,
                build, convert) -> nn.Module:
    """One shared network per model, device and weights; `convert` is the family's `_convert_state_dict`."""
    device = device or runtime.device()
    path = Path(checkpoint_file) if checkpoint_file is not None else None

    def loader() -> nn.Module:
        state = read_mmdet_checkpoint(path if path is not None else fetch_checkpoint(name, progress))
        return ready(state_dict_into(build(name), convert(name, state), name), device)

    return runtime.MODELS.get(cache_key(family, name, device, path), loader)


def cache_key(family: str, name: str, device: torch.device, checkpoint_file: Path | str | None = None) -> tuple:
    """The runtime.MODELS key of a network: family, model, weights (a user's file by its content hash), device."""
    content = weights.sha256_of(Path(checkpoint_file)) if checkpoint_file is not None else None
    return (family, name, content, str(device))


# ----------------------------------------------------------------------------------------------------------------
# Teaching views


PEAK_COLOR = "#00e5ff"
TOP_LEFT_COLOR = "#00e5ff"
BOTTOM_RIGHT_COLOR = "#ff3df5"
BOX_COLOR = "#00ff88"


def class_map(found: Detections, name: str, class_id: int | None = None) -> np.ndarray:
    """One heatmap as (h, w): the maximum over the 80 classes, or one class's map."""
    maps = found.heatmaps[name]
    return maps.max(axis=0) if class_id is None else maps[class_id]


def map_on_image(found: Detections, name: str, class_id: int | None = None) -> np.ndarray:
    """A heatmap warped onto the photo (H, W) float32: each photo pixel reads the heatmap where the decoder would
    put it, so the peaks land where the boxes' centres or corners are."""
    values = class_map(found, name, class_id).astype(np.float32)
    width, height = found.geometry.image_size
    return cv2.warpAffine(values, found.geometry.image_to_feature_matrix(), (width, height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)


def peaks_shown(peaks: Peaks, min_score: float, class_id: int | None = None) -> np.ndarray:
    keep = peaks.scores >= min_score
    if class_id is not None:
        keep &= peaks.label_ids == class_id
    return keep


def heatmap_view(rgb: np.ndarray, found: Detections, name: str, class_id: int | None = None,
                 min_score: float = 0.3, color: str = PEAK_COLOR) -> np.ndarray:
    """The heatmap over the photo (inferno, opaque where high) with its peaks at or above `min_score` marked."""
    image = draw.overlay(_dim(rgb, 0.7), map_on_image(found, name, class_id))  # dimmed: the small blobs glow
    peaks = found.peaks[name]
    keep = peaks_shown(peaks, min_score, class_id)
    if not keep.any():
        return image
    return draw.points(image, peaks.points[keep].reshape(1, -1, 2), color, radius=_marker_radius(rgb))


def detections_view(rgb: np.ndarray, found: Detections) -> np.ndarray:
    captions = [f"{label} {score:.2f}" for label, score in zip(found.labels, found.scores)]
    return draw.boxes(rgb, drawable(found.boxes), captions, color=BOX_COLOR)


def drawable(boxes: np.ndarray) -> np.ndarray:
    """Boxes with x1 <= x2 and y1 <= y2. CenterNet's decoder (like mmdetection's) does not order the corners: an
    untrained network can regress a negative width; trained weights do not, and the boxes are reported as decoded."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], axis=1)


def centers_view(rgb: np.ndarray, found: Detections) -> np.ndarray:
    """CenterNet's idea in one picture: each box is a centre point (a heatmap peak) plus a regressed width and
    height, drawn as the two lines through the centre that span the box."""
    boxes = drawable(found.boxes)
    image = draw.boxes(_dim(rgb), boxes, None, color=BOX_COLOR, width=1)
    lines = [((x1, (y1 + y2) / 2), (x2, (y1 + y2) / 2)) for x1, y1, x2, y2 in boxes] + \
            [(((x1 + x2) / 2, y1), ((x1 + x2) / 2, y2)) for x1, y1, x2, y2 in boxes]
    image = _lines(image, lines, [BOX_COLOR] * len(lines))
    centers = found.centers if found.centers is not None else np.zeros((0, 2), np.float32)
    return draw.points(image, centers.reshape(1, -1, 2), PEAK_COLOR, _marker_radius(rgb)) if len(centers) else image


def pairs_view(rgb: np.ndarray, found: Detections) -> np.ndarray:
    """CornerNet's idea in one picture: every box joins a top-left corner to a bottom-right corner whose embeddings
    are close (|e_tl - e_br| <= 0.5); each pair is a line, with the two embedding values written at its ends."""
    image = _dim(rgb)
    if not len(found):
        return image
    colors = [draw.INSTANCE_COLORS[i % len(draw.INSTANCE_COLORS)] for i in range(len(found))]
    image = _lines(image, [((x1, y1), (x2, y2)) for x1, y1, x2, y2 in found.boxes], colors)
    image = draw.points(image, found.boxes[:, None, 0:2], TOP_LEFT_COLOR, _marker_radius(rgb))
    image = draw.points(image, found.boxes[:, None, 2:4], BOTTOM_RIGHT_COLOR, _marker_radius(rgb))
    if found.corner_embeddings is None:
        return image
    texts = []
    for (x1, y1, x2, y2), (tl, br) in zip(found.boxes, found.corner_embeddings):
        texts += [(int(x1), int(y1), f"{tl:+.2f}"), (int(x2), int(y2), f"{br:+.2f}")]
    return draw_masks.texts(image, texts)


def _marker_radius(rgb: np.ndarray) -> int:
    return max(2, round(max(rgb.shape[:2]) / 120))


def _dim(rgb: np.ndarray, keep: float = 0.55) -> np.ndarray:
    """The photo darkened, so lines and points read on it."""
    return (rgb.astype(np.float32) * keep).round().astype(np.uint8)


def _lines(rgb: np.ndarray, segments: list, colors: list[str]) -> np.ndarray:
    image = np.ascontiguousarray(rgb).copy()
    width = max(1, round(max(rgb.shape[:2]) / 400))
    for ((xa, ya), (xb, yb)), color in zip(segments, colors):
        value = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
        cv2.line(image, (int(round(xa)), int(round(ya))), (int(round(xb)), int(round(yb))), value, width,
                 cv2.LINE_AA)
    return image


# ----------------------------------------------------------------------------------------------------------------
# The tab's pipeline


# Images each model's run returns, in display order, with a caption for the UI.
VIEWS = {
    "centernet": (
        ("detections", "Detections"),
        ("center_heatmap", "Centre heatmap (peaks marked)"),
        ("centers", "Each box = centre peak + regressed width and height"),
    ),
    "cornernet": (
        ("detections", "Detections"),
        ("top_left_heatmap", "Top-left corner heatmap (peaks marked)"),
        ("bottom_right_heatmap", "Bottom-right corner heatmap (peaks marked)"),
        ("corner_pairs", "Corner pairs and their embedding values"),
    ),
}


def family(model: str):
    """The module that implements `model`."""
    try:
        return importlib.import_module(f".{MODEL_MODULES[model]}", __package__)
    except KeyError:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODEL_MODULES)}") from None


def views(model: str) -> tuple[tuple[str, str], ...]:
    return VIEWS[MODEL_MODULES[model]]


def detection_table(found: Detections) -> list[dict]:
    rows = []
    for i, (box, score, label) in enumerate(zip(found.boxes, found.scores, found.labels)):
        row = {"label": label, "score": round(float(score), 4), "box": [round(float(v), 1) for v in box]}
        if found.centers is not None:
            row["center"] = [round(float(v), 1) for v in found.centers[i]]
        if found.corner_embeddings is not None:
            row["embeddings"] = {"top_left": round(float(found.corner_embeddings[i, 0]), 3),
                                 "bottom_right": round(float(found.corner_embeddings[i, 1]), 3)}
            row["corner_scores"] = {"top_left": round(float(found.corner_scores[i, 0]), 4),
                                    "bottom_right": round(float(found.corner_scores[i, 1]), 4)}
        rows.append(row)
    return rows


def render(rgb: np.ndarray, model: str, found: Detections, class_id: int | None, min_score: float) -> dict:
    """Every view of `views(model)` for one result."""
    if MODEL_MODULES[model] == "centernet":
        return {"detections": detections_view(rgb, found),
                "center_heatmap": heatmap_view(rgb, found, "center", class_id, min_score),
                "centers": centers_view(rgb, found)}
    return {"detections": detections_view(rgb, found),
            "top_left_heatmap": heatmap_view(rgb, found, "top_left", class_id, min_score, TOP_LEFT_COLOR),
            "bottom_right_heatmap": heatmap_view(rgb, found, "bottom_right", class_id, min_score,
                                                 BOTTOM_RIGHT_COLOR),
            "corner_pairs": pairs_view(rgb, found)}


def run(loaded: LoadedImage, model: str = DEFAULT_MODEL, checkpoint: str | None = None, progress=None,
        **options) -> TaskOutput:
    options = {**TASK.parse_options([]), **options}
    module = family(model)
    allowed = expand_classes(options["classes"])
    class_id = class_index(options["heatmap_class"])
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = module.load(model, device, checkpoint, progress)
    with runtime.stopwatch(device) as model_time:
        found = module.predict(net, loaded.rgb, options["score_threshold"], allowed, options["working_size"])
    with runtime.stopwatch() as draw_time:
        images = render(loaded.rgb, model, found, class_id, options["score_threshold"])
    geometry = found.geometry
    record = {
        "task": TASK_ID, "model": model, "checkpoint": checkpoint or model, "device": runtime.describe(device),
        "input_size": list(loaded.original_size), "size": list(geometry.image_size),
        "working_size": list(geometry.working_size), "network_input": list(geometry.input_size),
        "heatmap_size": list(geometry.feature_size), "border_top_bottom_left_right": list(geometry.border),
        "classes": sorted(allowed) if allowed else "all", "heatmap_class": options["heatmap_class"],
        "detections": detection_table(found), "detection_count": len(found), "notes": loaded.notes,
        "ms": {"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1),
               "draw": round(draw_time["ms"], 1)},
    }
    found_text = f"{len(found)} object{'s' if len(found) != 1 else ''}" if len(found) else "nothing found"
    w, h = geometry.input_size
    summary = (f"{model} on {record['device']}: {found_text} (network input {w}x{h}, heatmaps "
               f"{geometry.feature_size[0]}x{geometry.feature_size[1]}), {model_time['ms']:.0f} ms")
    return TaskOutput(images, record, summary)


def _preload(model: str) -> None:
    family(model).load(model)


TASK = Task(
    id=TASK_ID,
    title="CornerNet / CenterNet: objects as keypoints",
    models=tuple(MODEL_MODULES),
    default_model=DEFAULT_MODEL,
    options=(
        Option("score_threshold", 0.3, "boxes (and heatmap peaks) scoring below this are not shown", minimum=0.0,
               maximum=1.0),
        Option("classes", "", "comma-separated COCO names or the groups people, vehicles, animals (empty: all)"),
        Option("working_size", DEFAULT_WORKING_SIZE, "longest side the network sees, px: larger photos are scaled "
               "down to it (0: the photo's own size, as mmdetection tests). CornerNet-Hourglass104 is slow on a "
               "CPU: several seconds at 512 on two cores; 256 is about 4x faster", minimum=0, maximum=2048),
        Option("heatmap_class", "all", "which class the heatmap views show (all: the maximum over the 80 classes)",
               choices=("all",) + COCO_CLASSES),
    ),
    max_side=2048,
    run=run,
    preload=_preload,
)

# Importing the tab's module registers every checkpoint it uses (tasks.load_all() relies on it: `app.py download`).
# At the end, because both families import the shared pieces above.
from . import centernet, cornernet  # noqa: E402,F401
