"""The loop's per-item guarantees: an item's result does not depend on what it is batched with."""

import numpy as np
import pytest
import torch

import latentscape
from latentscape.core.noise import seeded_noise
from latentscape.sampling import denoise
from latentscape.workflows.common import encode


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def _run(model, seeds, scales, rescale=0.0):
    cond, uncond = encode(model, ["a cat"] * len(seeds), [""] * len(seeds), need_uncond=True)
    noise = seeded_noise(seeds, model.latent_format.latent_shape(32, 32))
    return denoise(model, noise, cond, uncond, steps=3, guidance_scale=torch.tensor(scales), guidance_rescale=rescale)


def test_items_with_cfg_at_most_1_get_no_guidance_even_beside_guided_items(sd):
    mixed = _run(sd, [1, 2, 3], [0.5, 7.5, 1.0])
    for i, (seed, scale) in enumerate([(1, 0.5), (2, 7.5), (3, 1.0)]):
        alone = _run(sd, [seed], [scale])
        assert torch.allclose(mixed[i : i + 1], alone, atol=1e-5), f"item {i} at cfg {scale} changed by batching"


def test_per_item_rescale_matches_alone(sd):
    cond, uncond = encode(sd, ["a cat"] * 2, [""] * 2, need_uncond=True)
    noise = seeded_noise([4, 5], sd.latent_format.latent_shape(32, 32))
    both = denoise(sd, noise, cond, uncond, steps=2, guidance_scale=6.0, guidance_rescale=torch.tensor([0.0, 0.7]))
    for i, phi in enumerate([0.0, 0.7]):
        alone = denoise(sd, noise[i : i + 1], cond.select(i), uncond.select(i), steps=2, guidance_scale=6.0, guidance_rescale=phi)
        assert torch.allclose(both[i : i + 1], alone, atol=1e-5)


def test_per_item_scale_equals_the_scalar_path_bitwise():
    from latentscape.core.guidance import cfg

    u, c = torch.randn(2, 4, 3, 3).half(), torch.randn(2, 4, 3, 3).half()
    assert torch.equal(cfg(u, c, torch.tensor([7.3, 7.3]))[0], cfg(u, c, 7.3)[0])


def test_flow_heun_is_refused_where_it_cannot_follow_the_schedule(tiny_flux, tiny_sd3):
    from latentscape.errors import LatentscapeError
    from latentscape.workflows.generate import GenerateConfig, generate

    flux = latentscape.load(str(tiny_flux))
    with pytest.raises(LatentscapeError, match="cannot follow the model's schedule.*flow_euler"):
        generate(flux, GenerateConfig(prompt="p", steps=2, sampler="flow_heun", width=32, height=32))
    sd3 = latentscape.load(str(tiny_sd3))  # SD3's fixed shift: heun follows it
    out = generate(sd3, GenerateConfig(prompt="p", steps=2, sampler="heun", seed=1))
    assert np.isfinite(out.latents.numpy()).all()


def test_a_chunked_prompt_with_a_short_negative_is_padded_like_encode_does(sd):
    """Callers that encode themselves (the Python API, the embedded model's eval) pass a long prompt's
    multi-chunk conditioning with a one-chunk negative: the loop pads them as workflows.common.encode does."""
    long_prompt = ", ".join(["a small red cat"] * 30)
    cond, uncond = sd.encode_prompts([long_prompt]), sd.encode_negatives([""])
    assert cond.embeds.shape[1] > uncond.embeds.shape[1]
    noise = seeded_noise([3], sd.latent_format.latent_shape(32, 32))
    raw = denoise(sd, noise, cond, uncond, steps=2, guidance_scale=6.0)
    cond_m, uncond_m = encode(sd, [long_prompt], [""], need_uncond=True)
    assert torch.equal(raw, denoise(sd, noise, cond_m, uncond_m, steps=2, guidance_scale=6.0))
