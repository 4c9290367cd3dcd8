"""Mask2Former (Cheng et al. 2022), COCO panoptic, through `transformers`: loading and panoptic post-processing.

Panoptic segmentation labels every pixel with a class and, for countable "things" (people, cars), an instance;
amorphous "stuff" (sky, road, grass) gets one segment per class (Kirillov et al. 2019). Mask2Former predicts one set
of masks with classes for both; `predict()` turns them into a segment map and a segment list, stuff fused here
(see `postprocess`). The pictures are in mask2former_views.py.

Weights are Hugging Face repositories (catalogue entries of kind "huggingface", which weights.fetch hands to hub.py):
the Hugging Face cache, or a folder in $CVPG_HOME named after the model. `transformers` is imported only when a model
is loaded.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import coco, runtime, weights

TASK_ID = "panoptic"
_HUB = "https://huggingface.co"
_LICENSE = "other (see the model card); Mask2Former code: MIT"


def _entry(size: str, bytes_: int, notes: str) -> weights.Checkpoint:
    name = f"mask2former-swin-{size}-coco-panoptic"
    return weights.Checkpoint(
        name=name, task=TASK_ID, url=f"{_HUB}/facebook/{name}", filename=name, sha256=None, bytes=bytes_,
        license=_LICENSE, source=f"{_HUB}/facebook/{name}", kind="huggingface", repo=f"facebook/{name}",
        notes=notes + ". No SHA-256 kept: the Hub publishes each file's (its LFS id) and huggingface_hub checks "
        "each download's size",
    )


CHECKPOINTS = {
    checkpoint.name: checkpoint
    for checkpoint in (
        _entry("tiny", 190_000_000, "model.safetensors on main (190 MB, Hub listing); processor resizes to 384 x 384"),
        _entry("base", 432_000_000, "432 MB (Hub listing); model.safetensors seen only in the converter bot's pull "
               "request, so main may offer pytorch_model.bin alone (UNCONFIRMED); either loads"),
        _entry("large", 866_000_000, "866 MB (Hub listing); safetensors as for swin-base (UNCONFIRMED); slow on a CPU"),
    )
}
weights.register(*CHECKPOINTS.values())
LABELS = {  # for people choosing a model
    "mask2former-swin-tiny-coco-panoptic": "Mask2Former Swin-T, COCO panoptic (133 classes)",
    "mask2former-swin-base-coco-panoptic": "Mask2Former Swin-B, COCO panoptic (133 classes)",
    "mask2former-swin-large-coco-panoptic": "Mask2Former Swin-L, COCO panoptic (133 classes)",
}
DEFAULT_MODEL = "mask2former-swin-tiny-coco-panoptic"

# COCO panoptic's 133 classes in the contiguous order Mask2Former's checkpoints use (config.id2label 0..132): the 80
# things first, then the 53 stuff classes (panopticapi's categories sorted by id; "isthing" 1 for the first 80).
COCO_PANOPTIC_LABELS = coco.THINGS + (
    "banner", "blanket", "bridge", "cardboard", "counter", "curtain", "door-stuff", "floor-wood", "flower", "fruit",
    "gravel", "house", "light", "mirror-stuff", "net", "pillow", "platform", "playingfield", "railroad", "river",
    "road", "roof", "sand", "sea", "shelf", "snow", "stairs", "tent", "towel", "wall-brick", "wall-stone",
    "wall-tile", "wall-wood", "water-other", "window-blind", "window-other", "tree-merged", "fence-merged",
    "ceiling-merged", "sky-other-merged", "cabinet-merged", "table-merged", "floor-other-merged", "pavement-merged",
    "mountain-merged", "grass-merged", "dirt-merged", "paper-merged", "food-other-merged", "building-other-merged",
    "rock-merged", "wall-other-merged", "rug-merged",
)
COCO_THING_COUNT = 80
COCO_THINGS = frozenset(COCO_PANOPTIC_LABELS[:COCO_THING_COUNT])
COCO_ID2LABEL = dict(enumerate(COCO_PANOPTIC_LABELS))
# Mask2Former's COCO panoptic test settings (OBJECT_MASK_THRESHOLD and OVERLAP_THRESHOLD in its configs).
DEFAULT_THRESHOLD = 0.8
DEFAULT_OVERLAP = 0.8


# --- loading -------------------------------------------------------------------------------------------------------


@dataclass
class PanopticModel:
    net: object  # transformers Mask2FormerForUniversalSegmentation, eval mode
    processor: object  # transformers Mask2FormerImageProcessor
    id2label: dict[int, str]
    thing_ids: frozenset[int]
    source: str  # repo@commit, a folder, or "random"


def thing_ids_for(id2label: dict[int, str]) -> frozenset[int]:
    """Which label ids are things. The HF configs carry no isthing flag, so it comes from COCO panoptic's names."""
    return frozenset(int(i) for i, name in id2label.items() if name in COCO_THINGS)


def wrap(net, processor=None, source: str = "random") -> PanopticModel:
    """A network (e.g. random weights from a Mask2FormerConfig) ready for `predict`; the processor defaults to the
    COCO checkpoints' own settings (384 x 384, ImageNet mean and std)."""
    if processor is None:
        from transformers import Mask2FormerImageProcessor

        processor = Mask2FormerImageProcessor(size={"height": 384, "width": 384}, size_divisor=32)
    net.eval().requires_grad_(False)
    id2label = {int(i): name for i, name in net.config.id2label.items()}
    return PanopticModel(net, processor, id2label, thing_ids_for(id2label), source)


def swin_tiny_config():
    """A Mask2FormerConfig shaped like the swin-tiny COCO panoptic checkpoint (Swin-T backbone, 133 COCO panoptic
    labels, transformers' defaults for the rest), for random-weight timing when the real files are absent.
    Not checked against the checkpoint's config.json."""
    from transformers import Mask2FormerConfig, SwinConfig

    backbone = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    return Mask2FormerConfig(backbone_config=backbone, id2label=COCO_ID2LABEL,
                             label2id={v: k for k, v in COCO_ID2LABEL.items()})


def load_folder(folder: Path | str, device=None, source: str | None = None) -> PanopticModel:
    """A Mask2Former saved in a folder (a Hub snapshot or `save_pretrained` output), on `device`."""
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise weights.WeightsError(f"{folder} is not a Mask2Former folder: it has no config.json (expected the files "
                                   "of a Hugging Face repository, or what save_pretrained writes).")
    try:
        net = Mask2FormerForUniversalSegmentation.from_pretrained(folder, local_files_only=True)
        processor = (Mask2FormerImageProcessor.from_pretrained(folder, local_files_only=True)
                     if (folder / "preprocessor_config.json").is_file() else None)
    except Exception as error:  # a user's folder can fail in many ways (missing file, other model, bad tensors)
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise weights.WeightsError(f"{folder} could not be loaded as Mask2Former: {first_line}") from None
    model = wrap(net, processor, source or str(folder))
    model.net.to(device or runtime.device())
    return model


def load(name: str = DEFAULT_MODEL, device=None, checkpoint: str | None = None,
         progress: weights.ProgressCallback | None = None) -> PanopticModel:
    """The named model (or `checkpoint`, a folder holding a Mask2Former), cached per device in runtime.MODELS."""
    if name not in CHECKPOINTS:
        raise weights.WeightsError(f"Unknown panoptic model {name!r}; known: {', '.join(CHECKPOINTS)}")
    device = device or runtime.device()
    folder = Path(checkpoint).resolve() if checkpoint else None

    def loader() -> PanopticModel:
        if folder is not None:
            return load_folder(folder, device)
        path = weights.fetch(CHECKPOINTS[name], progress)  # a folder: hub.py finds or downloads it
        # a Hub snapshot folder is named after its commit: record which revision answered
        source = f"{CHECKPOINTS[name].repo}@{path.name[:10]}" if path.parent.name == "snapshots" else str(path)
        return load_folder(path, device, source)

    return runtime.MODELS.get(cache_key(name, device, folder), loader)


def cache_key(name: str, device, folder: Path | None = None) -> tuple:
    """The model cache's key for `load(name, device, folder)` (a folder by its path: it has no single hash)."""
    return runtime.model_key("mask2former", name, device, None, *([str(folder)] if folder else []))


# --- prediction ----------------------------------------------------------------------------------------------------


@dataclass
class PanopticResult:
    segmentation: np.ndarray  # H x W int32 segment ids, 0 = void (no segment claimed the pixel)
    segments: list[dict]  # {"id", "label_id", "score", "was_fused"}, one per id in `segmentation`
    working_size: tuple[int, int] = (0, 0)  # (w, h) the network saw


def processor_size(working_size: int) -> dict | None:
    """Processor `size` for a longest side (aspect kept, like Mask2Former's own tests); 0: the checkpoint's own."""
    return {"shortest_edge": working_size, "longest_edge": working_size} if working_size > 0 else None


def predict(model: PanopticModel, rgb: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
            mask_threshold: float = 0.5, overlap_threshold: float = DEFAULT_OVERLAP,
            working_size: int = 0) -> PanopticResult:
    """Panoptic segmentation of an RGB uint8 image, at the input's size.

    threshold: a query needs this class probability to become a segment. mask_threshold: a pixel belongs to a
    query's mask above this (score-weighted) probability. overlap_threshold: a segment survives only if it keeps
    more than this fraction of its mask after overlaps are resolved (drops fragments).
    """
    import torch

    device = next(model.net.parameters()).device
    size = processor_size(working_size)
    # np.array: a writable copy (the processor wraps it in a tensor, and inputs may be read-only arrays)
    inputs = model.processor(images=np.array(rgb), return_tensors="pt", **({"size": size} if size else {}))
    pixel_values = inputs["pixel_values"].to(device)
    pixel_mask = inputs["pixel_mask"].to(device)
    autocast = torch.autocast("cuda", dtype=torch.float16) if runtime.half_precision(device) else nullcontext()
    with torch.inference_mode():
        with autocast:
            outputs = model.net(pixel_values=pixel_values, pixel_mask=pixel_mask)
        outputs.class_queries_logits = outputs.class_queries_logits.float()  # fp16 on CUDA; softmax in fp32
        outputs.masks_queries_logits = outputs.masks_queries_logits.float()
        segmentation, segments = postprocess(model.processor, outputs, rgb.shape[:2], model.thing_ids, threshold,
                                             mask_threshold, overlap_threshold)
    return PanopticResult(segmentation, segments, (int(pixel_values.shape[-1]), int(pixel_values.shape[-2])))


def postprocess(processor, outputs, size: tuple[int, int], thing_ids: frozenset[int],
                threshold: float = DEFAULT_THRESHOLD, mask_threshold: float = 0.5,
                overlap_threshold: float = DEFAULT_OVERLAP) -> tuple[np.ndarray, list[dict]]:
    """The processor's panoptic post-processing at `size` (h, w), then one segment per stuff class.

    Stuff is fused here rather than through `label_ids_to_fuse`: in transformers 5.24 a fused class hands its old
    id back to the id counter, so the next thing can receive an id already in use and two instances merge.
    """
    result = processor.post_process_panoptic_segmentation(
        outputs, threshold=threshold, mask_threshold=mask_threshold, overlap_mask_area_threshold=overlap_threshold,
        label_ids_to_fuse=set(), target_sizes=[tuple(size)])[0]
    segmentation = result["segmentation"].cpu().numpy()
    segmentation = np.where(segmentation > 0, segmentation, 0).astype(np.int32)  # no segment at all comes back as -1
    return fuse_stuff(segmentation, result["segments_info"], thing_ids)


def fuse_stuff(segmentation: np.ndarray, segments_info: list[dict],
               thing_ids: frozenset[int] | set[int]) -> tuple[np.ndarray, list[dict]]:
    """One segment per stuff class (the panoptic rule: stuff is not counted), ids renumbered 1..n in order.

    A fused segment keeps its best score; `was_fused` says it gathered several predicted masks.
    """
    new_id: dict[int, int] = {}
    by_stuff_label: dict[int, dict] = {}
    segments: list[dict] = []
    for info in sorted(unique_segments(segments_info), key=lambda item: int(item["id"])):
        label = int(info["label_id"])
        score = float(info.get("score", 1.0))
        if label not in thing_ids and label in by_stuff_label:
            kept = by_stuff_label[label]
            new_id[int(info["id"])] = kept["id"]
            kept["score"], kept["was_fused"] = max(kept["score"], score), True
            continue
        segment = {"id": len(segments) + 1, "label_id": label, "score": score, "was_fused": False}
        segments.append(segment)
        new_id[int(info["id"])] = segment["id"]
        if label not in thing_ids:
            by_stuff_label[label] = segment
    return _remap(segmentation, new_id), segments


def unique_segments(segments_info: list[dict]) -> list[dict]:
    """The first entry of each segment id (the library repeats a fused id once per merged mask)."""
    seen: dict[int, dict] = {}
    for info in segments_info:
        seen.setdefault(int(info["id"]), info)
    return list(seen.values())


def _remap(segmentation: np.ndarray, new_id: dict[int, int]) -> np.ndarray:
    """Ids through a table; ids not in it become void (0)."""
    top = max(int(segmentation.max(initial=0)), max(new_id, default=0))
    table = np.zeros(top + 1, np.int32)
    for old, new in new_id.items():
        if old > 0:
            table[old] = new
    return table[np.clip(segmentation, 0, top)]
