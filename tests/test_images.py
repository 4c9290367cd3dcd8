"""models.images.load on every odd and bad input kind: what comes out, or the message that explains the refusal."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import drawn_scene, png_claiming
from models import images
from models.images import ImageInputError


def _png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG") if mode else Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def test_rgb_array_passes_through_unchanged():
    scene = drawn_scene()
    loaded = images.load(scene)
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == scene.shape
    assert np.array_equal(loaded.rgb, scene)
    assert loaded.alpha is None and loaded.notes == [] and loaded.original_size == (128, 96)


@pytest.mark.parametrize("name, mode, has_alpha, note", [
    ("00017_gray.png", "L", False, "grayscale"),
    ("wolf_gray.jpg", "L", False, "grayscale"),
    ("children-alpha.png", "RGBA", True, "composited on white"),
    ("tree_alpha_16bit.png", "RGBA", True, "16 bits"),
    ("0014.jpg", "RGB", False, None),
])
def test_shared_odd_files(shared, name, mode, has_alpha, note):
    path = shared / "images" / "odd" / name
    loaded = images.load(path)
    width, height = Image.open(path).size
    assert loaded.rgb.shape == (height, width, 3) and loaded.rgb.dtype == np.uint8
    assert (loaded.alpha is not None) == has_alpha
    if note:
        assert any(note in text for text in loaded.notes), loaded.notes
    if mode == "L":  # grayscale stays gray: all three channels equal
        assert np.array_equal(loaded.rgb[..., 0], loaded.rgb[..., 2])


def test_rgba_transparent_pixels_become_white_and_alpha_is_kept():
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :15, 3] = 255  # left half opaque red, right half fully transparent
    loaded = images.load(_png_bytes(rgba))
    assert tuple(loaded.rgb[5, 5]) == (200, 0, 0)
    assert tuple(loaded.rgb[5, 25]) == (255, 255, 255)
    assert loaded.alpha[5, 5] == 255 and loaded.alpha[5, 25] == 0
    merged = images.with_alpha(np.zeros((40, 60, 3), np.uint8), loaded.alpha)
    assert merged.shape == (40, 60, 4) and merged[10, 50, 3] == 0 and merged[10, 10, 3] == 255


def test_16_bit_grayscale_png_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (16, 1))
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")  # mode I;16
    loaded = images.load(buffer.getvalue())
    assert loaded.rgb[0, 0, 0] == 0 and loaded.rgb[0, -1, 0] == 255
    assert 120 <= loaded.rgb[0, 32, 0] <= 135  # the middle of the ramp stays in the middle
    assert any("16" in note for note in loaded.notes)


def test_16_bit_array_and_float_array():
    assert images.load(np.full((10, 10, 3), 65535, np.uint16)).rgb.max() == 255
    floats = images.load(np.full((10, 10, 3), 0.5, np.float32)).rgb
    assert floats.dtype == np.uint8 and floats[0, 0, 0] == 128


def test_cmyk_jpeg_becomes_rgb():
    buffer = io.BytesIO()
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(buffer, format="JPEG")  # pure red in CMYK
    loaded = images.load(buffer.getvalue())
    assert loaded.rgb.shape == (30, 40, 3)
    red, green, blue = loaded.rgb[15, 20].astype(int)
    assert red > 200 and green < 60 and blue < 60
    assert any("CMYK" in note for note in loaded.notes)


def test_palette_png_becomes_rgb():
    image = Image.fromarray(drawn_scene()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    loaded = images.load(buffer.getvalue())
    assert loaded.rgb.shape == (96, 128, 3) and loaded.alpha is None


def test_exif_rotated_jpeg_is_turned_upright():
    # Stored landscape (60 wide, 20 high) with a marker at the stored top-left; orientation 6 = rotate 90 CW to view.
    stored = np.full((20, 60, 3), 255, np.uint8)
    stored[:5, :5] = (0, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    loaded = images.load(buffer.getvalue())
    assert loaded.rgb.shape == (60, 20, 3)  # upright: portrait
    assert loaded.rgb[1, -2].max() < 60  # the marker is now at the top-right
    assert any("EXIF" in note for note in loaded.notes)


def test_text_file_named_png_is_refused(tmp_path):
    fake = tmp_path / "holiday.png"
    fake.write_text("this is not an image")
    with pytest.raises(ImageInputError, match="holiday.png is not an image"):
        images.load(fake)


def test_truncated_jpeg_is_refused(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(drawn_scene(200, 300)).save(buffer, format="JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageInputError, match="damaged or truncated"):
        images.load(cut)


@pytest.mark.parametrize("size", [(1, 1), (7, 100), (100, 3)])
def test_tiny_images_are_refused(size):
    with pytest.raises(ImageInputError, match="at least 8 pixels"):
        images.load(_png_bytes(np.zeros((size[1], size[0], 3), np.uint8)))


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(30000, 30000))
    with pytest.raises(ImageInputError, match="30000x30000.*limit is 50 megapixels"):
        images.load(bomb)


def test_missing_and_empty_inputs():
    with pytest.raises(ImageInputError, match="No image"):
        images.load(None)
    with pytest.raises(ImageInputError, match="no such file"):
        images.load("/nonexistent/photo.jpg")
    with pytest.raises(ImageInputError, match="H x W"):
        images.load(np.zeros((10, 10, 5), np.uint8))


def test_large_input_is_scaled_down_and_says_so():
    loaded = images.load(np.zeros((300, 1200, 3), np.uint8), max_side=400)
    assert loaded.rgb.shape == (100, 400, 3)
    assert loaded.original_size == (1200, 300)
    assert any("scaled down from 1200x300 to 400x100" in note for note in loaded.notes)


def test_a_huge_jpeg_is_decoded_small_and_a_huge_png_is_still_refused(tmp_path):
    """A 12000x9000 phone photo (108 MP) is read at a fraction of its size; the same size as PNG stays a bomb."""
    from PIL import Image

    from models import images

    big = tmp_path / "phone.jpg"
    gradient = np.linspace(0, 255, 12000, dtype=np.uint8)
    Image.fromarray(np.broadcast_to(gradient[None, :, None], (9000, 12000, 3)).copy()).save(big, quality=80)
    loaded = images.load(str(big), max_side=1333)
    assert loaded.size == (1333, 1000)
    assert any("12000x9000" in note and "decoded at 1500x1125" in note for note in loaded.notes)
    assert abs(int(loaded.rgb[500, 666, 0]) - 127) < 6  # the content survives the reduced decode: mid-gradient grey
    with pytest.raises(images.ImageInputError, match="megapixels"):
        images.load(png_claiming(12000, 9000), max_side=1333)
