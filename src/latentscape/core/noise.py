"""Seeded initial noise: one CPU generator per item, so a seed gives the same noise on any device."""

from __future__ import annotations

import secrets
from typing import Sequence

import torch

from latentscape.core.interpolate import slerp
from latentscape.errors import LatentscapeError

MAX_SEED = 2**32 - 1  # what seed -1 draws from (A1111's range)
SEED_LIMIT = 2**64 - 1  # the largest seed a torch generator takes


def random_seed() -> int:
    """A fresh seed in [0, 2**32 - 1] (what seed -1 becomes; it is always reported)."""
    return secrets.randbelow(MAX_SEED + 1)


def resolve_seed(seed: int | None) -> int:
    """-1 or None -> a random seed; any other int in [0, 2**64 - 1] is kept."""
    if seed is None or seed == -1:
        return random_seed()
    if not 0 <= int(seed) <= SEED_LIMIT:
        raise LatentscapeError(f"seed {seed} is out of range; expected 0 to {SEED_LIMIT}, or -1 for random.")
    return int(seed)


def batch_seeds(seed: int, n: int) -> list[int]:
    """A1111 batches: seeds s, s+1, ..., s+n-1."""
    if seed + n - 1 > SEED_LIMIT:
        raise LatentscapeError(f"seeds {seed}..{seed + n - 1} go past the largest seed {SEED_LIMIT}; use a smaller --seed.")
    return [seed + i for i in range(n)]


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
    """A1111 variation seeds: ``slerp(strength, noise(seed), noise(variation_seed))`` per item."""
    return slerp(seeded_noise(seeds, shape), seeded_noise(variation_seeds, shape), strength)
