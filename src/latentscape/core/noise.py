"""Seeded initial noise: one CPU generator per item, so a seed gives the same noise on any device."""

from __future__ import annotations

from typing import Sequence

import torch

from latentscape.core.interpolate import slerp_a1111
from latentscape.core.seeds import MAX_SEED, SEED_LIMIT, batch_seeds, random_seed, resolve_seed  # noqa: F401 (re-exported)


def seeded_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per seed."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def draw_noise(generators: Sequence[torch.Generator], shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise (B, *shape), item i drawn from ``generators[i]`` (advancing it).

    Matches diffusers' ``randn_tensor`` given a list of CPU generators (or one generator for B = 1); the
    generators then continue into a stochastic sampler's per-step noise exactly as in diffusers.
    """
    return torch.cat([torch.randn((1, *shape), generator=g, dtype=dtype) for g in generators], dim=0)


def seeded_noise(seeds: Sequence[int], shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise (B, *shape) drawn on the CPU, one generator per seed."""
    return draw_noise(seeded_generators(seeds), shape, dtype)


def variation_noise(
    seeds: Sequence[int],
    variation_seeds: Sequence[int],
    strength: float | torch.Tensor,
    shape: Sequence[int],
) -> torch.Tensor:
    """A1111 variation seeds: ``slerp(strength, noise(seed), noise(variation_seed))`` per item, with A1111's
    own slerp (:func:`latentscape.core.interpolate.slerp_a1111`: angles per channel and column)."""
    return slerp_a1111(seeded_noise(seeds, shape), seeded_noise(variation_seeds, shape), strength)
