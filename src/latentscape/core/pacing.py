"""Pacing: measure how far apart consecutive frames look and re-place frames so the steps are even.

Given frames at positions ``u`` along a path (see :mod:`latentscape.core.paths`) and the distances between
consecutive frames, :func:`repace` inverts each segment's cumulative-distance curve (piecewise linear in
``u``) so the new frames split it into equal parts. Keyframes stay on frames (exact endpoints), and the
frame budget is shared between segments in proportion to their length. Also here: smoothness statistics
and the offline perceptual proxy (multi-scale CIELAB colour difference).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from latentscape.core.paths import ease, interval_count, segment_count, uniform_positions


@dataclass(frozen=True)
class Smoothness:
    """How even a path's steps are: the largest and mean consecutive distance, their ratio (1 = perfectly
    even) and the total path length (sum of consecutive distances)."""

    max: float
    mean: float
    total: float

    @property
    def ratio(self) -> float:
        return self.max / self.mean if self.mean > 0 else 1.0

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "max_over_mean": self.ratio}

    def describe(self) -> str:
        return f"max {self.max:.4g}, mean {self.mean:.4g} (max/mean {self.ratio:.3g}), path length {self.total:.4g}"


def smoothness(distances: Sequence[float]) -> Smoothness:
    d = np.asarray(distances, dtype=np.float64)
    return Smoothness(max=float(d.max()), mean=float(d.mean()), total=float(d.sum()))


def allocate(lengths: Sequence[float], gaps: int) -> list[int]:
    """Share ``gaps`` frame gaps between segments of the given lengths, at least one each, minimising the
    largest per-gap length (greedy highest-average: each extra gap goes to the segment whose gaps are
    currently the longest). Zero-length segments keep one gap."""
    if gaps < len(lengths):
        raise ValueError(f"{gaps} gaps cannot cover {len(lengths)} segments")
    counts = [1] * len(lengths)
    for _ in range(gaps - len(lengths)):
        k = max(range(len(lengths)), key=lambda i: (lengths[i] / counts[i], -i))
        counts[k] += 1
    return counts


def repace(
    positions: Sequence[float],
    distances: Sequence[float],
    n_keyframes: int,
    closed: bool = False,
    easing: str = "linear",
    frames: int | None = None,
    counts: Sequence[int] | None = None,
) -> list[float]:
    """New positions for ``frames`` frames (default: as many as were measured) with (as near as the
    measurements allow) equal distances between consecutive frames. The measured frames may be fewer or
    more than the new ones (adaptive pacing measures a sparse frame tree and places the delivered frames on it).

    ``positions`` must include every keyframe (u = 0, 1, ..., exactly) and be increasing; ``distances[i]``
    is the distance from frame i to frame i+1 (closed paths: the last one is from the last frame back to
    frame 0). ``easing`` warps each segment's arc length, so easing and pacing compose: ease in/out then
    lingers near keyframes by an even perceptual amount. ``counts``: the gaps of every segment, fixed (frame-pinned
    keyframes); default: shared by segment length (:func:`allocate`).
    """
    segments = segment_count(n_keyframes, closed)
    measured = len(positions)
    if len(distances) != interval_count(measured, closed):
        raise ValueError(f"{measured} frames on a {'closed' if closed else 'open'} path need "
                         f"{interval_count(measured, closed)} distances, got {len(distances)}")
    frames = measured if frames is None else frames
    gaps = interval_count(frames, closed)
    us = np.asarray(list(positions) + ([float(segments)] if closed else []), dtype=np.float64)
    arc = np.concatenate([[0.0], np.cumsum(np.maximum(np.asarray(distances, dtype=np.float64), 0.0))])
    nodes = []
    for k in range(segments + 1):
        hit = np.flatnonzero(us == k)
        if hit.size == 0:
            raise ValueError(f"keyframe {k} (u = {k}) is not among the positions")
        nodes.append(int(hit[0]))
    lengths = [arc[nodes[k + 1]] - arc[nodes[k]] for k in range(segments)]
    if counts is not None and (len(counts) != segments or sum(counts) != gaps or min(counts) < 1):
        raise ValueError(f"counts {list(counts)} must give each of {segments} segments at least one of {gaps} gaps")
    if arc[-1] <= 0:  # nothing changes along the path: keep the even spacing
        starts = None if counts is None else [int(c) for c in np.cumsum([0, *counts[:-1]])]
        return uniform_positions(n_keyframes, frames, closed, easing, keyframe_at=starts)
    counts = allocate(lengths, gaps) if counts is None else list(counts)
    out: list[float] = []
    for k, m in enumerate(counts):
        lo, hi = nodes[k], nodes[k + 1]
        for j in range(m):
            s = ease(j / m, easing)
            if j == 0:
                out.append(float(k))
            elif lengths[k] <= 0:
                out.append(k + s)
            else:
                target = arc[lo] + s * lengths[k]
                out.append(float(np.interp(target, arc[lo:hi + 1], us[lo:hi + 1])))
    if not closed:
        out.append(float(segments))
    return out


# --- the offline perceptual proxy --------------------------------------------------------------------------
_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float32)
_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float32)
LAB_SCALES = 3


def srgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (B, 3, H, W) -> CIELAB (L* in [0, 100]) under D65 (CIE 15; sRGB per IEC 61966-2-1),
    in float32 on the input's device (a 512x512 frame: 3 MB, not 6; the error is ~1e-5 ΔE)."""
    x = images.to(torch.float32).clamp(0, 1)
    matrix, white = _RGB_TO_XYZ.to(x.device), _D65.to(x.device)
    linear = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,bjhw->bihw", matrix, linear) / white.view(1, 3, 1, 1)
    delta = 6 / 29
    f = torch.where(xyz > delta**3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * delta**2) + 4 / 29)
    L = 116 * f[:, 1] - 16
    a = 500 * (f[:, 0] - f[:, 1])
    b = 200 * (f[:, 1] - f[:, 2])
    return torch.stack([L, a, b], dim=1)


def lab_distance(x: torch.Tensor, y: torch.Tensor, scales: int = LAB_SCALES) -> torch.Tensor:
    """Per-item perceptual proxy between sRGB images in [0, 1] (B, 3, H, W): the mean CIE76 colour difference
    ΔE*ab, averaged over ``scales`` resolutions (each a 2x box-downsample of the last).

    CIELAB is built so that Euclidean distance tracks perceived colour difference (ΔE ≈ 2.3 is one just
    noticeable difference); the coarser scales weigh changes of shape and layout more than pixel noise.
    Computed in float32 on the inputs' device; returns float64 (B,).
    """
    lx, ly = srgb_to_lab(x), srgb_to_lab(y)
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=lx.device)
    used = 0
    for s in range(scales):
        if s > 0:
            if min(lx.shape[-2:]) < 2:
                break
            lx, ly = F.avg_pool2d(lx, 2), F.avg_pool2d(ly, 2)
        total += torch.linalg.vector_norm(lx - ly, dim=1).mean(dim=(1, 2))
        used += 1
    return total / used
