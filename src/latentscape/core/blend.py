"""Weighted blends of N tensors, per batch item: the spherical barycentre and its linear counterpart.

``xs`` is (N, B, ...) (N inputs, each a batch of B items) or a sequence of N tensors (B, ...); ``weights``
is (N,) or (N, B) (a weight vector per item). Weights must be >= 0 with a positive sum; they are
normalised to sum 1. Every function returns an input exactly when its weight is the only non-zero one.
"""

from __future__ import annotations

from typing import Sequence

import torch

Tensors = torch.Tensor | Sequence[torch.Tensor]


def normalise_weights(weights: Sequence[float] | torch.Tensor, n: int | None = None) -> torch.Tensor:
    """Weights as a float64 tensor (N,) or (N, B) summing to 1 along N; ValueError if any is < 0 or all are 0."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.ndim not in (1, 2) or (n is not None and w.shape[0] != n):
        raise ValueError(f"weights of shape {tuple(w.shape)} do not give one weight per input ({n})")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and >= 0")
    total = w.sum(dim=0, keepdim=True)
    if (total <= 0).any():
        raise ValueError("weights must not all be 0")
    return w / total


def _stack(xs: Tensors) -> torch.Tensor:
    return xs if isinstance(xs, torch.Tensor) else torch.stack(list(xs))


def _per_item(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N,) or (N, B) weights -> (N, B, 1, ..., 1) broadcastable to ``x`` (N, B, ...)."""
    if w.ndim == 1:
        w = w[:, None].expand(-1, x.shape[1])
    return w.reshape(*w.shape, *([1] * (x.ndim - 2)))


def _one_hot(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Replace the items whose weights are one-hot by that input, exactly."""
    hot = (w > 0).sum(dim=0) == 1  # (B,)
    if not bool(hot.any()):
        return out
    index = w.argmax(dim=0)  # (B,)
    picked = x[index, torch.arange(x.shape[1])]  # (B, ...)
    mask = hot.reshape(-1, *([1] * (out.ndim - 1)))
    return torch.where(mask, picked.to(out.dtype), out)


def weighted_lerp(xs: Tensors, weights: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """The linear barycentre ``Σ wᵢ·xᵢ`` (weights normalised); for N = 2 and weights (1−t, t) it is ``lerp``."""
    x = _stack(xs)
    w = normalise_weights(weights, x.shape[0]).to(x.device)
    out = (_per_item(w, x) * x.double()).sum(dim=0)
    return _one_hot(x, w, out.to(x.dtype))


def spherical_barycentre(
    xs: Tensors,
    weights: Sequence[float] | torch.Tensor,
    *,
    iterations: int = 100,
    tol: float = 1e-12,
) -> torch.Tensor:
    """The weighted spherical mean (Buss & Fillmore 2001, "Spherical averages and applications"), per item.

    Directions: the point q on the unit sphere minimising ``Σ wᵢ·angle(q, xᵢ)²``, found by the fixed-point
    iteration ``q ← exp_q(Σ wᵢ·log_q(x̂ᵢ))`` from the normalised linear mean (it converges in a few steps
    for inputs within a hemisphere, which near-orthogonal Gaussian noises are). Norm: the weighted mean of
    the inputs' norms, so blended Gaussian noise keeps the norm the sampler expects.

    For two inputs of equal norm and weights (1−t, t) this is ``slerp(a, b, t)``; the result does not
    depend on the order of the inputs; an input whose weight is the only non-zero one is returned exactly.
    """
    x = _stack(xs)
    w = normalise_weights(weights, x.shape[0]).to(x.device)
    n, b = x.shape[:2]
    flat = x.double().reshape(n, b, -1)  # (N, B, D)
    norms = flat.norm(dim=-1, keepdim=True)  # (N, B, 1)
    unit = flat / norms.clamp_min(1e-30)
    wk = w if w.ndim == 2 else w[:, None].expand(-1, b)
    wk = wk[..., None]  # (N, B, 1)
    q = (wk * unit).sum(dim=0)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-30)  # (B, D)
    for _ in range(iterations):
        cos = (unit * q).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)  # (N, B, 1)
        theta = torch.arccos(cos)
        # log map of x̂ᵢ at q: θ·(x̂ − cosθ·q)/sinθ, written with sinc to stay finite at θ = 0
        tangent = (unit - cos * q) / torch.sinc(theta / torch.pi)
        u = (wk * tangent).sum(dim=0)  # (B, D)
        size = u.norm(dim=-1, keepdim=True)
        q = torch.cos(size) * q + torch.sinc(size / torch.pi) * u
        q = q / q.norm(dim=-1, keepdim=True)
        if float(size.max()) < tol:
            break
    out = (q * (wk * norms).sum(dim=0)).reshape(x.shape[1:])
    return _one_hot(x, w, out.to(x.dtype))


BLENDS = {"slerp": spherical_barycentre, "lerp": weighted_lerp}
