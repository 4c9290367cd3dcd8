"""Anonymisation: only pixels inside face regions change, and each mode does what it says there."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models import anonymize
from models.anonymize import Style

BOX = np.array([[100, 50, 180, 150]], np.float32)  # x1 y1 x2 y2
LANDMARKS = np.array([[[125, 85], [155, 85], [140, 105], [128, 125], [152, 125]]], np.float32)


def _texture(height=200, width=300) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.any(before != after, axis=2)


@pytest.mark.parametrize("mode", anonymize.MODES)
@pytest.mark.parametrize("shape", anonymize.SHAPES)
def test_pixels_outside_the_enlarged_region_stay_byte_identical(mode, shape):
    image = _texture()
    out = anonymize.anonymize(image, BOX, LANDMARKS, Style(mode=mode, shape=shape, enlarge=1.2))
    x0, y0, x1, y1 = anonymize.region_box(BOX[0], 1.2, 300, 200)
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (x0, y0, x1, y1) == (92, 40, 188, 160)
    assert np.array_equal(out[outside], image[outside])
    assert _changed(image, out).sum() > 500  # and something inside did change


def test_an_ellipse_leaves_the_corners_of_its_box_alone():
    image = _texture()
    out = anonymize.anonymize(image, BOX, LANDMARKS, Style(mode="fill", shape="ellipse", feather=0))
    assert np.array_equal(out[41, 93], image[41, 93])  # corner of the region, outside the ellipse
    assert tuple(out[100, 140]) == (20, 20, 20)  # centre: filled


def test_blur_removes_high_frequency_energy_inside_the_face():
    image = _texture()
    out = anonymize.anonymize(image, BOX, LANDMARKS, Style(mode="blur", strength=0.5))
    def energy(array):
        return cv2.Laplacian(cv2.cvtColor(array, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    inner = (slice(70, 130), slice(115, 165))
    assert energy(out[inner]) < 0.05 * energy(image[inner])


def test_pixelate_makes_constant_blocks():
    image = _texture()
    out = anonymize.anonymize(image, BOX, LANDMARKS, Style(mode="pixelate", block=12, shape="box", feather=0,
                                                                         enlarge=1.2))
    x0, y0, _, _ = anonymize.region_box(BOX[0], 1.2, 300, 200)
    block = out[y0 + 12:y0 + 24, x0 + 12:x0 + 24]
    assert np.all(block == block[0, 0])


def test_eye_bar_covers_both_eyes_and_not_the_mouth():
    image = _texture()
    out = anonymize.anonymize(image, BOX, LANDMARKS, Style(mode="eye_bar", color=(0, 0, 0), feather=0,
                                                                         strength=0))  # the bar alone
    for x, y in LANDMARKS[0, :2].astype(int):
        assert tuple(out[y, x]) == (0, 0, 0)
    mouth_x, mouth_y = LANDMARKS[0, 3].astype(int)
    assert np.array_equal(out[mouth_y, mouth_x], image[mouth_y, mouth_x])


def test_drawn_mask_paints_the_whole_region_and_marks_the_eyes():
    image = np.full((200, 300, 3), 128, np.uint8)
    out = anonymize.anonymize(image, BOX, LANDMARKS, Style(mode="mask", feather=0, mask_face=True))
    assert tuple(out[70, 140]) == (245, 200, 60)  # the mask's face colour
    left_eye = LANDMARKS[0, 0].astype(int)
    assert out[left_eye[1], left_eye[0]].max() < 80  # a dark eye drawn at the landmark


def test_feather_softens_the_edge():
    image = np.zeros((200, 300, 3), np.uint8)
    hard = anonymize.anonymize(image, BOX, LANDMARKS, Style(mode="fill", color=(255, 255, 255), feather=0))
    soft = anonymize.anonymize(image, BOX, LANDMARKS, Style(mode="fill", color=(255, 255, 255), feather=0.3))
    row = 100  # a horizontal cut through the centre
    assert set(np.unique(hard[row, :, 0])) <= {0, 255}
    assert len(np.unique(soft[row, :, 0])) > 10  # a ramp of intermediate values
    assert soft[row, 140, 0] == 255


def test_no_faces_leaves_the_image_unchanged_and_faces_at_the_border_are_clipped():
    image = _texture()
    assert np.array_equal(anonymize.anonymize(image, np.zeros((0, 4)), None, Style()), image)
    out = anonymize.anonymize(image, np.array([[-30, -20, 40, 60]], np.float32), None, Style(mode="fill"))
    assert out.shape == image.shape and tuple(out[5, 5]) == (20, 20, 20)
    huge = anonymize.anonymize(image, np.array([[-1e7, -1e7, 1e7, 1e7], [np.nan] * 4], np.float32), None,
                               Style(mode="fill", shape="box"))
    assert np.all(huge == 20)  # a box larger than the image covers all of it, without a giant mask


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="mode must be one of"):
        Style(mode="erase")
    with pytest.raises(ValueError, match="five face landmarks"):
        anonymize.anonymize(_texture(), BOX, None, Style(mode="eye_bar"))


# --- the measured defaults: sizes that scale with the face, the eye bar over a blur, the plain sticker ---------------


def test_a_tiny_face_is_flattened_whole_and_a_large_one_keeps_only_its_coarse_shape():
    image = _texture(400, 400)
    tiny = np.array([[50, 50, 60, 60]], np.float32)  # 10 px: a face at the back of a crowd
    large = np.array([[150, 150, 350, 350]], np.float32)
    for mode in ("blur", "pixelate"):
        out = anonymize.anonymize(image, np.concatenate([tiny, large]), None, Style(mode=mode, shape="box", feather=0))
        x0, y0, x1, y1 = anonymize.region_box(tiny[0], 1.5, 400, 400)
        assert out[y0 + 2:y1 - 2, x0 + 2:x1 - 2].std(axis=(0, 1)).max() < 12, mode  # no shape left inside
        inner = out[200:300, 200:300].astype(np.float32)
        assert 0 < inner.std(axis=(0, 1)).max() < 0.2 * image[200:300, 200:300].std(axis=(0, 1)).max(), mode
    assert anonymize.blur_sigma(15, 0.5) / 15 > 1.5 * anonymize.blur_sigma(300, 0.5) / 300  # relatively stronger
    assert anonymize.block_size(15, 0.5) >= 7 and anonymize.block_size(300, 0.5) < 300 / 4


def test_eye_bar_lies_over_a_blurred_face_by_default_and_mask_is_a_plain_sticker():
    image = _texture()
    out = anonymize.anonymize(image, BOX, LANDMARKS, Style(mode="eye_bar", feather=0))
    for x, y in LANDMARKS[0, :2].astype(int):
        assert tuple(out[y, x]) == anonymize.EYE_BAR_COLOR
    mouth_x, mouth_y = LANDMARKS[0, 3].astype(int)
    assert not np.array_equal(out[mouth_y, mouth_x], image[mouth_y, mouth_x])  # the rest of the face is blurred
    sticker = anonymize.anonymize(image, BOX, None, Style(mode="mask", feather=0))  # needs no landmarks
    assert tuple(sticker[100, 140]) == anonymize.MASK_COLOR
    assert tuple(sticker[LANDMARKS[0, 0, 1].astype(int), LANDMARKS[0, 0, 0].astype(int)]) == anonymize.MASK_COLOR


def test_a_stronger_style_hides_more_and_stops_at_the_limits():
    style = Style(mode="mask", strength=0.5, block=10, enlarge=1.5, mask_face=True)
    first, third = anonymize.stronger(style, 1), anonymize.stronger(style, 3)
    assert style.strength < first.strength < third.strength == 1.0
    assert style.enlarge < first.enlarge < third.enlarge <= anonymize.MAX_ENLARGE
    assert first.block > style.block and not first.mask_face and first.mode == "mask"
    assert anonymize.stronger(Style(block=0), 2).block == 0  # 0 stays "from strength"
