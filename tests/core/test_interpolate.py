import math

import pytest
import torch

from latentscape.core.interpolate import lerp, nlerp, slerp


def _pair(seed=0, shape=(3, 4, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def test_endpoints_exact():
    a, b = _pair()
    for fn in (lerp, slerp, nlerp):
        assert torch.equal(fn(a, b, 0.0), a) or torch.allclose(fn(a, b, 0.0), a, atol=1e-6)
        assert torch.allclose(fn(a, b, 1.0), b, atol=1e-6)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)


def test_slerp_preserves_norm_of_equal_norm_inputs():
    a, b = _pair()
    b = b / b.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * a.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    for t in (0.1, 0.5, 0.9):
        mid = slerp(a, b, t)
        assert torch.allclose(mid.flatten(1).norm(dim=1), a.flatten(1).norm(dim=1), rtol=1e-5)
        # lerp shrinks the norm of near-orthogonal Gaussian vectors by about sqrt(0.5) at t = 0.5
    assert lerp(a, b, 0.5).flatten(1).norm(dim=1).mean() < 0.8 * a.flatten(1).norm(dim=1).mean()


def test_slerp_follows_the_great_circle_at_constant_angular_speed():
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    mid = slerp(a, b, 1 / 3)
    assert torch.allclose(mid, torch.tensor([[math.cos(math.pi / 6), math.sin(math.pi / 6)]]), atol=1e-6)


def test_slerp_per_item_t():
    a, b = _pair()
    t = torch.tensor([0.0, 0.5, 1.0])
    out = slerp(a, b, t)
    assert torch.equal(out[0], a[0]) and torch.equal(out[2], b[2])
    assert torch.allclose(out[1:2], slerp(a[1:2], b[1:2], 0.5))


def test_slerp_near_parallel_is_continuous_and_close_to_lerp():
    a, d = _pair(1)  # seeded: an unseeded d made the bound below depend on the global RNG state
    prev, prev_eps = None, None
    for eps in (1e-1, 1e-3, 1e-5, 1e-7, 0.0):
        b = a + eps * d
        s = slerp(a, b, 0.3)
        assert torch.isfinite(s).all()
        assert torch.allclose(s, lerp(a, b, 0.3), atol=1e-4 + eps)
        if prev is not None:  # the result moves no more than its input b did: no jump at the fallback
            assert (s - prev).abs().max() <= (prev_eps - eps) * d.abs().max() + 1e-6
        prev, prev_eps = s, eps
    assert torch.allclose(slerp(a, a, 0.7), a, atol=1e-6)


def test_slerp_opposite_inputs_fall_back_to_lerp():
    a = torch.randn(1, 16)
    out = slerp(a, -a, 0.25)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, lerp(a, -a, 0.25), atol=1e-5)


def test_slerp_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        slerp(torch.zeros(1, 2), torch.zeros(1, 3), 0.5)


def test_nlerp_norm_is_interpolated():
    a = torch.tensor([[2.0, 0.0]])
    b = torch.tensor([[0.0, 4.0]])
    assert torch.allclose(nlerp(a, b, 0.5).norm(), torch.tensor(3.0))


def test_dtype_kept():
    a, b = _pair()
    assert slerp(a.half(), b.half(), 0.5).dtype == torch.float16


def test_slerp_is_continuous_in_the_angle_through_the_fallback_per_item():
    # item 0 sweeps its angle down to exactly 0 (through the sinc fallback); item 1 stays at 90 degrees
    base = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    prev = None
    for k in range(0, 41):
        theta = 1e-3 * (40 - k) / 40  # 1e-3 rad ... 0
        b = torch.tensor([[math.cos(theta), math.sin(theta), 0.0], [0.0, 1.0, 0.0]])
        out = slerp(base, b, torch.tensor([0.5, 0.5]))
        assert torch.allclose(out[1], torch.tensor([math.sqrt(0.5), math.sqrt(0.5), 0.0]), atol=1e-6)
        assert out[0].norm().item() == pytest.approx(1.0, abs=1e-6)  # unit inputs stay on the unit sphere
        if prev is not None:
            assert (out[0] - prev).abs().max() <= 1.5e-5  # no jump between neighbouring angles
        prev = out[0]
