"""Every exploration verb on the embedded emoji model (skipped until the model is exported), with its
exact property: vary 0 = source, blend one-hot = input, mix 0 = content, explore centre = point,
map corners = corners, sweep cells = standalone images, math of one prompt = generate."""

from __future__ import annotations

import pytest
from creative_helpers import assert_same

from latentscape.workflows.blend import BlendConfig, blend
from latentscape.workflows.explore import ExploreConfig, explore
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.latent_map import MapConfig, latent_map
from latentscape.workflows.latent_math import MathConfig, latent_math
from latentscape.workflows.mix import MixConfig, mix
from latentscape.workflows.sweep import SweepConfig, sweep
from latentscape.workflows.vary import VaryConfig, vary

STEPS = dict(steps=8)
CAT, DOG = "cat face, google style", "dog face, twitter style"


@pytest.fixture(scope="module")
def refs(embedded):
    def ref(prompt, seed, cfg=None):
        return generate(embedded, GenerateConfig(prompt=prompt, seed=seed, cfg=cfg, **STEPS)).images[0]
    return ref


def test_vary_blend_mix_math(embedded, refs):
    cat = refs(CAT, 1)
    assert_same(vary(embedded, VaryConfig(prompt=CAT, seed=1, n=2, strength=0.0, variation_seed=5, **STEPS)).images[1], cat)
    assert_same(vary(embedded, VaryConfig(prompt=CAT, seed=1, n=1, strength=1.0, variation_seed=5, **STEPS)).images[0], refs(CAT, 5))
    assert_same(blend(embedded, BlendConfig(inputs=(f"{CAT}@1", f"{DOG}@2"), weights=(1, 0), **STEPS)).images[0], cat)
    assert_same(mix(embedded, MixConfig(content=f"{CAT}@1", style="twitter style", ratio=(0.0, 0.5), **STEPS)).images[0], cat)
    assert_same(mix(embedded, MixConfig(content=f"{CAT}@1", style="twitter style", ratio=0.0, mode="schedule", **STEPS)).images[0], cat)
    assert_same(latent_math(embedded, MathConfig(expression=f'"{CAT}"', seed=1, **STEPS)).images[0], cat)


def test_grids(embedded, refs):
    out = explore(embedded, ExploreConfig(point=f"{CAT}@1", grid="3x3", **STEPS))
    assert_same(out.images[4], refs(CAT, 1))
    corners = (f"{CAT}@1", f"{DOG}@2", "grinning face, google style@3", "fire, twitter style@4")
    out = latent_map(embedded, MapConfig(corners=corners, grid="3x3", **STEPS))
    for cell, (prompt, seed) in zip((0, 2, 6, 8), [(CAT, 1), (DOG, 2), ("grinning face, google style", 3), ("fire, twitter style", 4)]):
        assert_same(out.images[cell], refs(prompt, seed))
    out = sweep(embedded, SweepConfig(prompts=(CAT,), cfgs=(1.0, 7.5), seeds=2, seed=0, **STEPS))
    assert out.info["adherence"] == "classifier" and 0 <= out.info["table"][1]["adherence"] <= 1
    assert_same(out.images[3], refs(CAT, 1, cfg=7.5))
