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


@pytest.mark.parametrize("size", [64, 37, 6])
def test_per_image_features_give_the_pairwise_distances(size):
    """Measuring pairs among a few images from per-image features (each image converted once, as the frame
    tree does) gives the numbers of the pairwise functions (to float32 rounding: batched kernels may sum in
    another order)."""
    from latentscape.core.pacing import lab_distance, lab_feature_distance, lab_features
    from latentscape.core.smoothness import ssim_feature_distance, ssim_features

    g = torch.Generator().manual_seed(0)
    images = torch.rand(5, 3, size, size, generator=g)
    images[4] = (images[0] + 0.05 * torch.rand(3, size, size, generator=g)).clamp(0, 1)  # a near neighbour
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    a, b = [i for i, _ in pairs], [j for _, j in pairs]
    for features, distance, pairwise in ((lab_features, lab_feature_distance, lab_distance),
                                         (ssim_features, ssim_feature_distance, ssim_distance)):
        each = [features(images[i:i + 1]) for i in range(5)]
        cat = lambda idx: [type(f)(torch.cat([each[i][s][k] for i in idx]) for k in range(len(f))) if isinstance(f, tuple)
                           else torch.cat([each[i][s] for i in idx]) for s, f in enumerate(each[0])]
        got = distance(cat(a), cat(b))
        want = pairwise(images[a], images[b])
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-9), (pairwise.__name__, (got - want).abs().max())
        assert got[pairs.index((0, 4))] < got.max() / 2  # and they measure something: the near pair is near
