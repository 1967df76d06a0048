import pytest
import torch

from latentscape.core.blend import normalise_weights, spherical_barycentre, weighted_lerp
from latentscape.core.interpolate import lerp, slerp


def _noises(n=3, shape=(2, 4, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(n)]


def _equal_norm(b, a):
    return b / b.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * a.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def test_two_inputs_of_equal_norm_give_slerp():
    a, b = _noises(2)
    b = _equal_norm(b, a)
    for t in (0.1, 0.3, 0.5, 0.9):
        assert torch.allclose(spherical_barycentre([a, b], [1 - t, t]), slerp(a, b, t), atol=1e-5)


@pytest.mark.parametrize("blend", [spherical_barycentre, weighted_lerp])
def test_one_hot_weight_returns_that_input_exactly(blend):
    xs = _noises(4)
    for k in range(4):
        w = [0.0] * 4
        w[k] = 2.5  # not normalised on purpose
        assert torch.equal(blend(xs, w), xs[k])


def test_per_item_weights_one_hot_per_item():
    a, b, c = _noises(3)
    w = torch.tensor([[1.0, 0.0], [0.0, 0.5], [0.0, 0.5]])  # item 0: a only; item 1: half b, half c
    out = spherical_barycentre([a, b, c], w)
    assert torch.equal(out[0], a[0])
    assert torch.allclose(out[1:], spherical_barycentre([b[1:], c[1:]], [0.5, 0.5]), atol=1e-6)


def test_order_does_not_matter():
    a, b, c = _noises(3)
    w = [0.2, 0.5, 0.3]
    assert torch.allclose(spherical_barycentre([a, b, c], w), spherical_barycentre([c, a, b], [0.3, 0.2, 0.5]), atol=1e-6)


def test_equal_weights_of_orthogonal_unit_vectors_are_symmetric():
    eye = torch.eye(3)[:, None]  # three orthogonal unit vectors, batch of 1
    out = spherical_barycentre(eye, [1, 1, 1])
    assert torch.allclose(out, torch.full((1, 3), 3 ** -0.5), atol=1e-6)
    assert torch.allclose(out.norm(), torch.tensor(1.0), atol=1e-6)


def test_blend_keeps_the_norm_of_gaussian_noise():
    xs = _noises(5, shape=(3, 4, 16, 16))
    norms = torch.stack([x.flatten(1).norm(dim=1) for x in xs]).mean(0)
    out = spherical_barycentre(xs, [1, 2, 3, 4, 5])
    assert torch.allclose(out.flatten(1).norm(dim=1), norms, rtol=0.02)
    # the linear blend shrinks it (by about sqrt(sum w^2) for near-orthogonal inputs)
    assert (weighted_lerp(xs, [1, 2, 3, 4, 5]).flatten(1).norm(dim=1) < 0.6 * norms).all()


def test_weighted_lerp_matches_lerp_for_two():
    a, b = _noises(2)
    assert torch.allclose(weighted_lerp([a, b], [0.75, 0.25]), lerp(a, b, 0.25), atol=1e-6)


@pytest.mark.parametrize("weights", [[0, 0, 0], [1, -1, 1], [1, float("nan"), 1], [1, 2]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ValueError):
        normalise_weights(weights, 3)
