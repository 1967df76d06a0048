"""``denoise(start_step=k)``: starting from a run's own latents at step k finishes that run."""

import pytest
import torch

import latentscape
from latentscape.core.noise import draw_noise, seeded_generators
from latentscape.sampling import NoisePath, StepState, denoise
from latentscape.workflows.common import encode


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def _run(model, sampler, k=0, latents=None, path=False, steps=6, capture=None):
    cond, uncond = encode(model, ["a cat", "a dog"], ["", ""], need_uncond=True)
    gens = seeded_generators([3, 4])
    noise = draw_noise(gens, model.latent_format.latent_shape(32, 32))
    kwargs = {"noise_path": NoisePath(gens, [0, 1], [1, 0], [0.0, 0.3])} if path else {"generators": gens}
    cb = None
    if capture is not None:
        def cb(state: StepState):
            capture[state.step + 1] = state.latents.clone()
    return denoise(model, latents if k else noise, cond, uncond, sampler=sampler, steps=steps, guidance_scale=5.0,
                   start_step=k, callback=cb, **kwargs)


@pytest.mark.parametrize("sampler, path", [("euler", False), ("ddim", False), ("euler_a", False), ("euler_a", True), ("lcm", True)])
def test_start_step_from_own_latents_reproduces_the_run(sd, sampler, path):
    seen = {}
    full = _run(sd, sampler, path=path, capture=seen)
    for k in (1, 3, 5):
        again = _run(sd, sampler, k=k, latents=seen[k], path=path)
        assert torch.allclose(again, full, atol=1e-5), f"{sampler} from step {k}"


def test_heun_branches_at_step_boundaries(sd):
    seen = {}
    full = _run(sd, "heun", capture=seen)  # 2 evaluations per step: latents at step k after evaluation 2k
    again = _run(sd, "heun", k=2, latents=seen[4])
    assert torch.allclose(again, full, atol=1e-5)


def test_multistep_restarts_its_order_close_to_the_full_run(sd):
    seen = {}
    full = _run(sd, "dpmpp_2m", capture=seen, steps=8)
    again = _run(sd, "dpmpp_2m", k=4, latents=seen[4], steps=8)
    assert not torch.equal(again, full)  # first-order restart, documented
    assert (again - full).abs().max() < 0.1 * full.abs().max()


def test_bad_start_step(sd):
    with pytest.raises(ValueError, match="start_step"):
        _run(sd, "euler", k=6, latents=torch.zeros(2, 4, 4, 4))
