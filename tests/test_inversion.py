"""Inversion for every family's tiny model: exact reconstructs to float error, ddim/flow improve with steps
and with refinement, and methods that do not fit a model are refused with one sentence."""

import pytest
import torch

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.inversion import interpolate_step_noise, invert_latents, replay
from latentscape.sampling import denoise, invert

FAMILIES = ("tiny_sd", "tiny_sd_v", "tiny_sdxl", "tiny_sd3", "tiny_flux")
_MODELS = {}


def family(request, fixture):
    if fixture not in _MODELS:
        _MODELS[fixture] = latentscape.load(str(request.getfixturevalue(fixture)))
    return _MODELS[fixture]


def image_latents(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    return model.encode_images(torch.rand((1, 3, 32, 32), generator=g) * 2 - 1).float()


def guidance(model):
    return 3.5 if model.embedded_guidance else None


def round_trip_error(model, z0, **options):
    cond = model.encode_prompts(["a cat"])
    inv = invert_latents(model, z0, cond, embedded_guidance=guidance(model), **options)
    return float((replay(model, inv, cond) - z0).abs().max())


@pytest.mark.parametrize("fixture", FAMILIES)
def test_exact_reconstructs_to_float_error(request, fixture):
    model = family(request, fixture)
    z0 = image_latents(model)
    for steps in (3, 12):
        err = round_trip_error(model, z0, method="exact", steps=steps)
        assert err <= 1e-5 * float(z0.abs().max()) + 1e-7, (steps, err)


def unclipped(model):
    """The tiny SD/SDXL configs (PNDM/Euler) do not say ``clip_sample``, so diffusers' DDIM defaults to clipping
    x0 to [-1, 1], which no inversion can undo (the real SD1.5/SDXL configs say false; the tiny SD2-v says false)."""
    if model.scheduler_config.get("clip_sample", True) and not model.is_flow:
        model = latentscape.load(model.model_id)
        model.pipe.scheduler.register_to_config(clip_sample=False)
    return model


@pytest.mark.parametrize("fixture", FAMILIES + ("tiny_flux_schnell",))
def test_ode_inversion_improves_with_steps_and_refinement(request, fixture):
    model = unclipped(family(request, fixture))
    method = "flow" if model.is_flow else "ddim"
    z0 = image_latents(model)
    coarse, fine = (round_trip_error(model, z0, method=method, steps=s, refine=2) for s in (10, 50))
    assert fine < 0.8 * coarse, (coarse, fine)
    plain = round_trip_error(model, z0, method=method, steps=50, refine=0)
    assert fine < plain, (plain, fine)


def test_sampling_invert_is_the_same_entry_point(request):
    model = family(request, "tiny_sd_v")
    z0 = image_latents(model, seed=3)
    cond = model.encode_prompts([""])
    inv = invert(model, z0, cond, method="exact", steps=4)
    direct = denoise(model, inv.noise, cond, sampler="ddim", steps=4, guidance_scale=1.0, step_noise=inv.step_noise)
    assert torch.equal(direct, replay(model, inv, cond))
    assert inv.step_noise.noise.shape == (4, *z0.shape) and bool((inv.step_noise.scales > 0).all())


def test_exact_with_cfg_is_still_exact(request):
    model = family(request, "tiny_sd")
    z0 = image_latents(model, seed=1)
    cond, uncond = model.encode_prompts(["a cat"]), model.encode_negatives([""])
    inv = invert_latents(model, z0, cond, uncond, method="exact", steps=5, guidance_scale=5.0)
    assert float((replay(model, inv, cond, uncond) - z0).abs().max()) <= 1e-5 * float(z0.abs().max())


def test_interpolated_step_noise_is_exact_at_the_ends(request):
    model = family(request, "tiny_sd")
    cond = model.encode_prompts([""])
    a, b = (invert_latents(model, image_latents(model, s), cond, method="exact", steps=4) for s in (0, 1))
    mixed = interpolate_step_noise(a.step_noise, b.step_noise, [0.0, 0.5, 1.0])
    assert torch.equal(mixed.noise[:, 0], a.step_noise.noise[:, 0]) and torch.equal(mixed.noise[:, 2], b.step_noise.noise[:, 0])
    middle = mixed.noise[:, 1]
    assert not torch.allclose(middle, a.step_noise.noise[:, 0]) and not torch.allclose(middle, b.step_noise.noise[:, 0])


@pytest.mark.parametrize("fixture, method, words", [
    ("tiny_sd", "flow", "method 'flow' inverts flow-matching models"),
    ("tiny_sd3", "ddim", "method 'ddim' inverts epsilon/v-prediction models"),
])
def test_method_that_does_not_fit_the_family_is_refused(request, fixture, method, words):
    model = family(request, fixture)
    with pytest.raises(LatentscapeError, match=words):
        invert_latents(model, image_latents(model), model.encode_prompts([""]), method=method, steps=2)


@pytest.mark.parametrize("options, words", [
    (dict(steps=0), "steps got 0"), (dict(steps=2, refine=-1), "refine got -1"), (dict(method="ddpm"), "method got 'ddpm'"),
])
def test_bad_numbers_are_one_sentence(request, options, words):
    model = family(request, "tiny_sd")
    with pytest.raises(LatentscapeError, match=words):
        invert_latents(model, image_latents(model), model.encode_prompts([""]), **options)


EVERY_SAMPLER = ("euler", "euler_a", "heun", "dpmpp_2m", "dpmpp_2m_karras", "unipc", "lcm", "ddim")


@pytest.mark.parametrize("sampler", EVERY_SAMPLER)
def test_exact_records_over_every_sampler_of_the_loop(request, sampler):
    """The edit-friendly recorder steers any sampler's steps (first/second order, multistep, ancestral with a
    step seed) onto its own levels; the replay retraces it to the image latent, and the maps stay O(1)."""
    model = family(request, "tiny_sd")
    z0 = image_latents(model)
    cond = model.encode_prompts(["a cat"])
    inv = invert_latents(model, z0, cond, method="exact", steps=6, sampler=sampler, step_seed=3)
    assert inv.sampler == sampler
    assert (inv.step_seed is not None) == (sampler in ("euler_a", "lcm"))
    err = float((replay(model, inv, cond) - z0).abs().max())
    assert err <= 1e-5 * float(z0.abs().max()) + 1e-6, (sampler, err)
    assert float(inv.step_noise.noise[:-1].std()) < 5, sampler  # steered onto the sampler's own levels, not far off


def test_exact_records_over_flow_heun(request):
    """SD3 takes flow_heun (FLUX's dynamic shift takes only flow_euler, refused by the sampler check)."""
    model = family(request, "tiny_sd3")
    z0 = image_latents(model)
    cond = model.encode_prompts(["a cat"])
    inv = invert_latents(model, z0, cond, method="exact", steps=4, sampler="flow_heun", embedded_guidance=guidance(model))
    assert float((replay(model, inv, cond) - z0).abs().max()) <= 1e-5 * float(z0.abs().max()) + 1e-6


def test_ode_methods_refuse_another_sampler(request):
    model = family(request, "tiny_sd")
    with pytest.raises(LatentscapeError, match="method 'ddim' inverts the ddim sampler's steps, not euler's"):
        invert_latents(model, image_latents(model), model.encode_prompts([""]), method="ddim", steps=3, sampler="euler")
