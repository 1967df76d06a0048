"""Interpolation between tensors, per batch item: lerp, slerp and nlerp.

All functions take ``a`` and ``b`` of shape (B, ...) and ``t`` as a float or a tensor of shape (B,);
the angle and norms are computed per item over every dimension but the first.
"""

from __future__ import annotations

import math

import torch

Scalar = float | torch.Tensor


def _per_item(t: Scalar, like: torch.Tensor) -> torch.Tensor:
    """``t`` as a float64 tensor broadcastable to ``like`` (B, ...)."""
    t = torch.as_tensor(t, dtype=torch.float64, device=like.device)
    if t.ndim == 0:
        t = t.expand(like.shape[0])
    return t.reshape(-1, *([1] * (like.ndim - 1)))


def _norm(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=dims, keepdim=True)


def lerp(a: torch.Tensor, b: torch.Tensor, t: Scalar) -> torch.Tensor:
    """Linear interpolation ``(1 - t)·a + t·b``."""
    tt = _per_item(t, a)
    return ((1 - tt) * a.double() + tt * b.double()).to(a.dtype)


def _sin_ratio(k: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``sin(k·θ) / sin(θ)``, continuous through θ = 0 (where it equals k), via the normalised sinc."""
    return k * torch.sinc(k * theta / math.pi) / torch.sinc(theta / math.pi)


def slerp(a: torch.Tensor, b: torch.Tensor, t: Scalar, eps: float = 1e-4) -> torch.Tensor:
    """Spherical linear interpolation (Shoemake 1985), per item.

    ``slerp = sin((1-t)θ)/sin θ · a + sin(tθ)/sin θ · b`` with θ the angle between ``a`` and ``b``. The
    coefficients are written with sinc so near-parallel inputs fall back smoothly to lerp: there is no
    branch and no jump. At exactly opposite inputs the great circle is undefined and no rule is continuous
    there; within ``eps`` (radians) of π the result is lerp. (Gaussian noises or latents of thousands of
    values are never that close to opposite.) t = 0 gives ``a`` and t = 1 gives ``b`` exactly.
    """
    if a.shape != b.shape:
        raise ValueError(f"slerp needs tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    tt = _per_item(t, a)
    a64, b64 = a.double(), b.double()
    dims = tuple(range(1, a.ndim))
    na = _norm(a64, dims).clamp_min(1e-30)
    nb = _norm(b64, dims).clamp_min(1e-30)
    cos = ((a64 / na) * (b64 / nb)).sum(dim=dims, keepdim=True).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)
    opposite = theta > math.pi - eps
    theta = torch.where(opposite, torch.zeros_like(theta), theta)
    ca, cb = _sin_ratio(1 - tt, theta), _sin_ratio(tt, theta)
    out = ca * a64 + cb * b64
    out = torch.where(tt == 0, a64, torch.where(tt == 1, b64, out))
    return out.to(a.dtype)


def nlerp(a: torch.Tensor, b: torch.Tensor, t: Scalar) -> torch.Tensor:
    """Normalised lerp: the direction of ``lerp(a, b, t)`` with the norm interpolated linearly."""
    tt = _per_item(t, a)
    a64, b64 = a.double(), b.double()
    dims = tuple(range(1, a.ndim))
    mix = (1 - tt) * a64 + tt * b64
    norm = (1 - tt) * _norm(a64, dims) + tt * _norm(b64, dims)
    out = mix / _norm(mix, dims).clamp_min(1e-30) * norm
    return out.to(a.dtype)


INTERPOLATORS = {"lerp": lerp, "slerp": slerp, "nlerp": nlerp}


def slerp_a1111(a: torch.Tensor, b: torch.Tensor, t: Scalar) -> torch.Tensor:
    """AUTOMATIC1111's variation-seed slerp, per item of (B, C, H, W) noise.

    A1111 mixes a seed's noise ``a`` and a variation seed's noise ``b`` (each (C, H, W), one image) with a
    slerp whose norms and angles are taken along dim 1 of that (C, H, W) tensor, the latent height: every
    (channel, column) pair gets its own angle ``ω = arccos(Σ_h â·b̂)`` and the result is
    ``sin((1-t)ω)/sin ω · a + sin(tω)/sin ω · b`` column by column. Here dim 1 of an item is dim 2 of the
    batch. When the columns are nearly parallel on average (mean cos > 0.9995: the two noises are the same
    seed's) A1111 falls back to a linear mix; identical noises give that noise either way. t = 0 gives ``a``
    and t = 1 gives ``b`` exactly. Computed in float64, returned in ``a``'s dtype.
    """
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"slerp_a1111 needs (B, C, H, ...) tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    tt = _per_item(t, a)
    a64, b64 = a.double(), b.double()
    an = a64 / torch.linalg.vector_norm(a64, dim=2, keepdim=True).clamp_min(1e-30)
    bn = b64 / torch.linalg.vector_norm(b64, dim=2, keepdim=True).clamp_min(1e-30)
    cos = (an * bn).sum(dim=2, keepdim=True).clamp(-1.0, 1.0)  # (B, C, 1, W): one angle per channel and column
    omega = torch.arccos(cos)
    parallel = cos.flatten(1).mean(dim=1).reshape(tt.shape) > 0.9995
    out = _sin_ratio(1 - tt, omega) * a64 + _sin_ratio(tt, omega) * b64
    out = torch.where(parallel, (1 - tt) * a64 + tt * b64, out)
    out = torch.where(tt == 0, a64, torch.where(tt == 1, b64, out))
    return out.to(a.dtype)
