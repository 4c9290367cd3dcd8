"""YOLACT (Bolya et al., ICCV 2019): instance masks as linear combinations of prototype masks, shown step by step.

A protonet paints K = 32 prototype masks for the whole image; for every detection the head predicts K coefficients,
and the detection's mask is sigmoid(prototypes . coefficients), cropped to its box, scaled up to the image and
thresholded at 0.5. No RoI pooling, one stage: that is the idea the instance tab's prototype view shows.

This module: the official COCO checkpoints (dbolya/yolact, now on Hugging Face), loading through models.weights,
test-time decoding as the reference does it (priors, box decoding with variances, Fast NMS, mask assembly) on CPU or
CUDA, and `predict()` returning `Instances` (models/instances.py) plus the prototypes and coefficients. The network
itself is in models/yolact_arch.py, the prototype pictures in models/yolact_views.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoints, runtime, weights
from .images import check_rgb
from .instances import COCO_CATEGORIES, Instances, expand_classes
from .yolact_arch import YOLACT_BASE, YOLACT_RESNET50, Yolact, YolactConfig, YolactOutput

TASK_ID = "instance"
_HF = "https://huggingface.co/dbolya"
_LICENSE = "MIT (dbolya/yolact code and weights); trained on COCO 2017"
_FORMAT = ("A plain state dict, read with weights_only=True and loaded strictly after _convert_state_dict drops the "
           "training-only semantic_seg_conv.* and the legacy keys the reference's Yolact.load_weights drops "
           "(backbone.layer*, fpn.downsample_layers.2+).")

CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        checkpoints.Checkpoint(
            name="yolact-r101", task=TASK_ID, url=f"{_HF}/yolact-base/resolve/main/yolact_base_54_800000.pth?download=true",
            filename="yolact_base_54_800000.pth", sha256=None, bytes=None, license=_LICENSE, source=f"{_HF}/yolact-base",
            notes="yolact_base_config: ResNet-101-FPN at 550 px, COCO mask mAP 29.8 (README). " + _FORMAT + " Hugging "
            "Face's pickle scan of the file lists only OrderedDict, FloatStorage, LongStorage and "
            "_rebuild_tensor_v2 (so BatchNorm counters are in it) and its size as 204 MB; no SHA-256 is published, "
            "so the first download's hash is recorded. The reference's tensors for this config total 201.05 MB; "
            "the extra ~2.4 MB suggests the file still holds fpn.downsample_layers.2 (590,080 values, a v1.0 "
            "leftover), which the conversion drops (inferred from sizes, not checked against the file).",
        ),
        checkpoints.Checkpoint(
            name="yolact-r50", task=TASK_ID, url=f"{_HF}/yolact-resnet50/resolve/main/yolact_resnet50_54_800000.pth?download=true",
            filename="yolact_resnet50_54_800000.pth", sha256=None, bytes=None, license=_LICENSE, source=f"{_HF}/yolact-resnet50",
            notes="yolact_resnet50_config: ResNet-50-FPN at 550 px, COCO mask mAP 28.2 (README). " + _FORMAT + " The "
            "Google Drive copy that OpenVINO's model zoo pins (models/public/yolact-resnet50-fpn-pytorch/model.yml) "
            "is 127,300,392 bytes with SHA-256 c12bb7a7e0343281db7f1407b376970bb52651f121d0b60bc4a49207acb6d6d7; "
            "the Hugging Face upload is probably the same file, but that is unconfirmed, so no hash is enforced "
            "before the first download records one. That size is the reference's 124.87 MB of tensors plus about "
            "one more 256x256 3x3 conv: fpn.downsample_layers.2, dropped by the conversion (inferred).",
        ),
    )
}
checkpoints.register(*CHECKPOINTS.values())


@dataclass(frozen=True)
class YolactSpec:
    name: str
    label: str
    checkpoint: str
    config: YolactConfig


MODELS = {
    spec.name: spec
    for spec in (
        YolactSpec("yolact-r101", "YOLACT ResNet-101-FPN 550 (dbolya, COCO)", "yolact-r101", YOLACT_BASE),
        YolactSpec("yolact-r50", "YOLACT ResNet-50-FPN 550 (dbolya, COCO)", "yolact-r50", YOLACT_RESNET50),
    )
}
DEFAULT_MODEL = "yolact-r101"

# FastBaseTransform's normalisation (data/config.py MEANS / STD are BGR; these are the same numbers in RGB order).
MEAN_RGB = (123.68, 116.78, 103.94)
STD_RGB = (58.40, 57.12, 57.38)
# YOLACT's 80 contiguous classes, in order, as indices into the 91-entry COCO_CATEGORIES (COCO category ids):
# the inverse of the reference's COCO_LABEL_MAP, i.e. every id that is not "N/A".
CATEGORY_IDS = tuple(i for i, name in enumerate(COCO_CATEGORIES) if i > 0 and name != "N/A")
CLASS_NAMES = tuple(COCO_CATEGORIES[i] for i in CATEGORY_IDS)


# --- building and loading ----------------------------------------------------------------------------------------


def build(name: str = DEFAULT_MODEL, input_size: int | None = None) -> Yolact:
    """The architecture with random weights, laid out like its official checkpoint (after conversion).
    `input_size` other than 550 is for tests and experiments: prior sizes scale with it."""
    config = MODELS[name].config
    return Yolact(config if input_size is None else config.at_size(input_size))


def _convert_state_dict(state: dict, net: torch.nn.Module) -> dict:
    """Make an official checkpoint fit our inference-only module (every change named):

    * `semantic_seg_conv.*`: training-only. yolact_base/resnet50 set `use_semantic_segmentation_loss=True`, which
      adds a 1x1 conv (256 -> 80) on P3 that the reference runs only when training (an auxiliary loss). No other
      training flag of these configs is on (class existence, mask scoring, maskiou, instance coefficients, coefficient
      gate: all off), so this is the only training-only module.
    * `backbone.layer*` (not `backbone.layers.*`) and `fpn.downsample_layers.N` for N >= 2: legacy keys that the
      reference's own `Yolact.load_weights` deletes before loading (old backbone names; v1.0 checkpoints had more FPN
      downsample layers than the config uses).
    * a `state_dict`/`model` wrapper or `module.` prefixes (a checkpoint saved from DataParallel), and BatchNorm
      `num_batches_tracked` counters missing from files saved by old PyTorch (unused at inference).
    """
    extra_levels = len(net.fpn.downsample_layers)
    out = {}
    for key, value in weights.unwrap(state, keys=("state_dict", "model")).items():
        if key.startswith("semantic_seg_conv."):
            continue
        if key.startswith("backbone.layer") and not key.startswith("backbone.layers."):
            continue
        if key.startswith("fpn.downsample_layers.") and int(key.split(".")[2]) >= extra_levels:
            continue
        out[key] = value
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in out:
            out[key] = torch.zeros_like(value)
    return out


def from_state(name: str, state: dict, input_size: int | None = None) -> Yolact:
    net = build(name, input_size)
    return weights.strict_load(net, _convert_state_dict(state, net), MODELS[name].label,
                               "dbolya/yolact's state-dict layout for this config")


def load(name: str = DEFAULT_MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> Yolact:
    """The network with its official COCO weights (or a user's `checkpoint_file` in the same layout), in eval mode
    on `device` (half precision and channels-last on CUDA; decoding stays in float32), shared through
    runtime.MODELS."""
    if name not in MODELS:
        raise weights.WeightsError(f"Unknown YOLACT model {name!r}; known: {', '.join(MODELS)}")
    device = device or runtime.device()

    def loader() -> Yolact:
        source = weights.fetch(MODELS[name].checkpoint, progress) if checkpoint_file is None else checkpoint_file
        return runtime.prepare(from_state(name, weights.load_state_dict(source)), device)

    return runtime.cached_model("yolact", name, device, checkpoint_file, loader)


def cache_key(name: str, device: torch.device, checkpoint_file=None) -> tuple:
    """The runtime.MODELS key load() uses (tests and benchmarks seed the cache with it)."""
    return runtime.model_key("yolact", name, device, checkpoint_file)


# --- preprocessing and decoding --------------------------------------------------------------------------------------


def preprocess(rgb: np.ndarray, input_size: int = 550, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """FastBaseTransform for an RGB image: bilinear resize to input_size x input_size (aspect ratio not kept,
    no antialiasing, like the reference), then (x - mean) / std per channel. Returns 1 x 3 x S x S."""
    pixels = torch.from_numpy(np.array(rgb)).to(device)  # a copy: inputs may be read-only arrays
    x = pixels.permute(2, 0, 1)[None].float()
    x = F.interpolate(x, (input_size, input_size), mode="bilinear", align_corners=False)
    mean = torch.tensor(MEAN_RGB, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD_RGB, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype)


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor, variances=(0.1, 0.2)) -> torch.Tensor:
    """SSD's box decoding: centre = prior centre + loc_xy * v0 * prior size; size = prior size * exp(loc_wh * v1).
    Returns x1, y1, x2, y2 in the priors' units (fractions of the image)."""
    centres = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(loc[:, 2:] * variances[1])
    return torch.cat([centres - sizes / 2, centres + sizes / 2], dim=1)


def center_to_corners(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], dim=1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in `a` (... x N x 4) with every box in `b` (... x M x 4), x1 y1 x2 y2: ... x N x M."""
    top_left = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    bottom_right = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter)


def fast_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5, top_k: int = 200,
             max_detections: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fast NMS (YOLACT section 3.3), per class, all classes at once.

    boxes: P x 4 (x1 y1 x2 y2); scores: C x P (class-major). For each class the top_k boxes by score form a
    K x K IoU matrix X; its diagonal and lower triangle are zeroed, so column j holds j's IoU with every
    higher-scoring box; a detection is kept when the column-wise max is not above the threshold. Unlike greedy NMS,
    a box that is itself suppressed still suppresses others: one matrix operation instead of a sequential loop.
    (Ties: the paper writes "keep where K < t", the reference code keeps K <= t; they differ only at exactly t,
    and we follow the code so results match the official evaluation.) No second score threshold, as in the
    reference. Survivors of all classes are sorted by score and the best max_detections kept.

    Returns (prior indices, class indices into the rows of `scores`, scores), best first.
    """
    scores, order = scores.sort(dim=1, descending=True, stable=True)
    order, scores = order[:, :top_k], scores[:, :top_k]
    ranked = boxes[order]  # C x K x 4, best first within each class
    overlap = box_iou(ranked, ranked).triu(diagonal=1)  # X_kij, kept only for i < j (i scores higher)
    worst = overlap.max(dim=1).values  # C x K: for each column j, the max over rows i
    keep = worst <= iou_threshold
    classes = torch.arange(scores.shape[0], device=scores.device)[:, None].expand_as(keep)[keep]
    indices, kept_scores = order[keep], scores[keep]
    kept_scores, best = kept_scores.sort(descending=True, stable=True)
    best = best[:max_detections]
    return indices[best], classes[best], kept_scores[:max_detections]


def crop_window(boxes: torch.Tensor, height: int, width: int, padding: int = 1) -> torch.Tensor:
    """Each box (fractions, x1 y1 x2 y2) as a window on an height x width grid, widened by `padding` cells and
    clamped to the grid: the reference's crop (sanitize_coordinates, cast=False). A cell (row r, column c) is
    inside when x1 <= c < x2 and y1 <= r < y2. Returns N x 4 float (x1, y1, x2, y2)."""
    xs = boxes[:, 0::2] * width
    ys = boxes[:, 1::2] * height
    x1 = (xs.min(dim=1).values - padding).clamp(min=0)
    x2 = (xs.max(dim=1).values + padding).clamp(max=width)
    y1 = (ys.min(dim=1).values - padding).clamp(min=0)
    y2 = (ys.max(dim=1).values + padding).clamp(max=height)
    return torch.stack([x1, y1, x2, y2], dim=1)


def crop(maps: torch.Tensor, boxes: torch.Tensor, padding: int = 1) -> torch.Tensor:
    """Zero every value of N x h x w `maps` outside its detection's crop window (see crop_window)."""
    _, height, width = maps.shape
    window = crop_window(boxes, height, width, padding)
    cols = torch.arange(width, device=maps.device, dtype=window.dtype)
    rows = torch.arange(height, device=maps.device, dtype=window.dtype)
    inside_x = (cols[None] >= window[:, 0:1]) & (cols[None] < window[:, 2:3])  # N x w
    inside_y = (rows[None] >= window[:, 1:2]) & (rows[None] < window[:, 3:4])  # N x h
    return maps * (inside_y[:, :, None] & inside_x[:, None, :]).to(maps.dtype)


def assemble(prototypes: torch.Tensor, coefficients: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The masks at prototype resolution: sigmoid(prototypes . coefficients), cropped to each box.

    prototypes K x h x w, coefficients N x K, boxes N x 4 (fractions). Returns N x h x w probabilities."""
    linear = torch.einsum("khw,nk->nhw", prototypes, coefficients)
    return crop(torch.sigmoid(linear), boxes)


def upscale(masks: torch.Tensor, height: int, width: int, threshold: float = 0.5, chunk: int = 16) -> torch.Tensor:
    """N x h x w mask probabilities -> N x height x width bool: bilinear (align_corners=False), then > threshold.
    In chunks, so a hundred detections on a large photo do not need gigabytes of floats at once."""
    out = torch.zeros((len(masks), height, width), dtype=torch.bool, device=masks.device)
    for start in range(0, len(masks), chunk):
        part = F.interpolate(masks[None, start:start + chunk], (height, width), mode="bilinear", align_corners=False)
        out[start:start + chunk] = part[0] > threshold
    return out


def to_pixels(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Fractions -> pixels, ordered and clipped to the image (the reference's sanitize_coordinates, without its
    final truncation to integers)."""
    xs, ys = boxes[:, 0::2] * width, boxes[:, 1::2] * height
    return torch.stack([xs.min(1).values.clamp(min=0), ys.min(1).values.clamp(min=0),
                        xs.max(1).values.clamp(max=width), ys.max(1).values.clamp(max=height)], dim=1)


# --- prediction ----------------------------------------------------------------------------------------------------


@dataclass
class YolactResult:
    """The tab's Instances plus what makes YOLACT's masks: prototypes and each detection's coefficients.

    `instances.proposals` holds each detection's prior (anchor) box, the box before regression, in the same order
    as the detections: the one-stage counterpart of Mask R-CNN's RPN proposals view."""

    instances: Instances
    prototypes: np.ndarray  # K x h x w float32 (32 x 138 x 138 at 550 px): the protonet's output after ReLU
    coefficients: np.ndarray  # N x K float32 in [-1, 1]; row i belongs to instances[i]
    boxes_relative: np.ndarray  # N x 4 float32: decoded boxes as fractions of the image (what crops the masks)
    class_indices: np.ndarray  # N int64: YOLACT's contiguous class index, 0..79
    mask_threshold: float = 0.5

    def __len__(self) -> int:
        return len(self.instances)


@dataclass
class AssemblySteps:
    """One detection's mask, step by step, as float maps at prototype resolution (h x w), plus the final mask."""

    index: int  # the detection (0-based)
    coefficients: np.ndarray  # K
    order: np.ndarray  # K prototype indices, largest |coefficient| first
    weighted: np.ndarray  # K x h x w: coefficient_k * prototype_k
    linear: np.ndarray  # h x w: their sum (the linear combination)
    sigmoid: np.ndarray  # h x w: sigmoid(linear), the mask probability
    cropped: np.ndarray  # h x w: sigmoid zeroed outside the crop window
    window: tuple[float, float, float, float]  # crop window on the prototype grid (x1, y1, x2, y2; see crop_window)
    mask: np.ndarray  # H x W bool at image size: `cropped` scaled up (bilinear) and thresholded


@torch.inference_mode()
def network_outputs(model: Yolact, rgb: np.ndarray) -> YolactOutput:
    """The bare forward on one RGB image (preprocessing included), outputs in float32."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    x = preprocess(rgb, model.config.input_size, device, dtype)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    out = model(x)
    return YolactOutput(*(tensor.float() for tensor in out))


def detect(out: YolactOutput, config: YolactConfig, allowed: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference's Detect for the first image of a batch: drop priors whose best foreground class scores at
    most conf_threshold, decode boxes, Fast NMS per class. `allowed` (80 bool) restricts NMS to some classes
    (applied before the max_detections cut, so a class filter never loses detections to other classes).

    Returns (prior indices, class indices 0..79, scores, boxes as fractions x1 y1 x2 y2), best first."""
    scores = out.scores[0, :, 1:].T  # 80 x P, background dropped
    class_rows = torch.arange(scores.shape[0], device=scores.device)
    if allowed is not None:
        class_rows = class_rows[allowed.to(scores.device)]
        scores = scores[class_rows]
    candidates = torch.nonzero(scores.max(dim=0).values > config.conf_threshold).flatten()
    if len(candidates) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=scores.device)
        return empty, empty, torch.zeros(0, device=scores.device), torch.zeros((0, 4), device=scores.device)
    boxes = decode_boxes(out.loc[0, candidates], out.priors[candidates], config.variances)
    kept, rows, kept_scores = fast_nms(boxes, scores[:, candidates], config.nms_threshold, config.top_k,
                                       config.max_detections)
    return candidates[kept], class_rows[rows], kept_scores, boxes[kept]


def predict(model: Yolact, rgb: np.ndarray, score_threshold: float = 0.5, classes: Iterable[str] | str | None = None,
            mask_threshold: float = 0.5) -> YolactResult:
    """Detect and segment COCO objects in an RGB uint8 image.

    Kept: scores above `score_threshold` (after Fast NMS, like the reference's postprocess), of a class in `classes`
    (names or group names; None keeps all). Masks: sigmoid(prototypes . coefficients), cropped to the box
    on the prototype grid, scaled up to the input size, on where above `mask_threshold` (0.5 in the reference)."""
    check_rgb(rgb, "YOLACT")
    height, width = rgb.shape[:2]
    config = model.config
    allowed = expand_classes(classes)
    allowed_mask = None if allowed is None else torch.tensor([name in allowed for name in CLASS_NAMES])
    out = network_outputs(model, rgb)
    with torch.inference_mode():
        priors_idx, class_idx, scores, boxes = detect(out, config, allowed_mask)
        keep = scores > score_threshold
        priors_idx, class_idx, scores, boxes = priors_idx[keep], class_idx[keep], scores[keep], boxes[keep]
        prototypes = out.prototypes[0]
        coefficients = out.coefficients[0, priors_idx]
        masks = upscale(assemble(prototypes, coefficients, boxes), height, width, mask_threshold)
        pixel_boxes = to_pixels(boxes, height, width)
        prior_boxes = to_pixels(center_to_corners(out.priors[priors_idx]), height, width)
    label_ids = np.array([CATEGORY_IDS[i] for i in class_idx.tolist()], np.int64)
    instances = Instances(
        boxes=runtime.to_numpy(pixel_boxes).reshape(-1, 4),
        label_ids=label_ids,
        labels=[COCO_CATEGORIES[i] for i in label_ids],
        scores=runtime.to_numpy(scores),
        masks=masks.cpu().numpy(),
        proposals=runtime.to_numpy(prior_boxes).reshape(-1, 4),
        working_size=(config.input_size, config.input_size),
    )
    return YolactResult(instances, runtime.to_numpy(prototypes),
                        runtime.to_numpy(coefficients).reshape(-1, prototypes.shape[0]),
                        runtime.to_numpy(boxes).reshape(-1, 4), class_idx.cpu().numpy().astype(np.int64),
                        mask_threshold)


def assembly_steps(result: YolactResult, index: int) -> AssemblySteps:
    """Detection `index`'s mask built the way predict() builds it, keeping every intermediate map."""
    if not 0 <= index < len(result):
        raise IndexError(f"detection {index + 1} does not exist; there are {len(result)}")
    prototypes = torch.from_numpy(result.prototypes)
    coefficients = torch.from_numpy(result.coefficients[index])
    box = torch.from_numpy(result.boxes_relative[index:index + 1])
    weighted = prototypes * coefficients[:, None, None]
    linear = weighted.sum(dim=0)
    sigmoid = torch.sigmoid(linear)
    cropped = crop(sigmoid[None], box)
    height, width = result.instances.masks.shape[1:]
    mask = upscale(cropped, height, width, result.mask_threshold)[0]
    window = crop_window(box, *prototypes.shape[1:])[0].tolist()
    return AssemblySteps(index, coefficients.numpy(), np.argsort(-np.abs(coefficients.numpy()), kind="stable"),
                         weighted.numpy(), linear.numpy(), sigmoid.numpy(), cropped[0].numpy(), tuple(window),
                         mask.numpy())
