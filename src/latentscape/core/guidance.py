"""Classifier-free guidance as pure functions: ``u + s·(c − u)`` and guidance rescale."""

from __future__ import annotations

import torch

Scale = float | torch.Tensor


def _per_item(scale: Scale, like: torch.Tensor) -> torch.Tensor | float:
    """A (B,) scale as float32 (B, 1, ...) on ``like``'s device: never rounded to ``like``'s half precision."""
    if isinstance(scale, torch.Tensor) and scale.ndim == 1:
        return scale.to(like.device, torch.float32).reshape(-1, *([1] * (like.ndim - 1)))
    return scale


def _scaled(scale: Scale, x: torch.Tensor) -> torch.Tensor:
    """``scale·x`` rounded once to x's dtype, the same for a float scale and a per-item tensor of it."""
    s = _per_item(scale, x)
    return (s * x.float()).to(x.dtype) if isinstance(s, torch.Tensor) else s * x


def cfg(uncond: torch.Tensor, cond: torch.Tensor, scale: Scale) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): ``uncond + scale·(cond − uncond)``; scale per item allowed."""
    return uncond + _scaled(scale, cond - uncond)


def rescale_guidance(guided: torch.Tensor, cond: torch.Tensor, phi: Scale) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2023, §3.4): match the std of the guided prediction to the conditional one.

    ``phi`` = 0 returns ``guided`` unchanged; 0.7 is the paper's value.
    """
    dims = tuple(range(1, cond.ndim))
    std_cond = cond.std(dim=dims, keepdim=True)
    std_guided = guided.std(dim=dims, keepdim=True)
    rescaled = guided * (std_cond / std_guided)
    return _scaled(phi, rescaled) + _scaled(1 - phi, guided)
