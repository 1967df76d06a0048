"""Pure measures over sets of images or latents: distances, diversity and retrieval accuracy.

Inputs are tensors whose first dimension indexes the items; every other dimension is flattened.
"""

from __future__ import annotations

from typing import Sequence

import torch


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).double()


def pairwise_distances(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Root-mean-square distances (N, M) between the items of ``x`` (N, ...) and ``y`` (M, ...) (default ``x``).

    RMS (the L2 distance divided by √D) keeps the number on the scale of one value: for images in [0, 1]
    it reads as a mean per-pixel difference, independent of the resolution.
    """
    a = _flat(x)
    b = a if y is None else _flat(y)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"items of {a.shape[1]} and {b.shape[1]} values cannot be compared")
    return torch.cdist(a, b) / a.shape[1] ** 0.5


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Diversity: the mean RMS distance over all unordered pairs of distinct items (0 for one item)."""
    n = x.shape[0]
    if n < 2:
        return 0.0
    d = pairwise_distances(x)
    i, j = torch.triu_indices(n, n, offset=1)
    return float(d[i, j].mean())


def nearest_neighbours(queries: torch.Tensor, references: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Index (Q,) of the nearest reference item for each query (RMS distance; ties to the lowest index)."""
    out = [pairwise_distances(queries[s : s + chunk], references).argmin(dim=1) for s in range(0, queries.shape[0], chunk)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def retrieval_accuracy(scores: torch.Tensor, targets: Sequence[int] | torch.Tensor, *, lower_is_better: bool = False) -> float:
    """Top-1 accuracy: the fraction of rows of ``scores`` (N, K) whose best column is ``targets[n]``."""
    scores = torch.as_tensor(scores)
    targets = torch.as_tensor(targets, dtype=torch.long)
    if scores.ndim != 2 or targets.shape != (scores.shape[0],):
        raise ValueError(f"scores {tuple(scores.shape)} and targets {tuple(targets.shape)} do not match")
    if scores.shape[0] == 0:
        return 0.0
    best = scores.argmin(dim=1) if lower_is_better else scores.argmax(dim=1)
    return float((best == targets).double().mean())


def label_accuracy(predicted: Sequence[str], expected: Sequence[str]) -> float:
    """The fraction of equal labels in two equally long sequences (0 for none)."""
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predictions for {len(expected)} labels")
    return sum(p == e for p, e in zip(predicted, expected)) / len(expected) if expected else 0.0


def is_monotone(values: Sequence[float], *, increasing: bool = True, tol: float = 0.0) -> bool:
    """Whether ``values`` never decrease (or never increase) by more than ``tol`` from one to the next."""
    pairs = list(zip(values, values[1:]))
    return all((b - a if increasing else a - b) >= -tol for a, b in pairs)
