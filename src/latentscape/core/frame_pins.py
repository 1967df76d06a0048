"""Keyframes pinned to frame numbers (Deforum's ``{"0": ..., "48": ...}`` prompts), and the frame timing of a path.

A path over K keyframes (see :mod:`latentscape.core.paths`) puts keyframe k at ``u = k``. Its *timing* says
on which frame each keyframe lies: evenly shared segments by default (:func:`~latentscape.core.paths.keyframe_frames`),
or the user's pins. :func:`resolve_pins` checks pins and fills the unpinned keyframes; :func:`frame_at` maps a
path position to its frame number on that timing (fractional between frames), the axis value schedules are
evaluated on. Pure Python; errors are one sentence naming the config field (``keyframes``, ``frames``).
"""

from __future__ import annotations

import math
from typing import Sequence

from latentscape.errors import LatentscapeError


def resolve_pins(pins: Sequence[int | None], frames: int | None, closed: bool) -> tuple[int, list[int]]:
    """(frames, the frame of every keyframe) from per-keyframe pins (None = not pinned).

    The first keyframe is frame 0; an open path's last keyframe is its last frame, so ``frames`` is the last
    pin + 1 when not given and must agree with it when given; a closed loop needs ``frames`` (the loop returns
    to the first keyframe after frame ``frames - 1``). Pins increase strictly; unpinned keyframes are spread
    evenly between their pinned neighbours, each segment keeping at least one frame gap.
    """
    k = len(pins)
    at = list(pins)
    if at[0] not in (None, 0):
        raise LatentscapeError(f"keyframes: keyframe 1 is pinned to frame {at[0]}; the first keyframe is frame 0 (the path starts on it).")
    at[0] = 0
    known = [(i, f) for i, f in enumerate(at) if f is not None]
    for (i, fi), (j, fj) in zip(known, known[1:]):
        if fj == fi:
            raise LatentscapeError(f"keyframes: keyframes {i + 1} and {j + 1} are both pinned to frame {fj}; each frame holds one keyframe.")
        if fj < fi:
            raise LatentscapeError(f"keyframes: keyframe {j + 1} is pinned to frame {fj}, before keyframe {i + 1}'s frame {fi}; pins must increase along the path.")
    last = known[-1]
    if frames is None:
        if closed:
            raise LatentscapeError("frames is needed for a closed loop through pinned keyframes (the loop returns to the first keyframe after frame frames - 1).")
        if last[0] != k - 1:
            raise LatentscapeError(f"frames is needed: the last keyframe (keyframe {k}) is not pinned, so the path's length is not known; pin it or give frames.")
        frames = last[1] + 1
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise LatentscapeError(f"frames got {frames!r}; expected a whole number of frames.", field="frames")
    end = frames if closed else frames - 1  # the frame the path ends on (a closed loop's is keyframe 1 again)
    for i, f in known:
        if f > frames - 1:
            raise LatentscapeError(f"keyframes: keyframe {i + 1} is pinned to frame {f}, beyond the last frame {frames - 1} (frames = {frames}).")
    if not closed and last[0] == k - 1 and last[1] != end:
        raise LatentscapeError(f"frames got {frames}, but the last keyframe is pinned to frame {last[1]}: an open path ends on its last "
                               f"keyframe, so frames must be {last[1] + 1} (or left out).")
    anchors = known + ([(k, end)] if closed else [] if last[0] == k - 1 else [(k - 1, end)])
    for (i, fi), (j, fj) in zip(anchors, anchors[1:]):
        if fj - fi < j - i and j - i == 1:  # only the open path's implicit end can meet a pin
            raise LatentscapeError(f"keyframes: the last keyframe (keyframe {j + 1}) ends the path on frame {fj}, which keyframe "
                                   f"{i + 1} is pinned to; pin it or give more frames.")
        if fj - fi < j - i:
            what = f"keyframe {i + 2}" if j - i == 2 else f"keyframes {i + 2} and {j}" if j - i == 3 else f"keyframes {i + 2} to {j}"
            raise LatentscapeError(f"keyframes: {what} must lie between frames {fi} and {fj}, which leaves too few frames; "
                                   "unpin the neighbours or give more frames.")
        for r in range(1, j - i):
            at[i + r] = fi + math.floor(r * (fj - fi) / (j - i) + 0.5)
        if j < k:
            at[j] = fj
    return frames, [int(f) for f in at]  # type: ignore[arg-type]


def frame_at(u: float, keyframe_at: Sequence[int], frames: int, closed: bool) -> float:
    """The frame number (fractional between frames) of path position ``u`` on the timing ``keyframe_at``:
    linear in ``u`` within each segment, so frame ``keyframe_at[k]`` is keyframe k and a uniformly paced frame
    f comes back as exactly f."""
    segments = len(keyframe_at) if closed else len(keyframe_at) - 1
    starts = list(keyframe_at) + ([frames] if closed else [])
    k = min(int(math.floor(u)), segments - 1)
    f = starts[k] + (u - k) * (starts[k + 1] - starts[k])
    nearest = round(f)
    return float(nearest) if abs(f - nearest) <= 1e-9 * max(1.0, abs(f)) else f
