"""Panoptic segmentation: Mask2Former (COCO panoptic) through `transformers`, and the things/stuff views.

Panoptic segmentation labels every pixel with a class and, for countable "things" (people, cars), an instance;
amorphous "stuff" (sky, road, grass) gets one segment per class (Kirillov et al. 2019). UPSNet (Xiong et al. 2019)
built it from a semantic head for stuff and an instance head for things, merged at the end; Mask2Former (Cheng et
al. 2022) predicts one set of masks for both. The tab shows the three layers: stuff alone, things alone and merged.

Weights live in the Hugging Face cache (or a folder in $CVPG_HOME named after the model). Offline (`--offline` or
HF_HUB_OFFLINE=1) nothing touches the network and a missing model raises weights.MissingWeightsError naming the
repository and the command that fetches it. `transformers` is imported only when a model is loaded.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import coco, draw_masks, runtime, weights
from .images import LoadedImage
from .tasks import Option, Task, TaskOutput

TASK_ID = "panoptic"
_HUB = "https://huggingface.co"
_CONFIG_FILES = ("config.json", "preprocessor_config.json")
# The first one present wins. transformers opens pytorch_model.bin with torch.load(weights_only=True).
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class HubModel:
    """A model that lives in a Hugging Face repository (the counterpart of weights.Checkpoint for single files)."""

    name: str  # the id people type: `python app.py download mask2former-swin-tiny-coco-panoptic`
    task: str
    repo_id: str
    revision: str
    bytes: int | None  # approximate: the weights file as listed on the Hub
    license: str
    source: str
    label: str
    notes: str = ""

    @property
    def size_text(self) -> str:
        return f"about {self.bytes / 1e6:.0f} MB" if self.bytes else "unknown size"


_LICENSE = "other (see the model card); Mask2Former code: MIT"
MODELS = {
    spec.name: spec
    for spec in (
        HubModel("mask2former-swin-tiny-coco-panoptic", TASK_ID, "facebook/mask2former-swin-tiny-coco-panoptic",
                 "main", 190_000_000, _LICENSE, f"{_HUB}/facebook/mask2former-swin-tiny-coco-panoptic",
                 "Mask2Former Swin-T, COCO panoptic (133 classes)",
                 "model.safetensors on main (190 MB, Hub listing); processor resizes to 384 x 384"),
        HubModel("mask2former-swin-base-coco-panoptic", TASK_ID, "facebook/mask2former-swin-base-coco-panoptic",
                 "main", 432_000_000, _LICENSE, f"{_HUB}/facebook/mask2former-swin-base-coco-panoptic",
                 "Mask2Former Swin-B, COCO panoptic (133 classes)",
                 "432 MB (Hub listing); model.safetensors seen only in the converter bot's pull request, so main may "
                 "offer pytorch_model.bin alone (UNCONFIRMED); either loads"),
        HubModel("mask2former-swin-large-coco-panoptic", TASK_ID, "facebook/mask2former-swin-large-coco-panoptic",
                 "main", 866_000_000, _LICENSE, f"{_HUB}/facebook/mask2former-swin-large-coco-panoptic",
                 "Mask2Former Swin-L, COCO panoptic (133 classes)",
                 "866 MB (Hub listing); safetensors as for swin-base (UNCONFIRMED); slow on a CPU"),
    )
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


# --- finding and loading models ------------------------------------------------------------------------------------


def placed_folder(spec: HubModel) -> Path | None:
    """A copy placed by hand: $CVPG_HOME/<name>/ holding the repository's files (config.json and weights)."""
    home = weights.home_dir()
    folder = home / spec.name if home else None
    return folder if folder is not None and _complete(folder) else None


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def fetch(name: str = DEFAULT_MODEL, progress: weights.ProgressCallback | None = None) -> Path:
    """A local folder with the model's config, processor config and weights; downloaded into the Hugging Face cache
    when allowed and needed."""
    spec = _spec(name)
    folder = placed_folder(spec) or _cached_snapshot(spec)
    if folder is not None:
        return folder
    if weights.is_offline():
        raise weights.MissingWeightsError(_offline_message(spec))
    return _download(spec, progress)


def status(name: str) -> str:
    spec = _spec(name)
    folder = placed_folder(spec) or _cached_snapshot(spec)
    return f"cached ({folder})" if folder else "not cached"


def _spec(name: str) -> HubModel:
    try:
        return MODELS[name]
    except KeyError:
        raise weights.WeightsError(f"Unknown panoptic model {name!r}; known: {', '.join(MODELS)}") from None


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / f).is_file() for f in _WEIGHT_FILES)


def _cached_snapshot(spec: HubModel) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    for weight_file in _WEIGHT_FILES:  # one pattern set per weights file: a cache holding one of them is complete
        try:  # local_files_only: a look in the cache, never the network
            folder = Path(snapshot_download(spec.repo_id, revision=spec.revision, local_files_only=True,
                                            allow_patterns=[*_CONFIG_FILES, weight_file]))
        except (LocalEntryNotFoundError, OSError, ValueError):
            continue
        if _complete(folder):
            return folder
    return None


def _download(spec: HubModel, progress: weights.ProgressCallback | None) -> Path:
    from huggingface_hub import snapshot_download

    if progress is not None:
        progress(0.0, f"Downloading {spec.repo_id} ({spec.size_text}) from the Hugging Face Hub")
    try:
        folder = None
        for weight_file in _WEIGHT_FILES:  # one weights file, safetensors first: never both copies
            folder = Path(snapshot_download(spec.repo_id, revision=spec.revision,
                                            allow_patterns=[*_CONFIG_FILES, weight_file]))
            if _complete(folder):
                break
    except Exception as error:  # huggingface_hub raises many kinds (HTTP, connection, missing entry)
        raise weights.MissingWeightsError(
            f"Could not download {spec.name} from {_HUB}/{spec.repo_id} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). " + _placement_hint(spec)
        ) from None
    if folder is None or not _complete(folder):
        raise weights.MissingWeightsError(f"{_HUB}/{spec.repo_id} has no config.json with model.safetensors or "
                                          "pytorch_model.bin; it is not a transformers Mask2Former repository.")
    if progress is not None:
        progress(1.0, f"Downloaded {spec.repo_id}")
    return folder


def _offline_message(spec: HubModel) -> str:
    return (f"{spec.name} (Hugging Face repository {spec.repo_id}, {spec.size_text}) is not on this machine and the "
            "app is offline. " + _placement_hint(spec))


def _placement_hint(spec: HubModel) -> str:
    home = weights.home_dir()
    placed = f"$CVPG_HOME/{spec.name} ({home / spec.name})" if home else f"$CVPG_HOME/{spec.name}"
    return (f"On a connected machine run `python app.py download {spec.name}` (or `hf download {spec.repo_id}`), "
            f"which fills the Hugging Face cache ({hub_cache_dir()}); or copy the repository's files "
            f"(config.json, preprocessor_config.json, model.safetensors) into {placed}.")


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
    device = device or runtime.device()
    folder = Path(checkpoint).resolve() if checkpoint else None

    def loader() -> PanopticModel:
        if folder is not None:
            return load_folder(folder, device)
        path = fetch(name, progress)
        spec = MODELS[name]
        # a Hub snapshot folder is named after its commit: record which revision answered
        source = f"{spec.repo_id}@{path.name[:10]}" if path.parent.name == "snapshots" else str(path)
        return load_folder(path, device, source)

    return runtime.MODELS.get(("mask2former", name, str(folder) if folder else None, str(device)), loader)


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
    for info in sorted(_unique(segments_info), key=lambda item: int(item["id"])):
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


def _unique(segments_info: list[dict]) -> list[dict]:
    seen: dict[int, dict] = {}
    for info in segments_info:
        seen.setdefault(int(info["id"]), info)  # the library repeats a fused id once per merged mask
    return list(seen.values())


def _remap(segmentation: np.ndarray, new_id: dict[int, int]) -> np.ndarray:
    """Ids through a table; ids not in it become void (0)."""
    top = max(int(segmentation.max(initial=0)), max(new_id, default=0))
    table = np.zeros(top + 1, np.int32)
    for old, new in new_id.items():
        if old > 0:
            table[old] = new
    return table[np.clip(segmentation, 0, top)]


# --- views -----------------------------------------------------------------------------------------------------------


@dataclass
class PanopticViews:
    merged: np.ndarray  # H x W x 3 uint8: every segment in its colour, void black
    stuff: np.ndarray  # only stuff segments coloured (the semantic layer)
    things: np.ndarray  # only thing segments coloured (the instance layer)
    stuff_mask: np.ndarray  # H x W bool
    things_mask: np.ndarray  # H x W bool
    legend: list[dict]  # {"id", "label", "name", "kind", "area_px", "area_pct", "score", "color"}, largest first
    colors: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # segment id -> RGB
    void_pct: float = 0.0


def display_name(label: str) -> str:
    """COCO panoptic's label for people: "sky-other-merged" -> "sky", "door-stuff" -> "door", "wall-brick" stays."""
    for suffix in ("-merged", "-other", "-stuff"):
        label = label.removesuffix(suffix)
    return label


def segment_colors(segments_info: list[dict], thing_ids) -> dict[int, tuple[int, int, int]]:
    """Stuff: one colour per class, the same in every photo. Things: their class's hue, a shade per instance."""
    colors: dict[int, tuple[int, int, int]] = {}
    seen: dict[int, int] = {}
    for info in _unique(segments_info):
        label = int(info["label_id"])
        if label in thing_ids:
            colors[int(info["id"])] = draw_masks.color(label, jitter=seen.get(label, 0))
            seen[label] = seen.get(label, 0) + 1
        else:
            colors[int(info["id"])] = draw_masks.color(label)
    return colors


def panoptic_views(segmentation: np.ndarray, segments_info: list[dict], id2label: dict[int, str],
                   thing_ids) -> PanopticViews:
    """The stuff layer, the things layer and the merged panoptic map of a segment map, with its legend.

    `segmentation` holds segment ids (0 or less: void); `segments_info` maps ids to {"label_id", "score"?}.
    """
    segmentation = np.asarray(segmentation)
    infos = [info for info in _unique(segments_info) if int(info["id"]) > 0]
    colors = segment_colors(infos, thing_ids)
    thing_segments = {int(info["id"]) for info in infos if int(info["label_id"]) in thing_ids}
    stuff_segments = {int(info["id"]) for info in infos} - thing_segments
    total = segmentation.size
    counts = np.bincount(np.clip(segmentation, 0, None).ravel(), minlength=max(colors, default=0) + 1)
    legend = []
    for info in infos:
        sid = int(info["id"])
        area = int(counts[sid]) if sid < len(counts) else 0
        if area == 0:
            continue  # a segment that lost all its pixels is not in the picture
        label = id2label.get(int(info["label_id"]), str(info["label_id"]))
        legend.append({"id": sid, "label": label, "name": display_name(label),
                       "kind": "thing" if sid in thing_segments else "stuff", "area_px": area,
                       "area_pct": round(100.0 * area / total, 2), "score": round(float(info.get("score", 1.0)), 4),
                       "color": draw_masks.hex_color(colors[sid])})
    legend.sort(key=lambda row: (-row["area_px"], row["id"]))
    stuff_mask = np.isin(segmentation, list(stuff_segments))
    things_mask = np.isin(segmentation, list(thing_segments))
    merged = draw_masks.colorize(segmentation, colors)
    stuff = np.where(stuff_mask[..., None], merged, 0).astype(np.uint8)
    things = np.where(things_mask[..., None], merged, 0).astype(np.uint8)
    void_pct = round(100.0 * (total - int(stuff_mask.sum()) - int(things_mask.sum())) / total, 2) if total else 0.0
    return PanopticViews(merged, stuff, things, stuff_mask, things_mask, legend, colors, void_pct)


def over_photo(rgb: np.ndarray, colored: np.ndarray, where: np.ndarray, opacity: float,
               segmentation: np.ndarray | None = None, legend: list[dict] | None = None) -> np.ndarray:
    """A view blended over the photo; with `legend`, each of its segments gets its label written on it."""
    out = draw_masks.blend(rgb, colored, where, opacity)
    if legend and segmentation is not None:
        out = draw_masks.texts(out, [(*_label_anchor(segmentation, row["id"]), row["name"]) for row in legend])
    return out


def _label_anchor(segmentation: np.ndarray, segment_id: int) -> tuple[int, int]:
    mask = segmentation == segment_id
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x, y = draw_masks.anchor(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])  # the crop keeps it cheap
    return x + int(cols[0]), y + int(rows[0])


# --- the tab's pipeline --------------------------------------------------------------------------------------------


def run(loaded: LoadedImage, model: str = DEFAULT_MODEL, checkpoint: str | None = None, progress=None,
        **options) -> TaskOutput:
    options = {**TASK.parse_options([]), **options}
    device = runtime.device()
    with runtime.stopwatch(device) as load_time:
        net = load(model, device, checkpoint, progress)
    with runtime.stopwatch(device) as model_time:
        result = predict(net, loaded.rgb, options["threshold"], options["mask_threshold"],
                         options["overlap_threshold"], options["working_size"])
    with runtime.stopwatch() as draw_time:
        views = panoptic_views(result.segmentation, result.segments, net.id2label, net.thing_ids)
        opacity, seg = options["opacity"], result.segmentation
        stuff_rows = [row for row in views.legend if row["kind"] == "stuff"]
        thing_rows = [row for row in views.legend if row["kind"] == "thing"]
        labels = options["show_labels"]
        images = {
            "panoptic": over_photo(loaded.rgb, views.merged, views.stuff_mask | views.things_mask, opacity, seg,
                                   views.legend if labels else None),
            "stuff": over_photo(loaded.rgb, views.stuff, views.stuff_mask, opacity, seg,
                                stuff_rows if labels else None),
            "things": over_photo(loaded.rgb, views.things, views.things_mask, opacity, seg,
                                 thing_rows if labels else None),
            "segments": views.merged,
            "labels": seg.astype(np.uint8 if seg.max(initial=0) <= 255 else np.uint16),  # one channel, for download
        }
    w, h = loaded.size
    record = {
        "task": TASK_ID, "model": model, "checkpoint": checkpoint or net.source, "device": runtime.describe(device),
        "input_size": list(loaded.original_size), "size": [w, h], "working_size": list(result.working_size),
        "segments": views.legend, "segment_count": len(views.legend),
        "things": len(thing_rows), "stuff": len(stuff_rows), "void_pct": views.void_pct,
        "label_image": f"{images['labels'].dtype} ids: 0 = void, n = segment n", "notes": loaded.notes,
        "ms": {"load": round(load_time["ms"], 1), "model": round(model_time["ms"], 1),
               "draw": round(draw_time["ms"], 1)},
    }
    summary = (f"{model} on {record['device']}: {len(thing_rows)} things, {len(stuff_rows)} stuff segments in "
               f"{w}x{h} (network at {result.working_size[0]}x{result.working_size[1]}), {model_time['ms']:.0f} ms")
    return TaskOutput(images, record, summary)


TASK = Task(
    id=TASK_ID,
    title="Panoptic segmentation",
    models=tuple(MODELS),
    default_model=DEFAULT_MODEL,
    options=(
        Option("threshold", DEFAULT_THRESHOLD, "class probability a predicted mask needs to become a segment",
               minimum=0.0, maximum=1.0),
        Option("mask_threshold", 0.5, "a pixel belongs to a mask above this probability", minimum=0.0, maximum=0.99),
        Option("overlap_threshold", DEFAULT_OVERLAP, "a segment must keep more than this fraction of its mask after "
               "overlaps are resolved (removes fragments)", minimum=0.0, maximum=1.0),
        Option("opacity", 0.6, "colour opacity over the photo", minimum=0.0, maximum=1.0),
        Option("show_labels", True, "write each segment's label on it"),
        Option("working_size", 0, "longest side the network sees in px, aspect kept (0: the checkpoint's own "
               "384 x 384)", minimum=0, maximum=1333),
    ),
    max_side=1333,
    run=run,
    preload=lambda model: load(model),
)
