"""The pixel-loss-versus-GAN lesson: a pixel (L2) loss learns the gray average, a GAN picks black or white (or one
sharp texture phase) and uses both, for several seeds; reports stream, stop and repeat exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import gan_lesson, gan_lesson_views

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def finished():
    """(variant, seed) -> final_stats of a full default-length run, trained once for the whole module."""
    cache: dict = {}

    def get(variant: str, seed: int) -> dict:
        if (variant, seed) not in cache:
            *_, last = gan_lesson.run(variant, seed=seed, report_every=gan_lesson.DEFAULT_STEPS)
            assert last.done and last.step == gan_lesson.DEFAULT_STEPS
            cache[variant, seed] = gan_lesson.final_stats(last)
        return cache[variant, seed]

    return get


@pytest.mark.parametrize("seed", SEEDS)
def test_pixel_loss_learns_the_gray_average_of_black_and_white(finished, seed):
    pixel = finished("black-white", seed)["L2"]
    assert abs(pixel["mean"] - 0.5) < 0.1
    assert pixel["near_half"] > 0.9
    assert pixel["near_modes"] < 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_gan_picks_black_or_white_and_uses_both(finished, seed):
    gan = finished("black-white", seed)["GAN"]
    assert gan["near_modes"] > 0.8
    assert gan["near_0"] > 0.2 and gan["near_1"] > 0.2  # no mode collapse onto one colour
    assert 0.2 < gan["nearest_is_a"] < 0.8
    assert gan["near_half"] < 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_texture_pixel_loss_blurs_and_gan_draws_one_sharp_phase(finished, seed):
    stats = finished("texture", seed)
    real, pixel, gan = stats["real"], stats["L2"], stats["GAN"]
    assert real["contrast"] > 0.45
    assert pixel["contrast"] < 0.1 * real["contrast"]  # the flat gray average of the two phases
    assert pixel["nearest_version_error"] > 0.4
    assert gan["contrast"] > 0.35
    assert gan["nearest_version_error"] < 0.1  # close to one of the two real versions
    assert 0.2 < gan["nearest_is_a"] < 0.8  # and both phases are used
    assert pixel["certain_error"] < 0.1 and gan["certain_error"] < 0.1  # where the input decides, both are right


@pytest.mark.parametrize("variant", gan_lesson.VARIANTS)
def test_pixel_loss_wins_psnr_while_the_gan_looks_real(finished, variant):
    stats = finished(variant, 0)
    assert stats["L2"]["psnr"] > stats["GAN"]["psnr"] + 2
    assert stats["GAN"]["nearest_version_error"] < stats["L2"]["nearest_version_error"] - 0.3


def test_reports_come_at_fixed_steps_and_the_last_is_done():
    reports = list(gan_lesson.run("black-white", steps=7, report_every=3))
    assert [report.step for report in reports] == [0, 3, 6, 7]
    assert [report.done for report in reports] == [False, False, False, True]
    assert [entry[0] for entry in reports[-1].history] == [0, 3, 6, 7]
    assert all(np.isfinite(reports[-1].history[-1][1:]))


def test_closing_the_run_keeps_the_last_report():
    run = gan_lesson.run("texture", steps=100, report_every=10)
    received = [next(run) for _ in range(3)]
    run.close()
    last = received[-1]
    assert last.step == 20 and not last.done
    stats = gan_lesson.final_stats(last)
    assert set(stats) == {"L2", "GAN", "real"}
    assert last.gan_outputs.dtype == np.uint8 and last.gan_outputs.shape == (6, 16, 16)
    assert last.real_versions.shape == (2, 6, 16, 16)
    assert last.pixel_histogram.sum() == last.gan_histogram.sum() > 0


def test_same_seed_gives_the_same_numbers_and_leaves_the_callers_random_state():
    state = torch.get_rng_state()
    first = list(gan_lesson.run("texture", steps=20, seed=5, report_every=10))[-1]
    assert torch.equal(torch.get_rng_state(), state)
    second = list(gan_lesson.run("texture", steps=20, seed=5, report_every=10))[-1]
    other = list(gan_lesson.run("texture", steps=20, seed=6, report_every=10))[-1]
    assert gan_lesson.final_stats(first) == gan_lesson.final_stats(second)
    assert np.array_equal(first.gan_outputs, second.gan_outputs)
    assert np.array_equal(first.gan_histogram, second.gan_histogram)
    assert gan_lesson.final_stats(first) != gan_lesson.final_stats(other)


def test_l1_is_offered_and_named_in_the_report():
    last = list(gan_lesson.run("black-white", steps=3, pixel_loss="l1"))[-1]
    assert last.pixel_loss_name == "L1" and set(gan_lesson.final_stats(last)) == {"L1", "GAN", "real"}


def test_runs_under_the_callers_inference_mode():
    with torch.inference_mode():
        last = list(gan_lesson.run("black-white", steps=3))[-1]
    assert np.isfinite(last.gan_d_loss)


@pytest.mark.parametrize("bad", [{"variant": "stripes"}, {"pixel_loss": "l3"}, {"steps": -1}])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        next(gan_lesson.run(**bad))


@pytest.mark.parametrize("variant", gan_lesson.VARIANTS)
def test_views_are_rgb_pictures(variant):
    last = list(gan_lesson.run(variant, steps=2))[-1]
    grid = gan_lesson_views.side_by_side(last)
    charts = gan_lesson_views.histograms(last)
    rows = 5 if variant == "texture" else 4
    for picture in (grid, charts):
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert grid.shape[0] > rows * gan_lesson_views.TILE
    assert charts.shape[0] > 2 * 100
    # The tiles show the reports' pixels: a white real version appears as a white block somewhere.
    assert (grid == 255).all(axis=2).any() and (grid == 0).all(axis=2).any()
