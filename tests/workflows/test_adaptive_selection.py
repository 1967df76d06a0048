"""Choosing frames among measured candidates (core.pacing.select_frames): the dynamic programme is exact,
keeps forced and pinned candidates, follows an easing's weights and evens a path with a known cut by two
distances at once."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from latentscape.core.pacing import _bottleneck_path, select_frames


def _cut_path(extra: int = 30):
    """Candidates along a path whose value jumps by 1 within 0.04 of it (dense candidates there)."""
    u = np.sort(np.concatenate([np.linspace(0, 1, 40), np.linspace(0.42, 0.46, extra)]))
    v = 1 / (1 + np.exp(-(u - 0.44) / 0.005)) + 0.2 * u
    d = np.abs(v[:, None] - v[None, :])
    return u, v, d


def _ratio(d, path):
    steps = np.array([d[a, b] for a, b in zip(path, path[1:])])
    return steps.max() / steps.mean()


def test_a_known_cut_is_evened_by_both_distances():
    u, v, d = _cut_path()
    uniform = np.abs(np.diff(1 / (1 + np.exp(-(np.linspace(0, 1, 16) - 0.44) / 0.005)) + 0.2 * np.linspace(0, 1, 16)))
    assert uniform.max() / uniform.mean() > 10  # what 16 evenly placed frames would show
    squared = d**2  # a second distance that grows quadratically with the first, as 1 - SSIM does with ΔE
    path, ratio = select_frames([d, squared], 16)
    assert len(path) == 16 and path[0] == 0 and path[-1] == len(u) - 1 and path == sorted(set(path))
    assert _ratio(d, path) <= 1.6 and _ratio(squared, path) <= 1.6
    assert ratio == pytest.approx(max(_ratio(d, path), _ratio(squared, path)))
    assert sum(0.42 <= u[i] <= 0.46 for i in path) >= 8  # the frames crowd into the cut


def test_the_bottleneck_programme_is_exact():
    rng = np.random.default_rng(3)
    m, count = 9, 4
    cost = rng.random((m, m))
    allowed = np.triu(np.ones((m, m), dtype=bool), 1)
    slots = np.full(m, -1)
    slots[0], slots[-1] = 0, count - 1
    path = _bottleneck_path(np.repeat(cost[None], count - 1, 0), allowed, slots, count)
    best = min(max(cost[a, b] for a, b in zip(p, p[1:]))
               for mid in itertools.combinations(range(1, m - 1), count - 2) for p in [(0, *mid, m - 1)])
    assert max(cost[a, b] for a, b in zip(path, path[1:])) == pytest.approx(best)


def test_forced_and_pinned_candidates_are_kept():
    u = np.linspace(0, 2, 41)
    d = np.abs(u[:, None] - u[None, :]) ** 0.7
    path, _ = select_frames([d], 9, forced=[20])
    assert 20 in path
    path, _ = select_frames([d], 9, forced=[20], slots={20: 2})  # keyframe 1 pinned to frame 2
    assert path[2] == 20 and len(path) == 9
    # steps never jump over a forced candidate, even where that would be more even
    path, _ = select_frames([d], 3, forced=[5])
    assert path == [0, 5, 40]


def test_weights_shape_the_steps():
    u = np.linspace(0, 1, 201)
    d = np.abs(u[:, None] - u[None, :])
    path, ratio = select_frames([d], 4, weights=[1, 2, 1])
    steps = np.diff(u[path])
    assert steps == pytest.approx([0.25, 0.5, 0.25], abs=0.01) and ratio == pytest.approx(1.0, abs=0.05)


def test_unmeasured_pairs_are_never_stepped_and_bad_input_is_refused():
    u = np.linspace(0, 1, 11)
    d = np.abs(u[:, None] - u[None, :])
    sparse = np.where(np.abs(np.subtract.outer(range(11), range(11))) <= 2, d, np.inf)
    path, _ = select_frames([sparse], 6)
    assert all(b - a <= 2 for a, b in zip(path, path[1:]))
    with pytest.raises(ValueError, match="cannot choose 12 of 11"):
        select_frames([d], 12)
    with pytest.raises(ValueError, match="no selection of 3"):
        select_frames([sparse], 3)  # two steps of at most 2 candidates cannot reach candidate 10
    with pytest.raises(ValueError, match="weights"):
        select_frames([d], 4, weights=[1, -1, 1])
