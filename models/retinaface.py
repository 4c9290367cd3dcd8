"""RetinaFace (Deng et al. 2020, "RetinaFace: Single-shot Multi-level Face Localisation in the Wild"): face boxes and
five landmarks, for the face de-identification and landmarks tabs. The networks are in `retinaface_arch.py`.

Two variants of biubug6's re-implementation, both with 2 anchors per location on strides 8/16/32:
- "retinaface-mnet": MobileNet-0.25 body, 64-channel FPN/SSH, plain ReLU (the Face-Detector-1MB-with-landmark
  checkpoint; with LeakyReLU it gives false positives), anchors 10/20, 32/64, 128/256 px.
- "retinaface-r50": torchvision ResNet-50 body (layer2..4), 256-channel FPN/SSH, anchors 16/32, 64/128, 256/512 px.

The network sees a BGR float image minus the Caffe means (104, 117, 123), not scaled. `predict()` maps an RGB uint8
array to `FaceDetections` in the original image's pixels; the pure pieces (`prior_boxes`, `decode_boxes`,
`decode_landmarks`, `detections_from_outputs`) are public so tests can feed them hand-made network outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from . import images, runtime, weights
from .retinaface_arch import RetinaFace, Variant

TASK_ID = "face-deid"
DEFAULT_MODEL = "retinaface-mnet"
_FACE_DETECTOR_1MB = "https://github.com/biubug6/Face-Detector-1MB-with-landmark"
_FACEXLIB = "https://github.com/xinntao/facexlib"

CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        weights.Checkpoint(
            name="retinaface-mnet", task=TASK_ID,
            url=f"{_FACE_DETECTOR_1MB}/raw/2b075657aef954b9426f938ac7fce100b6910fe6/weights/mobilenet0.25_Final.pth",
            filename="retinaface_mobilenet0.25_Final.pth",
            sha256="ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1", bytes=1_789_735, license="MIT",
            source=_FACE_DETECTOR_1MB,
            notes="plain state dict, 300 tensors, no `module.` prefix; MobileNet-0.25 with plain ReLU, WIDER FACE; "
            "SHA-256 verified on this project's copy",
        ),
        weights.Checkpoint(
            name="retinaface-r50", task=TASK_ID, url=f"{_FACEXLIB}/releases/download/v0.1.0/detection_Resnet50_Final.pth",
            filename="detection_Resnet50_Final.pth",
            sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d", bytes=109_497_761, license="MIT",
            source=_FACEXLIB, hash_origin="third-party",
            notes="biubug6/Pytorch_Retinaface's Resnet50_Final.pth as mirrored by facexlib; keys carry a `module.` prefix "
            "(saved from nn.DataParallel). SHA-256 and size from third-party records, not yet checked against a "
            "download here",
        ),
    )
}
weights.register(*CHECKPOINTS.values())

_BGR_MEANS = (104.0, 117.0, 123.0)  # Caffe ImageNet means, in the BGR order the network was trained on
_PRE_NMS_TOP_K = 5000  # bounds NMS time when a user asks for a very low score threshold

VARIANTS = {
    "retinaface-mnet": Variant("mobilenet0.25", (64, 128, 256), 64, ((10, 20), (32, 64), (128, 256))),
    "retinaface-r50": Variant("resnet50", (512, 1024, 2048), 256, ((16, 32), (64, 128), (256, 512))),
}


@dataclass
class FaceDetections:
    """Faces found in one image, sorted by score (highest first), in the original image's pixel coordinates."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32 in [0, 1]
    landmarks: np.ndarray  # (N, 5, 2) float32 x, y: left eye, right eye, nose, left and right mouth corner
    image_size: tuple[int, int]  # (width, height) of the image the coordinates refer to

    def __len__(self) -> int:
        return len(self.scores)


# ----------------------------------------------------------------------------------------------------------------
# Building and loading


def build(name: str = DEFAULT_MODEL) -> RetinaFace:
    """The architecture of checkpoint `name` with random weights (what `load` fills with the official ones)."""
    try:
        return RetinaFace(VARIANTS[name])
    except KeyError:
        raise ValueError(f"Unknown RetinaFace variant {name!r}; known: {', '.join(VARIANTS)}") from None


def load(name: str = DEFAULT_MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> RetinaFace:
    """The network with its official weights (or a user's `checkpoint_file` in the official format), in eval mode
    on `device`, shared through runtime.MODELS."""
    device = device or runtime.device()

    def loader() -> RetinaFace:
        path = checkpoint_file if checkpoint_file is not None else weights.fetch(name, progress)
        return runtime.prepare(_from_state(name, weights.load_state_dict(path)), device)

    return runtime.cached_model("retinaface", name, device, checkpoint_file, loader)


def cache_key(name: str, device: torch.device, checkpoint_file=None) -> tuple:
    """One cached network per variant, device and weights (a user's file is known by its content hash)."""
    return runtime.model_key("retinaface", name, device, checkpoint_file)


def _from_state(name: str, state: dict) -> RetinaFace:
    # Pytorch_Retinaface's checkpoints were saved from nn.DataParallel: unwrap drops the `module.` prefix of every key.
    return weights.strict_load(build(name), weights.unwrap(state), name)


# ----------------------------------------------------------------------------------------------------------------
# Pure maths: anchors and decoding (all coordinates normalised to [0, 1] of the network's input)


@lru_cache(maxsize=16)
def _prior_boxes_cached(height: int, width: int, min_sizes: tuple, steps: tuple) -> torch.Tensor:
    levels = []
    for sizes, step in zip(min_sizes, steps):
        rows, cols = -(-height // step), -(-width // step)  # ceil: the feature map size of a stride-`step` level
        cy, cx = torch.meshgrid((torch.arange(rows) + 0.5) * step / height,
                                (torch.arange(cols) + 0.5) * step / width, indexing="ij")
        centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2).expand(-1, len(sizes), 2)
        sides = torch.tensor([[s / width, s / height] for s in sizes]).expand(rows * cols, -1, 2)
        levels.append(torch.cat([centres, sides], dim=-1).reshape(-1, 4))  # location-major, then anchor size
    return torch.cat(levels).float()


def prior_boxes(height: int, width: int, min_sizes=VARIANTS[DEFAULT_MODEL].min_sizes,
                steps=VARIANTS[DEFAULT_MODEL].steps) -> torch.Tensor:
    """Anchors (P, 4) as normalised cx, cy, w, h: per level, per feature-map cell in row-major order, per size.

    The tensor is cached per size and shared: do not modify it in place.
    """
    return _prior_boxes_cached(int(height), int(width), tuple(map(tuple, min_sizes)), tuple(steps))


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor, variance=(0.1, 0.2)) -> torch.Tensor:
    """Offsets (P, 4) -> corners (P, 4) x1, y1, x2, y2: centre shifts scaled by the anchor, log-space sizes."""
    centres = priors[:, :2] + loc[:, :2] * variance[0] * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(loc[:, 2:] * variance[1])
    return torch.cat([centres - sizes / 2, centres + sizes / 2], dim=1)


def decode_landmarks(landm: torch.Tensor, priors: torch.Tensor, variance=(0.1, 0.2)) -> torch.Tensor:
    """Offsets (P, 10) -> points (P, 5, 2): each point is the anchor centre shifted by offset * variance * size."""
    offsets = landm.reshape(-1, 5, 2)
    return priors[:, None, :2] + offsets * variance[0] * priors[:, None, 2:]


def detections_from_outputs(loc: torch.Tensor, conf: torch.Tensor, landm: torch.Tensor, priors: torch.Tensor,
                            image_size: tuple[int, int], variance=(0.1, 0.2), score_threshold: float = 0.5,
                            nms_iou: float = 0.4, min_face: float = 0) -> FaceDetections:
    """One image's network outputs (P, 4), (P, 2) probabilities, (P, 10) -> faces in pixels of `image_size` (w, h).

    The priors are normalised to the network's input, so multiplying by the original size also undoes any resize.
    """
    width, height = image_size
    scores = conf[:, 1]
    keep = torch.nonzero(scores > score_threshold).squeeze(1)
    keep = keep[scores[keep].argsort(descending=True)[:_PRE_NMS_TOP_K]]
    scale = torch.tensor([width, height], dtype=loc.dtype, device=loc.device)
    boxes = decode_boxes(loc[keep], priors[keep], variance) * scale.repeat(2)
    points = decode_landmarks(landm[keep], priors[keep], variance) * scale
    scores = scores[keep]
    big_enough = torch.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= min_face
    boxes, points, scores = boxes[big_enough], points[big_enough], scores[big_enough]
    kept = torchvision.ops.nms(boxes, scores, nms_iou)  # indices in decreasing order of score
    return FaceDetections(runtime.to_numpy(boxes[kept]), runtime.to_numpy(scores[kept]), runtime.to_numpy(points[kept]),
                          (width, height))


# ----------------------------------------------------------------------------------------------------------------
# Images in, faces out


def working_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The (w, h) the network sees: the original, or downscaled so the longer side is `max_side` (never enlarged)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    factor = max_side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def preprocess(rgb: np.ndarray, max_side: int | None = None, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> (1, 3, h, w) BGR float minus the channel means, at the working size."""
    images.check_rgb(rgb, "RetinaFace")
    height, width = rgb.shape[:2]
    x = torch.tensor(rgb, device=device).permute(2, 0, 1).flip(0).unsqueeze(0).float()  # a copy: input may be read-only
    size = working_size(width, height, max_side)
    if size != (width, height):
        # antialias: plain bilinear downscaling aliases fine textures into face-like patterns
        x = F.interpolate(x, size=(size[1], size[0]), mode="bilinear", antialias=True, align_corners=False)
    x = x - torch.tensor(_BGR_MEANS, device=x.device).view(1, 3, 1, 1)
    return x.to(dtype)


def predict(model: RetinaFace, rgb: np.ndarray, score_threshold: float = 0.5, nms_iou: float = 0.4,
            max_side: int | None = None, min_face: float = 0) -> FaceDetections:
    """Faces in an RGB uint8 image, in its own pixel coordinates, however small the network's working size was."""
    parameter = next(model.parameters())
    x = preprocess(rgb, max_side, parameter.device, parameter.dtype)
    if parameter.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    variant = model.variant
    priors = prior_boxes(x.shape[2], x.shape[3], variant.min_sizes, variant.steps).to(parameter.device)
    with torch.inference_mode():
        loc, conf, landm = model(x)
        return detections_from_outputs(
            loc[0].float(), conf[0].float(), landm[0].float(), priors, (rgb.shape[1], rgb.shape[0]),
            variant.variance, score_threshold, nms_iou, min_face,
        )
