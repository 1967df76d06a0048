import torch

from latentscape.core.guidance import cfg, rescale_guidance
from latentscape.core.interpolate import slerp_a1111
from latentscape.core.noise import batch_seeds, draw_noise, resolve_seed, seeded_generators, seeded_noise, variation_noise
from latentscape.core.schedules import flow_shift_mu


def test_seeded_noise_matches_a_cpu_generator_per_item():
    n = seeded_noise([5, 6], (4, 8, 8))
    assert n.shape == (2, 4, 8, 8)
    assert torch.equal(n[0], torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(5))[0])
    assert torch.equal(n[1], torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(6))[0])


def test_batch_item_independent_of_batch_size():
    assert torch.equal(seeded_noise([7], (4, 8, 8))[0], seeded_noise(batch_seeds(6, 3), (4, 8, 8))[1])


def test_known_values():
    # pins torch's CPU Philox/MT stream: a seed must mean the same noise on every machine
    n = seeded_noise([42], (4, 2, 2))
    assert abs(n[0, 0, 0, 0].item() - 1.9269152879714966) < 1e-7


def test_generators_continue_after_noise():
    gens = seeded_generators([1])
    draw_noise(gens, (2,))
    ref = torch.Generator().manual_seed(1)
    torch.randn((1, 2), generator=ref)
    assert torch.equal(torch.randn(3, generator=gens[0]), torch.randn(3, generator=ref))


def test_resolve_seed():
    import pytest

    from latentscape.errors import LatentscapeError

    with pytest.raises(LatentscapeError, match="out of range; expected 0 to 18446744073709551615"):
        resolve_seed(2**64)
    with pytest.raises(LatentscapeError, match="out of range"):
        resolve_seed(-5)
    with pytest.raises(LatentscapeError, match="go past the largest seed"):
        batch_seeds(2**64 - 2, 4)
    assert resolve_seed(2**64 - 1) == 2**64 - 1
    assert resolve_seed(12) == 12
    s = resolve_seed(-1)
    assert 0 <= s < 2**32 and isinstance(s, int)
    assert batch_seeds(10, 3) == [10, 11, 12]


def test_variation_noise_is_a1111_slerp():
    # A1111's slerp takes angles per channel and column (tests/core/test_a1111_variation.py), not over the whole tensor
    v = variation_noise([1], [2], 0.3, (4, 4, 4))
    assert torch.allclose(v, slerp_a1111(seeded_noise([1], (4, 4, 4)), seeded_noise([2], (4, 4, 4)), 0.3))
    assert torch.equal(variation_noise([1], [2], 0.0, (4, 4, 4)), seeded_noise([1], (4, 4, 4)))


def test_cfg_formula_and_per_item_scale():
    u, c = torch.zeros(2, 3), torch.ones(2, 3)
    assert torch.equal(cfg(u, c, 7.5), torch.full((2, 3), 7.5))
    out = cfg(u, c, torch.tensor([1.0, 3.0]))
    assert torch.equal(out[0], torch.ones(3)) and torch.equal(out[1], torch.full((3,), 3.0))


def test_rescale_guidance():
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(2, 4, 8, 8, generator=g)
    guided = cond * 5 + 1
    assert torch.equal(rescale_guidance(guided, cond, 0.0), guided)
    full = rescale_guidance(guided, cond, 1.0)
    assert torch.allclose(full.flatten(1).std(1), cond.flatten(1).std(1), rtol=1e-5)


def test_flow_shift_mu_endpoints():
    assert abs(flow_shift_mu(256) - 0.5) < 1e-12
    assert abs(flow_shift_mu(4096) - 1.15) < 1e-12
