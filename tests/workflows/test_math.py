"""math: a single prompt reproduces generate; arithmetic acts on conditioning, noise and latents."""

from __future__ import annotations

import pytest
import torch
from creative_helpers import FAMILIES, FAST, assert_same, load_family, max_diff, standalone

from latentscape.core.noise import seeded_noise
from latentscape.errors import LatentscapeError
from latentscape.io.images import pil_to_tensor
from latentscape.workflows.common import decode_images
from latentscape.workflows.latent_math import MathConfig, combine_noise, latent_math
from latentscape.workflows.replay import replay


@pytest.mark.parametrize("fixture", FAMILIES)
def test_single_prompt_is_generate_and_arithmetic_changes_it(request, fixture):
    model = load_family(request, fixture)
    ref = standalone(model, "a red cat", 3)
    assert_same(latent_math(model, MathConfig(expression='"a red cat"', seed=3, cfg=5.0, **FAST)).images[0], ref)
    assert_same(latent_math(model, MathConfig(expression='"a red cat" + seed:3', seed=99, cfg=5.0, **FAST)).images[0], ref)
    # adding and removing the same prompt cancels out (up to float rounding)
    cancel = latent_math(model, MathConfig(expression='"a red cat" + "a dog" - "a dog"', seed=3, cfg=5.0, **FAST))
    assert_same(cancel.images[0], ref, tol=2)
    moved = latent_math(model, MathConfig(expression='"a red cat" - "cat" + "dog"', seed=3, cfg=5.0, **FAST))
    assert max_diff(moved.images[0], ref) > 1


def test_noise_arithmetic_keeps_a_gaussian_norm():
    noises = seeded_noise([1, 2, 3], (4, 16, 16))
    for coefficients in ([1.0, 1.0, 0.0], [0.5, -0.5, 2.0], [3.0, 0.0, 0.0]):
        out = combine_noise(noises, coefficients)
        assert float(out.norm()) == pytest.approx(float(noises.flatten(1).norm(dim=1).mean()), rel=0.05)
    assert torch.equal(combine_noise(noises[:1], [1.0]), noises[:1])
    with pytest.raises(LatentscapeError, match="cancel out"):
        combine_noise(torch.cat([noises[:1], noises[:1]]), [1.0, -1.0])


def test_image_operands_add_latents_and_replay(request, tmp_path):
    model = load_family(request, "tiny_sd")
    a, b = standalone(model, "a red cat", 1), standalone(model, "a dog", 2)
    a.save(tmp_path / "a.png")
    b.save(tmp_path / "b.png")
    expr = f'image:{tmp_path / "a.png"} + 0.5*image:{tmp_path / "b.png"} - 0.5*image:{tmp_path / "b.png"}'
    out = latent_math(model, MathConfig(expression=expr, strength=0.0, image_mode="noise", **FAST))
    assert_same(out.images[0], decode_images(model, model.encode_images(pil_to_tensor([a])))[0], tol=2)
    painted = latent_math(model, MathConfig(expression=f'image:{tmp_path / "a.png"} + "a dog"', strength=0.5, image_mode="noise", seed=4, **FAST))
    assert max_diff(replay(model, painted.recipes[0]).images[0], painted.images[0]) == 0


def test_bad_expressions_fail_before_rendering(request):
    model = load_family(request, "tiny_sd")
    for expr, fragment in (('"a" *', "ends where a term"), ("0*\"a\"", "coefficient 0"), ("cat", "not quoted")):
        with pytest.raises(LatentscapeError, match=fragment):
            latent_math(model, MathConfig(expression=expr, **FAST))
