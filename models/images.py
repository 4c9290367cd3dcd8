"""Turn any upload, webcam frame, path or array into a clean RGB uint8 array, or refuse it with a clear message.

Every tab goes through `load()`, so odd inputs (16-bit, CMYK, palette, RGBA, EXIF-rotated, grayscale) are handled once,
and bad inputs (not an image, truncated, decompression bombs, a few pixels) are refused with words a person understands.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000  # larger images are refused (decompression bombs, mistakes)...
# ...except JPEGs, which decode at 1/2, 1/4 or 1/8 scale almost for free: a 100-200 MP phone photo is read small.
MAX_JPEG_PIXELS = MAX_PIXELS * 64
MIN_SIDE = 8  # smaller images carry nothing a model can use
_BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white

# Pillow's own bomb check warns at ~89 MP and raises at twice that; we check the header ourselves, before decoding.
Image.MAX_IMAGE_PIXELS = None


class ImageInputError(ValueError):
    """An input that cannot be used as an image; the message is meant for the person who gave it."""


@dataclass
class LoadedImage:
    rgb: np.ndarray  # H x W x 3, uint8
    alpha: np.ndarray | None = None  # H x W, uint8, when the input had transparency
    original_size: tuple[int, int] = (0, 0)  # (width, height) after EXIF rotation, before any scaling
    notes: list[str] = field(default_factory=list)  # what was done to the input, shown in the UI

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def load(source, max_side: int | None = None) -> LoadedImage:
    """Decode `source` (path, bytes, PIL image or numpy array) to RGB uint8; scale down to `max_side` if given."""
    if source is None:
        raise ImageInputError("No image was given: upload a photo, take a webcam snapshot or paste one.")
    if isinstance(source, np.ndarray):
        loaded = _from_array(source)
    else:
        loaded = _from_pil(_open(source, max_side))
    if max_side is not None:
        loaded.rgb, scaled_from = fit_within(loaded.rgb, max_side)
        if scaled_from is not None:
            if loaded.alpha is not None:
                loaded.alpha = _resize(loaded.alpha, loaded.size)
            w, h = scaled_from
            loaded.notes.append(f"scaled down from {w}x{h} to {loaded.size[0]}x{loaded.size[1]} (this tab works at most {max_side} px a side)")
    return loaded


def fit_within(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Shrink so the longer side is at most `max_side`; returns the image and the old (w, h) if it was scaled."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb, None
    factor = max_side / max(h, w)
    new_size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return _resize(rgb, new_size), (w, h)


def with_alpha(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Re-attach an input's alpha channel to a result of any size (the alpha is resized to match)."""
    if alpha is None:
        return rgb
    h, w = rgb.shape[:2]
    if alpha.shape != (h, w):
        alpha = _resize(alpha, (w, h))
    return np.dstack([rgb, alpha])


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.LANCZOS))


def _open(source, max_side: int | None = None) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    name = "the file"
    if isinstance(source, (bytes, bytearray)):
        stream = io.BytesIO(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        name = path.name
        if not path.is_file():
            raise ImageInputError(f"{name}: no such file.")
        stream = path.open("rb")
    else:
        raise ImageInputError(f"Cannot read an image from a {type(source).__name__}.")
    try:
        image = Image.open(stream)
    except UnidentifiedImageError:
        raise ImageInputError(
            f"{name} is not an image this app can read (PNG, JPEG, WebP, BMP, TIFF and GIF work)."
        ) from None
    _decode_reduced(image, max_side)
    _check_size(image.width, image.height)
    # Pillow reduces 16-bit RGB(A) PNGs to 8 bits on decode; remember that it did, to say so.
    image.info["cvpg_16_bit"] = getattr(getattr(image, "png", None), "im_rawmode", "").endswith("16B")
    try:
        image.load()  # decode now, so truncated files fail here and not deep inside a model
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageInputError(f"{name} is damaged or truncated and cannot be decoded ({error}).") from None
    return image


def _decode_reduced(image: Image.Image, max_side: int | None) -> None:
    """Have a huge JPEG decoded at a fraction of its size (the DCT scaling of libjpeg) before anything is decoded.

    Only above MAX_PIXELS, so ordinary photos decode exactly as before; the result is still at least the size the tab
    works at, and `load` then shrinks it to `max_side` as usual.
    """
    width, height = image.size
    if image.format != "JPEG" or width * height <= MAX_PIXELS or width * height > MAX_JPEG_PIXELS:
        return
    factor = (max_side or 4096) / max(width, height)
    wanted = (max(1, round(width * factor)), max(1, round(height * factor)))
    image.draft("RGB", wanted)  # picks the smallest 1/2^k scale that is still at least `wanted`
    image.info["cvpg_decoded_from"] = (width, height)


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageInputError(
            f"The image is {width}x{height} ({width * height / 1e6:.0f} megapixels); the limit is "
            f"{MAX_PIXELS / 1e6:.0f} megapixels. Please resize it first."
        )
    if min(width, height) < MIN_SIDE:
        raise ImageInputError(f"The image is {width}x{height}; it needs at least {MIN_SIDE} pixels a side.")


def _from_pil(image: Image.Image) -> LoadedImage:
    notes: list[str] = []
    if "cvpg_decoded_from" in image.info:
        w, h = image.info["cvpg_decoded_from"]
        notes.append(f"a {w}x{h} ({w * h / 1e6:.0f} MP) JPEG, decoded at {image.width}x{image.height} to save time "
                     "and memory")
    if getattr(image, "n_frames", 1) > 1:
        notes.append("used the first frame of an animated image")
    orientation = image.getexif().get(0x0112, 1)
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
        notes.append("rotated upright as its EXIF orientation says")
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image)
        if mode == "F" or array.max() > 255:  # 16-bit (or float) grayscale
            notes.append(f"converted from {'16-bit' if mode != 'F' else 'floating-point'} grayscale")
            return _from_array(array, notes)
        image = image.convert("L")
    if image.info.get("cvpg_16_bit"):
        notes.append("converted from 16 bits per channel to 8")
    if mode == "CMYK":
        notes.append("converted from CMYK")
        image = image.convert("RGB")
    elif mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("1", "L"):
        notes.append("converted from grayscale")
        image = image.convert("RGB")
    elif mode == "LA":
        notes.append("converted from grayscale")
        image = image.convert("RGBA")
    elif mode not in ("RGB", "RGBA"):
        notes.append(f"converted from {mode}")
        image = image.convert("RGB")
    return _from_array(np.asarray(image), notes)


def _from_array(array: np.ndarray, notes: list[str] | None = None) -> LoadedImage:
    notes = [] if notes is None else notes
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageInputError(f"An image array must be H x W, H x W x 3 or H x W x 4; got shape {array.shape}.")
    _check_size(array.shape[1], array.shape[0])
    array = _to_uint8(array, notes)
    alpha = None
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 4:
        alpha = array[:, :, 3].copy()
        if alpha.min() == 255:
            alpha = None  # an opaque alpha channel carries nothing
        else:
            notes.append("transparent areas composited on white")
            weight = alpha[:, :, None].astype(np.float32) / 255.0
            background = np.array(_BACKGROUND, dtype=np.float32)
            array = np.rint(array[:, :, :3] * weight + background * (1.0 - weight)).astype(np.uint8)
        array = array[:, :, :3]
    h, w = array.shape[:2]
    return LoadedImage(np.ascontiguousarray(array), alpha, (w, h), notes)


def _to_uint8(array: np.ndarray, notes: list[str]) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            finite = np.nan_to_num(array.astype(np.float32))
        scale = 255.0 if finite.max(initial=0.0) <= 1.0 else 1.0  # floats in [0, 1] or already in [0, 255]
        return np.clip(np.rint(finite * scale), 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        peak = int(array.max(initial=0))
        if array.dtype == np.uint16 or peak > 255:
            if not any("16-bit" in note for note in notes):
                notes.append("converted from 16 bits per channel to 8")
            full_scale = 65535.0 if peak <= 65535 else float(peak)
            return np.clip(np.rint(array.astype(np.float64) * (255.0 / full_scale)), 0, 255).astype(np.uint8)
        return np.clip(array, 0, 255).astype(np.uint8)
    raise ImageInputError(f"Unsupported pixel type {array.dtype}.")


def save_png(array: np.ndarray, path) -> None:
    """Write an RGB or RGBA uint8 array losslessly."""
    Image.fromarray(array).save(path, format="PNG")


def check_rgb(rgb: np.ndarray, who: str = "This model") -> None:
    """Refuse anything but an H x W x 3 uint8 array, saying what was given (pipelines call this before any work)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        described = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"{who} needs an RGB uint8 array of shape (H, W, 3); got a {described}")


def mirrored(loaded: LoadedImage) -> LoadedImage:
    """The image flipped left-right (undoes a browser's selfie mirroring of webcam frames)."""
    loaded.rgb = np.ascontiguousarray(loaded.rgb[:, ::-1])
    if loaded.alpha is not None:
        loaded.alpha = np.ascontiguousarray(loaded.alpha[:, ::-1])
    return loaded
