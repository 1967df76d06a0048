"""The per-step noise interpolation behind exact ancestral morphs (``sampling.NoisePath``), on toy schedulers
whose noise enters in a known way: affine steps are reproduced exactly, anything else is refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from latentscape.core.interpolate import slerp
from latentscape.errors import LatentscapeError
from latentscape.sampling import NoisePath, _path_step

SHAPE = (2, 3, 3)


class ToyScheduler:
    """prev = 0.9·sample + 0.5·n (affine), or + n² (not affine); draws like diffusers' randn_tensor."""

    def __init__(self, affine: bool = True, draw: bool = True):
        self.affine, self.draw, self.steps = affine, draw, 0

    def step(self, out, t, sample, generator=None, return_dict=True):
        self.steps += 1
        if not self.draw:
            return SimpleNamespace(prev_sample=0.9 * sample)
        gens = generator if isinstance(generator, list) else [generator]
        n = torch.cat([torch.randn((1, *out.shape[1:]), generator=g, dtype=out.dtype) for g in gens])
        return SimpleNamespace(prev_sample=0.9 * sample + (0.5 * n if self.affine else n * n))


def _draw(seed: int, skip: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    for _ in range(skip):
        torch.randn((1, *SHAPE), generator=g)
    return torch.randn((1, *SHAPE), generator=g)


def _run(scheduler, t, steps=2):
    sources = [torch.Generator().manual_seed(s) for s in (1, 2)]
    path = NoisePath(sources, a=[0, 0, 0], b=[1, 1, 1], t=t)
    streams = [g.get_state() for g in sources]
    sample = torch.ones(3, *SHAPE)
    outs = []
    for _ in range(steps):
        _, sample = _path_step(scheduler, torch.zeros(3, *SHAPE), 0, sample, path, streams, {})
        outs.append(sample)
    return outs, sources


def test_affine_step_gets_exactly_the_interpolated_noise_and_streams_advance():
    (first, second), sources = _run(ToyScheduler(), [0.0, 0.3, 1.0])
    ones = torch.ones(1, *SHAPE)
    assert torch.equal(first[0:1], 0.9 * ones + 0.5 * _draw(1))  # t = 0: stream a's own draw, bit for bit
    assert torch.equal(first[2:3], 0.9 * ones + 0.5 * _draw(2))  # t = 1: stream b's own draw
    expected = 0.9 * ones + 0.5 * slerp(_draw(1), _draw(2), 0.3)
    assert torch.allclose(first[1:2], expected, atol=1e-6)
    # the second step uses each stream's second draw: the streams advanced exactly one draw
    assert torch.equal(second[0:1], 0.9 * first[0:1] + 0.5 * _draw(1, skip=1))
    assert torch.allclose(second[1:2], 0.9 * first[1:2] + 0.5 * slerp(_draw(1, 1), _draw(2, 1), 0.3), atol=1e-6)
    assert torch.equal(sources[0].get_state(), torch.Generator().manual_seed(1).get_state())  # callers' untouched


def test_a_step_without_noise_is_passed_through():
    (first, _), _ = _run(ToyScheduler(draw=False), [0.0, 0.5, 1.0])
    assert torch.equal(first, 0.9 * torch.ones(3, *SHAPE))


def test_a_step_that_is_not_affine_in_its_noise_is_refused():
    with pytest.raises(LatentscapeError, match="not affine"):
        _run(ToyScheduler(affine=False), [0.0, 0.5, 1.0], steps=1)
