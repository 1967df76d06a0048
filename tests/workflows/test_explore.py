"""explore: the centre is the point's own image; distance grows from the centre."""

from __future__ import annotations

import math

import pytest
import torch
from creative_helpers import FAMILIES, FAST, assert_same, load_family, max_diff, standalone

from latentscape.core.noise import seeded_noise
from latentscape.errors import LatentscapeError
from latentscape.workflows.explore import ExploreConfig, explore, neighbourhood_noise, offsets
from latentscape.workflows.grids import parse_grid
from latentscape.workflows.replay import replay


@pytest.mark.parametrize("fixture", FAMILIES)
def test_centre_is_the_point_and_cells_differ(request, fixture):
    model = load_family(request, fixture)
    out = explore(model, ExploreConfig(point="a red cat@3", grid="3x3", radius=0.5, cfg=5.0, **FAST))
    assert len(out.images) == 9
    assert_same(out.images[4], standalone(model, "a red cat", 3))
    assert all(max_diff(out.images[i], out.images[4]) > 1 for i in range(9) if i != 4)
    assert out.info["sheet"].width > 3 * 32 and out.info["sheet_recipe"].params["returns"] == "sheet"


def test_noise_moves_by_the_variation_angle():
    centre = seeded_noise([5], (4, 8, 8))
    uv = offsets(5, 5)
    noise, t = neighbourhood_noise(centre, uv, 0.3, (6, 7))
    c = centre.flatten().double()
    for (u, v), x, ti in zip(uv, noise, t):
        angle = math.acos(min(1.0, float(x.flatten().double() @ c / (x.flatten().double().norm() * c.norm()))))
        assert angle == pytest.approx(float(ti) * math.pi / 2, abs=1e-4)  # slerp towards an orthogonal direction
        assert float(ti) == pytest.approx(min(0.3 * math.hypot(u, v), 1.0))
        assert float(x.norm()) == pytest.approx(float(centre.norm()), rel=1e-5)
    assert torch.equal(noise[12], centre[0])  # the centre of a 5x5 grid
    # opposite cells move in opposite directions
    d_left, d_right = noise[10] - centre[0], noise[14] - centre[0]
    assert float((d_left.flatten() @ d_right.flatten())) < 0


def test_radius_0_repeats_the_point_and_cond_jitter_moves_the_edges(request):
    model = load_family(request, "tiny_sd")
    still = explore(model, ExploreConfig(point="a red cat@3", grid="3x1", radius=0.0, cfg=5.0, **FAST))
    assert all(max_diff(im, still.images[0]) <= 1 for im in still.images)
    jittered = explore(model, ExploreConfig(point="a red cat@3", grid="3x1", radius=0.0, cond_jitter=2.0, cfg=5.0, **FAST))
    assert_same(jittered.images[1], still.images[1])
    assert max_diff(jittered.images[0], still.images[0]) > 1


def test_cells_and_sheet_replay(request):
    model = load_family(request, "tiny_sd")
    out = explore(model, ExploreConfig(point="a dog", seed=8, grid="3x3", cfg=5.0, **FAST))
    cell = replay(model, out.recipes[7])
    assert max_diff(cell.images[7], out.images[7]) == 0
    sheet = replay(model, out.info["sheet_recipe"])
    assert len(sheet.images) == 1 and max_diff(sheet.images[0], out.info["sheet"]) == 0


@pytest.mark.parametrize("grid", ["0x0", "4x4", "17x17", "3", "axb"])
def test_bad_grids_fail(grid):
    with pytest.raises(LatentscapeError, match="--grid got"):
        parse_grid(grid, odd=True)


def test_bad_radius_fails(request):  # image points: test_explore_image.py
    model = load_family(request, "tiny_sd")
    with pytest.raises(LatentscapeError, match="--radius got"):
        explore(model, ExploreConfig(point="a cat", radius=2.0, **FAST))
