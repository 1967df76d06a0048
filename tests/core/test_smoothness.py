"""Smoothness statistics and the structural distance: a known jump is found, even steps score 1."""

import numpy as np
import pytest
import torch

from latentscape.core.smoothness import adjacent_pairs, one_minus_gini, ssim_distance, step_stats


def test_even_steps_score_one_and_a_jump_is_reported():
    even = step_stats([0.2] * 15)
    assert even.one_minus_gini == pytest.approx(1.0)
    assert even.max_over_mean == pytest.approx(1.0)
    assert even.istd == pytest.approx(0.0, abs=1e-12)
    assert even.frames == 16 and even.path_length == pytest.approx(3.0)

    d = [1.0] * 15
    d[6] = 10.0  # one cut
    jump = step_stats(d)
    assert jump.largest_step == 6
    assert jump.max_over_mean == pytest.approx(10 / (24 / 15))
    assert jump.one_minus_gini < 0.7
    assert jump.istd == pytest.approx(float(np.std(d)))  # population std, in the metric's units
    assert jump.istd_relative == pytest.approx(jump.istd / jump.mean)


def test_gini_known_values_and_bad_input():
    assert one_minus_gini([0, 0, 0, 4]) == pytest.approx(0.25)  # one step carries all: 1/n
    assert one_minus_gini([0.0, 0.0]) == 1.0  # nothing moves: nothing is uneven
    with pytest.raises(ValueError):
        one_minus_gini([1.0, -1.0])
    with pytest.raises(ValueError):
        step_stats([])
    with pytest.raises(ValueError):
        step_stats([1.0, float("nan")])


def test_adjacent_pairs_open_and_closed():
    assert adjacent_pairs(3) == [(0, 1), (1, 2)]
    assert adjacent_pairs(3, closed=True) == [(0, 1), (1, 2), (2, 0)]


def _disc(x: float, size: int = 64) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    img = torch.ones(3, size, size, dtype=torch.float64)
    img[:, ((yy - size / 2) ** 2 + (xx - x) ** 2) < 100] = torch.tensor([0.8, 0.1, 0.1], dtype=torch.float64).view(3, 1)
    return img


def test_ssim_distance_is_zero_for_equal_images_and_grows_with_displacement():
    a = torch.stack([_disc(20)] * 3)
    b = torch.stack([_disc(20), _disc(24), _disc(40)])
    d = ssim_distance(a, b)
    assert d[0] == pytest.approx(0.0, abs=1e-9)
    assert 0 < d[1] < d[2] <= 1.0
    # sees structure, not only colour: a uniform brightness shift costs less than moving the shape
    shifted = (a * 0.9 + 0.05)[1:2]
    assert ssim_distance(a[1:2], shifted)[0] < d[2]
    # tiny images still work (the window shrinks)
    assert ssim_distance(torch.rand(2, 3, 5, 5), torch.rand(2, 3, 5, 5)).shape == (2,)
    with pytest.raises(ValueError):
        ssim_distance(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
