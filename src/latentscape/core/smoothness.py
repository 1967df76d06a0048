"""Smoothness of a frame sequence: statistics of its adjacent distances, and a structural image distance.

A sequence of N frames has N − 1 adjacent distances d_i (N on a closed loop, where the last frame steps
back to the first). From them, every number a smoothness report shows:

- ``max``, ``mean`` and ``max_over_mean`` (1 = perfectly even steps; a cut shows as a large ratio);
- ``one_minus_gini``: 1 − Gini(d), AID's smoothness score (He et al. 2024, "AID: Attention Interpolation of
  Text-to-Image Diffusion"): 1 when every step is equal, towards 0 when one step carries the whole path;
- ``istd``: ISTD of Smooth Diffusion (Guo et al. 2024), the standard deviation of the adjacent distances.
  Normalisation used here: the *population* standard deviation (divide by the number of steps) in the
  metric's own units (ΔE for ``lab``, LPIPS units for ``lpips``, 1 − SSIM for ``ssim``), not scaled by 100
  as the paper's tables are; ``istd_relative`` = ``istd / mean`` (the coefficient of variation) is
  scale-free, so it compares across metrics and across paths of different length;
- ``path_length``: the sum of adjacent distances; ``frames``: N.

The second, independent distance is :func:`ssim_distance`, 1 − SSIM (Wang et al. 2004) averaged over
dyadic scales: it compares local structure (means, contrasts, correlations) of luminance and sees layout
and edges, not colour difference magnitudes, so a path paced by the CIELAB proxy or LPIPS is not judged
only by the metric the pacing optimised. Everything here is pure math on floats and tensors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

SSIM_WINDOW = 11  # Gaussian window of Wang et al. 2004: 11 x 11, sigma 1.5
SSIM_SIGMA = 1.5
SSIM_SCALES = 3
_C1, _C2 = 0.01**2, 0.03**2  # (K1·L)², (K2·L)² for L = 1 (images in [0, 1])


def one_minus_gini(values: Sequence[float]) -> float:
    """1 − Gini coefficient of non-negative ``values``: 1 for all-equal values (and for all zeros).

    Gini = Σ_i Σ_j |x_i − x_j| / (2 n² · mean), so one non-zero value among n gives 1 − (n − 1)/n = 1/n.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("1 - Gini needs at least one value")
    if (x < 0).any():
        raise ValueError("1 - Gini needs non-negative values")
    mean = x.mean()
    if mean <= 0:
        return 1.0
    gini = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * mean)
    return float(1.0 - gini)


@dataclass(frozen=True)
class StepStats:
    """How even the adjacent steps of a sequence are, by one distance (see the module docstring)."""

    frames: int
    max: float
    mean: float
    max_over_mean: float
    one_minus_gini: float
    istd: float
    istd_relative: float
    path_length: float
    largest_step: int  # index i of the largest step (frame i -> frame i + 1)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def describe(self) -> str:
        return (f"max/mean {self.max_over_mean:.3g} (largest step {self.largest_step} -> {self.largest_step + 1}), "
                f"1-Gini {self.one_minus_gini:.3f}, ISTD {self.istd:.4g} ({self.istd_relative:.3g} of the mean step), "
                f"path length {self.path_length:.4g}")


def step_stats(distances: Sequence[float], frames: int | None = None) -> StepStats:
    """Statistics of adjacent ``distances`` (at least one, all finite and >= 0); ``frames`` defaults to
    ``len(distances) + 1`` (an open sequence)."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("smoothness needs at least one adjacent distance")
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("adjacent distances must be finite and non-negative")
    mean = float(d.mean())
    std = float(d.std())
    return StepStats(
        frames=int(frames if frames is not None else d.size + 1),
        max=float(d.max()),
        mean=mean,
        max_over_mean=float(d.max() / mean) if mean > 0 else 1.0,
        one_minus_gini=one_minus_gini(d),
        istd=std,
        istd_relative=std / mean if mean > 0 else 0.0,
        path_length=float(d.sum()),
        largest_step=int(d.argmax()),
    )


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def _luma(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) sRGB in [0, 1] -> (B, 1, H, W) Rec. 601 luma (what SSIM is usually computed on)."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-item SSIM (Wang et al. 2004) of single-channel images in [0, 1] (B, 1, H, W) -> (B,).

    Gaussian window 11 × 11, σ = 1.5 (shrunk to the image's smaller side, odd, for tiny images), K1 = 0.01,
    K2 = 0.03, computed over the valid region (no padding) in float32; the local (co)variances are taken of
    the images minus their global means (the same numbers), so float32 loses little to cancellation
    (measured against float64: 1 − SSIM within 1.5e-4 relative, the CIELAB distance within 3e-7).
    """
    return ssim_from_parts(ssim_parts(x), ssim_parts(y))


def _window_for(x: torch.Tensor) -> torch.Tensor:
    size = min(SSIM_WINDOW, min(x.shape[-2:]))
    size -= 1 - size % 2  # odd
    return _gaussian_window(size, SSIM_SIGMA * size / SSIM_WINDOW, x.dtype, x.device)


def ssim_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-image part of :func:`ssim` for a batch (B, 1, H, W): the image minus its global mean, that
    mean, its local mean and local variance; a pair then needs only the local covariance."""
    x = x.float()
    cx = x.mean(dim=(1, 2, 3), keepdim=True)
    x = x - cx
    window = _window_for(x)
    dx = F.conv2d(x, window)
    vx = (F.conv2d(x * x, window) - dx * dx).clamp_min(0)
    return x, cx, dx, vx


def ssim_from_parts(px, py) -> torch.Tensor:
    """:func:`ssim` from two index-aligned batches of :func:`ssim_parts` (B,)."""
    (x, cx, dx, vx), (y, cy, dy, vy) = px, py
    cov = F.conv2d(x * y, _window_for(x)) - dx * dy
    mx, my = dx + cx, dy + cy
    s = ((2 * mx * my + _C1) * (2 * cov + _C2)) / ((mx * mx + my * my + _C1) * (vx + vy + _C2))
    return s.mean(dim=(1, 2, 3)).double()


def ssim_distance(x: torch.Tensor, y: torch.Tensor, scales: int = SSIM_SCALES) -> torch.Tensor:
    """Structural distance between sRGB images in [0, 1] (B, 3, H, W): 1 − SSIM of their luma, averaged
    over ``scales`` dyadic resolutions (each a 2× box-downsample of the last; scales whose smaller side would
    drop under 4 pixels are skipped). 0 for identical images, up to about 1 for unrelated ones (B,)."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim_distance needs two (B, 3, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return ssim_feature_distance(ssim_features(x, scales), ssim_features(y, scales))


def ssim_features(images: torch.Tensor, scales: int = SSIM_SCALES) -> list[tuple[torch.Tensor, ...]]:
    """The per-image part of :func:`ssim_distance` for a batch (B, 3, H, W): :func:`ssim_parts` of its luma
    at each scale, so that many pairs among few images blur each image once."""
    luma = _luma(images.float().clamp(0, 1))
    out = [ssim_parts(luma)]
    for _ in range(1, scales):
        if min(luma.shape[-2:]) < 8:
            break
        luma = F.avg_pool2d(luma, 2)
        out.append(ssim_parts(luma))
    return out


def ssim_feature_distance(fx, fy) -> torch.Tensor:
    """:func:`ssim_distance` from two index-aligned batches of :func:`ssim_features` (B,)."""
    total = torch.zeros(fx[0][0].shape[0], dtype=torch.float64, device=fx[0][0].device)
    for px, py in zip(fx, fy):
        total += 1 - ssim_from_parts(px, py)
    return (total / len(fx)).clamp_min(0)


def adjacent_pairs(count: int, closed: bool = False) -> list[tuple[int, int]]:
    """Index pairs (i, i + 1) of adjacent frames; a closed loop adds (N − 1, 0)."""
    pairs = [(i, i + 1) for i in range(count - 1)]
    return pairs + [(count - 1, 0)] if closed and count >= 2 else pairs


@dataclass(frozen=True)
class SmoothnessReport:
    """A sequence's smoothness by each distance (the pacing's perceptual one first, then the structural
    one), its frame count and, for renders, the model evaluations spent (one per denoising step of one
    frame; CFG's cond + uncond pair counts once) and the same per delivered frame."""

    stats: dict[str, StepStats]
    frames: int
    model_evaluations: int | None = None
    full_render_evaluations: int | None = None  # what one frame rendered from pure noise costs (the steps)

    @property
    def evaluations_per_frame(self) -> float | None:
        return None if self.model_evaluations is None else self.model_evaluations / self.frames

    def to_dict(self) -> dict:
        out: dict = {"frames": self.frames, "distances": {k: s.to_dict() for k, s in self.stats.items()}}
        if self.model_evaluations is not None:
            out["model_evaluations"] = self.model_evaluations
            out["evaluations_per_frame"] = self.evaluations_per_frame
            out["full_render_evaluations"] = self.full_render_evaluations
        return out

    def describe(self) -> str:
        lines = [f"{name}: {s.describe()}" for name, s in self.stats.items()]
        lines.append(f"frames: {self.frames}")
        if self.model_evaluations is not None:
            per = self.evaluations_per_frame
            full = f" ({per / self.full_render_evaluations:.2f} of a full render)" if self.full_render_evaluations else ""
            lines.append(f"model evaluations: {self.model_evaluations} ({per:.3g} per frame{full})")
        return "\n".join(lines)
