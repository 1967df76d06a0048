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
    return lab_feature_distance(lab_features(x, scales), lab_features(y, scales))


def lab_features(images: torch.Tensor, scales: int = LAB_SCALES) -> list[torch.Tensor]:
    """The per-image part of :func:`lab_distance`: the CIELAB pyramid of a batch (one tensor per scale), so
    that many pairs among few images convert each image once."""
    lab = srgb_to_lab(images)
    out = [lab]
    for _ in range(1, scales):
        if min(out[-1].shape[-2:]) < 2:
            break
        out.append(F.avg_pool2d(out[-1], 2))
    return out


def lab_feature_distance(fx: Sequence[torch.Tensor], fy: Sequence[torch.Tensor]) -> torch.Tensor:
    """:func:`lab_distance` from two index-aligned batches of :func:`lab_features` (B,)."""
    total = torch.zeros(fx[0].shape[0], dtype=torch.float64, device=fx[0].device)
    for lx, ly in zip(fx, fy):
        total += torch.linalg.vector_norm(lx - ly, dim=1).mean(dim=(1, 2))
    return total / len(fx)


# --- choosing frames among measured candidates -------------------------------------------------------------
def _bottleneck_path(cost: np.ndarray, allowed: np.ndarray, slots: np.ndarray, count: int) -> list[int] | None:
    """Indices 0 = i_0 < ... < i_{count-1} = M − 1 with every step allowed that minimise the largest step cost
    ``cost[t][i, j]`` (step t from node i to node j), then, among those within that bound, the sum of squared
    step costs (so the steps below the bound are as even as they can be too). ``slots[j]``: the only place
    in the selection node j may take (−1: any). None when no selection exists."""
    m = cost.shape[1]
    inf = np.inf
    bound = inf  # phase 0 finds it, phase 1 keeps every step within it
    for phase in (0, 1):
        best = np.full(m, inf)
        best[0] = 0.0
        back = np.zeros((count, m), dtype=np.int64)
        for t in range(1, count):
            c = np.where(allowed, cost[t - 1], inf)
            cand = np.maximum(best[:, None], c) if phase == 0 else best[:, None] + np.where(c <= bound, c * c, inf)
            back[t] = np.argmin(cand, axis=0)
            best = cand[back[t], np.arange(m)]
            best[(slots >= 0) & (slots != t)] = inf
        if not np.isfinite(best[m - 1]):
            return None
        if phase == 0:
            bound = best[m - 1] * (1 + 1e-9)
    path = [m - 1]
    for t in range(count - 1, 0, -1):
        path.append(int(back[t][path[-1]]))
    return path[::-1]


def select_frames(
    distances: Sequence[np.ndarray],
    count: int,
    *,
    forced: Sequence[int] = (),
    slots: dict[int, int] | None = None,
    weights: Sequence[float] | None = None,
    iterations: int = 6,
) -> tuple[list[int], float]:
    """Choose ``count`` of M candidate frames (measured in order along a path) so that the steps between
    the chosen ones are as even as possible by every distance at once.

    ``distances``: one (M, M) matrix per distance, ``d[i, j]`` the distance from candidate i to a later
    candidate j (``inf`` where not measured: that step is never taken). The first and last candidates are
    always chosen, and so is every index in ``forced`` (keyframes); ``slots`` pins a candidate to its place
    in the selection (frame-pinned keyframes). ``weights`` (``count − 1``, default all 1): each step's
    share relative to the others (an easing's local speed).

    The objective is the ratio every smoothness report shows: the largest step over the mean step,
    taken per distance on the weight-normalised steps, and the worse of the distances. A selection's mean
    depends on the selection, so this is found by fixed-point iteration: normalise each distance by a mean
    step (first: its candidates' path length over ``count − 1``), find the selection minimising the largest
    normalised step (ties: the smallest sum of squares, see :func:`_bottleneck_path`, exact dynamic
    programming), re-normalise by that selection's own means, and keep the best selection seen. Returns the
    chosen indices (increasing) and their ratio.
    """
    mats = [np.asarray(d, dtype=np.float64) for d in distances]
    if not mats:
        raise ValueError("select_frames needs at least one distance matrix")
    m = mats[0].shape[0]
    if any(d.shape != (m, m) for d in mats):
        raise ValueError(f"every distance matrix must be {m} x {m}")
    if not 2 <= count <= m:
        raise ValueError(f"cannot choose {count} of {m} candidates (need 2 <= count <= candidates)")
    w = np.ones(count - 1) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (count - 1,) or not (w > 0).all():
        raise ValueError(f"weights must be {count - 1} positive numbers")
    w = w / w.mean()
    must = sorted({0, m - 1, *forced})
    pins = np.full(m, -1)
    pins[0], pins[m - 1] = 0, count - 1
    for i, t in (slots or {}).items():
        pins[i] = t
    idx = np.arange(m)
    # a step may not jump over a forced candidate
    nxt = np.searchsorted(must, idx, side="right")  # the first forced index after i
    limit = np.asarray(must + [m - 1])[np.minimum(nxt, len(must))]
    allowed = (idx[None, :] > idx[:, None]) & (idx[None, :] <= limit[:, None])
    finite = [np.where(allowed & np.isfinite(d), d, np.inf) for d in mats]
    allowed &= np.logical_and.reduce([np.isfinite(d) for d in finite])
    adjacent = [np.diag(d, 1) for d in finite]
    means = [max(float(np.sum(a[np.isfinite(a)])), 1e-12) / (count - 1) for a in adjacent]

    def ratio_of(path: list[int]) -> tuple[float, list[float]]:
        worst, new_means = 0.0, []
        for d in mats:
            steps = np.array([d[a, b] for a, b in zip(path, path[1:])]) / w
            mean = float(steps.mean())
            new_means.append(max(mean, 1e-12))
            worst = max(worst, float(steps.max() / mean) if mean > 0 else 1.0)
        return worst, new_means

    best: tuple[float, list[int]] | None = None
    seen: set[tuple[int, ...]] = set()
    for _ in range(iterations):
        step_cost = np.maximum.reduce([d / mu for d, mu in zip(finite, means)])
        cost = step_cost[None, :, :] / w[:, None, None]
        path = _bottleneck_path(cost, allowed, pins, count)
        if path is None:
            raise ValueError(f"no selection of {count} candidates keeps the forced ones in their places")
        if tuple(path) in seen:
            break
        seen.add(tuple(path))
        ratio, means = ratio_of(path)
        if best is None or ratio < best[0]:
            best = (ratio, path)
    assert best is not None
    return best[1], best[0]
