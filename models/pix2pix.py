"""Pix2Pix (Isola et al., CVPR 2017): paired translation with the official unet_256 generators.

The generator runs at 256x256 and its result goes back to the input's size (so its aspect ratio). Two choices of the
reference test script are settings here: BatchNorm with this image's statistics (its default) or the running averages
(its --eval), and dropout, the model's only noise, off or on (seeded). Also here: the inputs people make in the
browser, as the models expect them (Canny edges of a photo, a sketch as an edge map, a painted facade label map
snapped to the 12 class colours). The network is models/pix2pix_arch.py; loading and conversions shared with CycleGAN
are models/translation.py.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np
import torch

from . import translation, weights
from .images import check_rgb, fit_within
from .pix2pix_arch import UnetGenerator

TASK_ID = "pix2pix"
MODELS = ("facades_label2photo", "edges2shoes", "sat2map", "map2sat", "day2night")
DEFAULT_MODEL = "edges2shoes"
SIDE = 256  # unet_256 has eight stride-2 levels

# The CMP Facade classes as the facades_label2photo model sees them: MATLAB's jet(12) colormap over the class index
# (background ... shop). UNCONFIRMED against the dataset's label PNGs: the tab's painter snaps to these colours.
FACADE_PALETTE = (
    ("background", (0, 0, 170)), ("facade", (0, 0, 255)), ("window", (0, 85, 255)), ("door", (0, 170, 255)),
    ("cornice", (0, 255, 255)), ("sill", (85, 255, 170)), ("balcony", (170, 255, 85)), ("blind", (255, 255, 0)),
    ("deco", (255, 170, 0)), ("molding", (255, 85, 0)), ("pillar", (255, 0, 0)), ("shop", (170, 0, 0)),
)

CHECKPOINTS = translation.catalogue(TASK_ID, MODELS, "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{}.pth",
                                    "unet_256, batch norm, dropout")
_mode_lock = threading.Lock()  # translate() switches dropout/BatchNorm modes per call on a shared network


build = UnetGenerator  # the network in the official layout (random weights until loaded)


def load(model: str = DEFAULT_MODEL, device: torch.device | None = None, checkpoint_file: str | None = None,
         progress: weights.ProgressCallback | None = None) -> torch.nn.Module:
    """The generator `model` with its official weights (or a user's file in the reference format), shared."""
    return translation.load_generator(TASK_ID, model, build, device, checkpoint_file, progress)


def translate(net: torch.nn.Module, rgb: np.ndarray, noise: bool = False, seed: int = 0,
              image_statistics: bool = True) -> np.ndarray:
    """Run unet_256 at 256x256 and bring the result back to the input's size (its aspect ratio).

    image_statistics: BatchNorm normalises with this image's statistics, as the reference test script does by default;
    False uses the running averages (the reference's --eval). noise: dropout stays on (the model's only noise), seeded.
    """
    check_rgb(rgb, "pix2pix")
    device, dtype = translation.placement(net)
    x = translation.to_tensor(_resize(rgb, (SIDE, SIDE)), device, dtype)
    with _mode_lock, torch.inference_mode(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                # train mode + no running-stat tracking = normalise with this batch's statistics, update nothing
                module.train(image_statistics)
                module.track_running_stats = not image_statistics
            elif isinstance(module, torch.nn.Dropout):
                module.train(noise)
        out = translation.to_image(net(x))
    return _resize(out, (rgb.shape[1], rgb.shape[0]))


def _resize(rgb: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    if rgb.shape[1::-1] == size:
        return rgb
    shrinking = size[0] < rgb.shape[1]
    interpolation = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return cv2.resize(rgb, size, interpolation=interpolation)


# --- inputs people make in the browser ----------------------------------------------------------------------------

PREPARE = ("none", "edges", "labels")


def prepare_input(rgb: np.ndarray, prepare: str) -> np.ndarray:
    """What the user's image becomes before pix2pix sees it: as is, Canny edges, or snapped facade labels."""
    if prepare == "edges":
        return edges_from_photo(rgb)
    if prepare == "labels":
        return snap_to_palette(rgb)
    return rgb


def flatten_on_white(rgba: np.ndarray) -> np.ndarray:
    """A sketchpad or painter canvas (RGBA, transparent where nothing was drawn) over white."""
    if rgba.ndim == 3 and rgba.shape[2] == 4:
        alpha = rgba[..., 3:4].astype(np.float32) / 255
        return np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return rgba[..., :3] if rgba.ndim == 3 else np.repeat(rgba[..., None], 3, axis=2)


def sketch_to_edges(canvas: np.ndarray) -> np.ndarray:
    """edges2shoes input from a sketch: strokes black, everything else white, 256x256, pure 0/255 values."""
    rgb = _resize(flatten_on_white(canvas), (SIDE, SIDE))
    dark = rgb.astype(np.float32).mean(axis=2) < 128
    return np.where(dark[..., None], 0, 255).astype(np.uint8).repeat(3, axis=2)


def edges_from_photo(rgb: np.ndarray) -> np.ndarray:
    """Black Canny edges on white, at most 256 px a side with the photo's aspect: a stand-in for the HED edges
    edges2shoes was trained on. Edges come from all three channels, so colour boundaries of equal grey show too."""
    small, _ = fit_within(rgb, SIDE)
    edges = np.zeros(small.shape[:2], bool)
    for channel in range(3):
        edges |= _canny(small[..., channel])
    return np.where(edges[..., None], 0, 255).astype(np.uint8).repeat(3, axis=2)


def _canny(gray: np.ndarray) -> np.ndarray:
    median = float(np.median(gray))
    return cv2.Canny(cv2.GaussianBlur(np.ascontiguousarray(gray), (3, 3), 0), int(max(0, 0.66 * median)),
                     int(min(255, 1.33 * median))) > 0


def snap_to_palette(canvas: np.ndarray, palette=FACADE_PALETTE) -> np.ndarray:
    """A painted label map as the facades model expects it: 256x256, every pixel exactly one class colour.

    Unpainted (white or transparent) pixels become the first class (background)."""
    rgb = _resize(flatten_on_white(canvas), (SIDE, SIDE), nearest=True).astype(np.int32)
    colours = np.array([colour for _, colour in palette], np.int32)
    distances = ((rgb[:, :, None, :] - colours[None, None]) ** 2).sum(axis=3)
    labels = distances.argmin(axis=2)
    labels[(rgb >= 250).all(axis=2)] = 0
    return colours[labels].astype(np.uint8)
