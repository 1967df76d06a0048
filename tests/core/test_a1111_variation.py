"""Variation seeds mix noise exactly as AUTOMATIC1111 documents it: a slerp whose norms and angle are taken
along dim 1 of the (C, H, W) noise of one image (so per channel and column), written here from that
description, independently of the implementation."""

from __future__ import annotations

import math

import torch

from latentscape.core.interpolate import slerp, slerp_a1111
from latentscape.core.noise import seeded_noise, variation_noise


def documented_variation(t: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """One image's (C, H, W) noises: normalise along dim 1, one angle per remaining (C, W) index."""
    low_n = low / low.norm(dim=1, keepdim=True)
    high_n = high / high.norm(dim=1, keepdim=True)
    dot = (low_n * high_n).sum(1)  # (C, W)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so).unsqueeze(1) * low + (torch.sin(t * omega) / so).unsqueeze(1) * high


def test_variation_noise_equals_the_documented_a1111_formula():
    shape = (4, 8, 6)  # C, H, W (non-square so dim 1 and dim 2 cannot be confused)
    for seed, sub, t in ((1, 2, 0.45), (123, 9, 0.1), (7, 8, 0.9)):
        a, b = seeded_noise([seed], shape).double(), seeded_noise([sub], shape).double()
        expected = documented_variation(t, a[0], b[0])
        got = variation_noise([seed], [sub], t, shape)[0].double()
        assert torch.allclose(got, expected, atol=1e-6), (seed, sub, t, (got - expected).abs().max())


def test_it_differs_from_a_whole_tensor_slerp_and_keeps_endpoints():
    shape = (4, 8, 8)
    a, b = seeded_noise([1], shape), seeded_noise([2], shape)
    mixed = variation_noise([1], [2], 0.45, shape)
    whole = slerp(a, b, 0.45)
    assert (mixed - whole).norm() / whole.norm() > 0.01  # the old whole-tensor slerp is not A1111's
    assert torch.equal(variation_noise([1], [2], 0.0, shape), a)
    assert torch.equal(variation_noise([1], [2], 1.0, shape), b)


def test_per_item_strengths_and_identical_noises():
    shape = (4, 8, 6)
    a = seeded_noise([3, 4], shape)
    b = seeded_noise([5, 6], shape)
    out = slerp_a1111(a, b, torch.tensor([0.2, 0.7]))
    for i, t in enumerate((0.2, 0.7)):
        assert torch.allclose(out[i].double(), documented_variation(t, a[i].double(), b[i].double()), atol=1e-6)
    same = slerp_a1111(a, a.clone(), 0.5)  # the same seed twice: A1111's parallel fallback, the noise itself
    assert torch.allclose(same, a, atol=1e-6)
    assert not math.isnan(float(same.sum()))
