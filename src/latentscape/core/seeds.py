"""Seeds: their range, what -1 means, A1111 batches. Pure Python (no torch), so the CLI can check seeds
before anything heavy is imported."""

from __future__ import annotations

import secrets

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
        raise LatentscapeError(f"seed {seed} is out of range; expected 0 to {SEED_LIMIT}, or -1 for random.", field="seed")
    return int(seed)


def batch_seeds(seed: int, n: int) -> list[int]:
    """A1111 batches: seeds s, s+1, ..., s+n-1."""
    if seed + n - 1 > SEED_LIMIT:
        raise LatentscapeError(f"seed {seed} with a batch of {n} gives seeds {seed}..{seed + n - 1}, which go past the largest seed "
                               f"{SEED_LIMIT}; use a smaller seed.", field="seed")
    return [seed + i for i in range(n)]
