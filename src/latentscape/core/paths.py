"""Paths through keyframes: where each frame sits, closed loops, ease in/out time warps, guidance curves.

A path over K keyframes is parametrised by one number ``u`` in [0, S], with S = K − 1 segments for an open
path (A -> B -> C) and S = K for a closed one (A -> B -> C -> A: the last segment returns to keyframe 0).
Keyframe k sits at exactly ``u = k``; a frame at ``u`` lies in segment ⌊u⌋ at local ``t = u − ⌊u⌋``
(the path's end, u = S, is the last segment at t = 1). Everything here is pure math on floats.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

EASINGS: dict[str, Callable[[float], float]] = {
    "linear": lambda t: t,
    "in": lambda t: t * t,  # starts slowly at each keyframe, arrives at full speed
    "out": lambda t: 1 - (1 - t) * (1 - t),  # leaves at full speed, settles into the next keyframe
    "in_out": lambda t: t * t * (3 - 2 * t),  # smoothstep: lingers at every keyframe
}


def ease(t: float, kind: str = "linear") -> float:
    """Time warp of a local parameter t in [0, 1]; every easing keeps 0 -> 0 and 1 -> 1 exactly."""
    if kind not in EASINGS:
        raise ValueError(f"unknown easing '{kind}'; known: {', '.join(EASINGS)}")
    if t <= 0.0 or t >= 1.0:
        return 0.0 if t <= 0.0 else 1.0
    return EASINGS[kind](t)


def segment_count(n_keyframes: int, closed: bool) -> int:
    """S: K − 1 segments for an open path, K for a closed loop."""
    return n_keyframes if closed else n_keyframes - 1


def interval_count(frames: int, closed: bool) -> int:
    """Gaps between consecutive frames: N − 1 open; N closed (the last frame steps back to the first)."""
    return frames if closed else frames - 1


def keyframe_frames(n_keyframes: int, frames: int, closed: bool) -> list[int]:
    """Frame index of every keyframe for evenly shared segments (closed paths: keyframe 0 only once).

    Segment k gets ⌊(k+1)·M/S + ½⌋ − ⌊k·M/S + ½⌋ ≥ 1 gaps (M gaps, S segments, M ≥ S).
    """
    segments, gaps = segment_count(n_keyframes, closed), interval_count(frames, closed)
    if n_keyframes < 2 or gaps < segments:
        raise ValueError(f"{frames} frames cannot hold {n_keyframes} keyframes on a {'closed' if closed else 'open'} path")
    return [math.floor(k * gaps / segments + 0.5) for k in range(n_keyframes)]


def uniform_positions(n_keyframes: int, frames: int, closed: bool = False, easing: str = "linear",
                      keyframe_at: Sequence[int] | None = None) -> list[float]:
    """Frame positions ``u`` with every keyframe on a frame and each segment's frames evenly spaced in t
    (then warped by ``easing``). Open paths end on the last keyframe; closed paths stop one gap before
    returning to the first, so playing the frames on repeat never shows keyframe 0 twice.

    ``keyframe_at``: the frame of every keyframe (pinned keyframes: 0 first, increasing; an open path's last
    one is frame ``frames - 1``); default :func:`keyframe_frames`, evenly shared segments."""
    segments, gaps = segment_count(n_keyframes, closed), interval_count(frames, closed)
    starts = (list(keyframe_at) if keyframe_at is not None else keyframe_frames(n_keyframes, frames, closed)) + [gaps]
    positions: list[float] = []
    for k in range(segments):
        m = starts[k + 1] - starts[k]
        positions += [k + ease(j / m, easing) for j in range(m)]
    if not closed:
        positions.append(float(segments))
    return positions


def locate(u: float, n_keyframes: int, closed: bool = False) -> tuple[int, int, float]:
    """(keyframe a, keyframe b, t) of position ``u``: the frame is ``t`` of the way from a to b.

    A frame exactly on keyframe k comes back as (k, k, 0.0), so it uses keyframe k alone.
    """
    segments = segment_count(n_keyframes, closed)
    if not 0.0 <= u <= segments:
        raise ValueError(f"position {u} is outside the path [0, {segments}]")
    k = min(int(math.floor(u)), segments - 1)
    t = u - k
    if t <= 0.0:
        return k % n_keyframes, k % n_keyframes, 0.0
    if t >= 1.0:
        return (k + 1) % n_keyframes, (k + 1) % n_keyframes, 0.0
    return k, (k + 1) % n_keyframes, t


def guidance_curve(t: float, dip: float) -> float:
    """Multiplier of ``cfg − 1`` along a segment: ``1 − dip·4t(1 − t)``.

    1 at both keyframes (so their frames keep their own CFG exactly) and ``1 − dip`` halfway, where a
    lower CFG lets the transition pass through less saturated, less over-committed images.
    """
    return 1.0 - dip * 4.0 * t * (1.0 - t)

