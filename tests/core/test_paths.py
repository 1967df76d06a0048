"""Keyframe paths (positions, loops, easing, guidance curve) and pacing math (allocation, re-placing, Lab)."""

import math

import pytest
import torch

from latentscape.core.pacing import allocate, lab_distance, repace, smoothness, srgb_to_lab
from latentscape.core.paths import (
    EASINGS,
    ease,
    guidance_curve,
    keyframe_frames,
    locate,
    uniform_positions,
)


def test_open_path_puts_every_keyframe_on_a_frame():
    u = uniform_positions(3, 9)
    assert len(u) == 9 and u[0] == 0.0 and u[-1] == 2.0
    assert [u[i] for i in keyframe_frames(3, 9, False)] == [0.0, 1.0, 2.0]
    assert all(b > a for a, b in zip(u, u[1:]))
    # frames that do not divide evenly still land every keyframe on a frame
    u = uniform_positions(4, 8)
    assert {0.0, 1.0, 2.0, 3.0} <= set(u) and len(u) == 8


def test_closed_loop_returns_to_the_first_keyframe_without_repeating_it():
    u = uniform_positions(3, 9, closed=True)
    assert len(u) == 9 and u[0] == 0.0 and u[-1] < 3.0
    assert {0.0, 1.0, 2.0} <= set(u)
    a, b, t = locate(u[-1], 3, closed=True)
    assert (a, b) == (2, 0) and 0 < t < 1  # the last frame is on the way back to keyframe 0
    gaps = [y - x for x, y in zip(u + [3.0], (u + [3.0])[1:])]
    assert max(gaps) == pytest.approx(min(gaps))  # the wrap-around step is as long as the others
    assert uniform_positions(2, 2, closed=True) == [0.0, 1.0]  # A, B, (A)


def test_too_few_frames_for_the_keyframes_is_refused():
    with pytest.raises(ValueError):
        keyframe_frames(4, 3, False)
    assert keyframe_frames(3, 3, False) == [0, 1, 2]


def test_locate_keyframes_and_segments():
    assert locate(0.0, 3) == (0, 0, 0.0)
    assert locate(1.0, 3) == (1, 1, 0.0)
    assert locate(2.0, 3) == (2, 2, 0.0)  # the end of an open path is the last keyframe alone
    a, b, t = locate(1.25, 3)
    assert (a, b) == (1, 2) and t == pytest.approx(0.25)
    assert locate(3.0, 3, closed=True) == (0, 0, 0.0)
    with pytest.raises(ValueError):
        locate(2.5, 3)


@pytest.mark.parametrize("kind", list(EASINGS))
def test_easings_keep_endpoints_and_are_monotone(kind):
    assert ease(0.0, kind) == 0.0 and ease(1.0, kind) == 1.0
    values = [ease(i / 50, kind) for i in range(51)]
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_ease_in_out_lingers_at_keyframes():
    u = uniform_positions(2, 11, easing="in_out")
    steps = [b - a for a, b in zip(u, u[1:])]
    assert steps[0] < steps[5] and steps[-1] < steps[5]
    assert u[0] == 0.0 and u[-1] == 1.0


def test_guidance_curve_is_one_at_keyframes_and_dips_midway():
    assert guidance_curve(0.0, 0.5) == 1.0 and guidance_curve(1.0, 0.5) == 1.0
    assert guidance_curve(0.5, 0.5) == pytest.approx(0.5)
    assert guidance_curve(0.3, 0.0) == 1.0


def test_allocate_gives_every_segment_a_gap_and_longer_segments_more():
    assert allocate([1.0, 3.0], 8) == [2, 6]
    assert allocate([0.0, 5.0, 0.0], 6) == [1, 4, 1]
    assert sum(allocate([0.3, 0.1, 7.0], 20)) == 20
    with pytest.raises(ValueError):
        allocate([1.0, 1.0, 1.0], 2)


def _measure(positions, f):
    return [abs(f(b) - f(a)) for a, b in zip(positions, positions[1:])]


def test_repace_evens_the_steps_of_an_uneven_path_and_keeps_keyframes():
    # a path whose look changes slowly in segment 0 and fast (and unevenly) in segment 1
    f = lambda u: 0.1 * u if u <= 1 else 0.1 + (u - 1) ** 3 * 5  # noqa: E731
    dense = uniform_positions(3, 41)
    before = uniform_positions(3, 9)
    after = repace(dense, _measure(dense, f), 3)
    after = [after[i] for i in range(len(after))]
    assert 0.0 in after and 1.0 in after and after[-1] == 2.0
    assert len(after) == len(dense)
    coarse = repace(before, _measure(before, f), 3)
    assert len(coarse) == 9 and {0.0, 1.0, 2.0} <= set(coarse)
    s_before, s_after = smoothness(_measure(before, f)), smoothness(_measure(coarse, f))
    assert s_after.max < s_before.max and s_after.ratio < s_before.ratio
    fine = smoothness(_measure(after, f))
    assert fine.ratio < 1.6  # with dense measurements the steps are nearly even


def test_repace_closed_path_and_zero_length_segments():
    u = uniform_positions(2, 6, closed=True)
    out = repace(u, [0.0] * 6, 2, closed=True)
    assert out == u  # nothing changes anywhere: stays uniform
    out = repace(u, [1, 1, 1, 5, 5, 5], 2, closed=True)
    assert len(out) == 6 and out[0] == 0.0 and 1.0 in out and out[-1] < 2.0
    assert sum(1 for x in out if x >= 1.0) > sum(1 for x in out if x < 1.0)  # the longer way back gets more frames


def test_repace_with_easing_composes():
    u = uniform_positions(2, 11)
    out = repace(u, [1.0] * 10, 2, easing="in_out")
    assert out == pytest.approx(uniform_positions(2, 11, easing="in_out"))


def test_smoothness_statistics():
    s = smoothness([1.0, 2.0, 3.0])
    assert (s.max, s.mean, s.total) == (3.0, 2.0, 6.0) and s.ratio == 1.5
    assert set(s.to_dict()) == {"max", "mean", "total", "max_over_mean"}


def test_srgb_to_lab_reference_values():
    px = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).view(3, 3, 1, 1)
    lab = srgb_to_lab(px).view(3, 3)
    assert lab[0].tolist() == pytest.approx([100.0, 0.0, 0.0], abs=0.01)
    assert lab[1].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=0.01)
    assert lab[2].tolist() == pytest.approx([53.24, 80.09, 67.20], abs=0.05)  # sRGB red


def test_lab_distance_is_zero_for_equal_images_and_grows_with_change():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    assert torch.equal(lab_distance(x, x), torch.zeros(2, dtype=torch.float64))
    small, large = lab_distance(x, (x + 0.02).clamp(0, 1)), lab_distance(x, (x + 0.2).clamp(0, 1))
    assert (small > 0).all() and (large > small).all()
    white, black = torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    assert lab_distance(white, black).item() == pytest.approx(100.0, abs=0.01)
    assert math.isfinite(lab_distance(torch.rand(1, 3, 1, 1), torch.rand(1, 3, 1, 1)).item())


def test_lab_distance_builds_its_constants_on_the_input_device():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    # float64 and float32 inputs agree (the math runs in float64 either way)
    assert torch.allclose(lab_distance(x.double(), y.double()), lab_distance(x, y), rtol=0, atol=1e-5)
    # on another device (meta stands in for CUDA here) nothing may be left on the CPU: the CPU constants
    # used to meet a non-CPU image in one einsum and raise
    d = lab_distance(x.to("meta"), y.to("meta"))
    assert d.device.type == "meta" and d.shape == (2,) and d.dtype == torch.float64
    assert srgb_to_lab(x.to("meta")).device.type == "meta"
