"""Value schedules over frames, as Deforum and FizzNodes write them: ``"0:(7), 24:(12), 48:(7)"``.

A schedule is a list of points (frame, value) with whole, strictly increasing frame numbers. Between two
points the value is linear in the frame (Deforum's default ``Linear`` interpolation); before the first point
it holds the first value and after the last point the last one (Deforum fills both ends the same way, pandas'
``interpolate(limit_direction="both")``). A schedule with one point is a constant.

Accepted forms (:func:`parse_schedule`):
- Deforum's string ``"FRAME:(VALUE), FRAME:(VALUE), ..."`` (the parentheses may be left out: ``"0:7, 24:12"``);
- a JSON mapping ``{"0": 7, "24": 12}`` (FizzNodes-style keys are frame numbers as text or ints);
- a bare number: the same value on every frame.

Deforum evaluates each value as a math expression (``0:(7 + 2*sin(t))``, with ``t`` the frame); that is out
of scope here: a value must be a plain finite number, and anything else is refused in one sentence. Pure
Python: no model, file or tensor knowledge.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from latentscape.errors import LatentscapeError

_FRAME = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
MAX_POINTS = 10_000


@dataclass(frozen=True)
class ValueSchedule:
    """Points (frame, value), frames whole and strictly increasing; :meth:`at` interpolates linearly."""

    points: tuple[tuple[int, float], ...]

    @property
    def first_frame(self) -> int:
        return self.points[0][0]

    @property
    def last_frame(self) -> int:
        return self.points[-1][0]

    def at(self, frame: float) -> float:
        """The value at ``frame`` (fractional frames allowed): linear between points, held beyond the ends."""
        points = self.points
        if frame <= points[0][0]:
            return points[0][1]
        if frame >= points[-1][0]:
            return points[-1][1]
        lo, hi = 0, len(points) - 1
        while hi - lo > 1:  # the segment holding frame: points[lo][0] <= frame < points[hi][0]
            mid = (lo + hi) // 2
            if points[mid][0] <= frame:
                lo = mid
            else:
                hi = mid
        (f0, v0), (f1, v1) = points[lo], points[hi]
        if frame == f0:
            return v0
        w = (frame - f0) / (f1 - f0)
        return v0 + w * (v1 - v0)

    def to_text(self) -> str:
        """Deforum's string form, ``"0:(7), 24:(12)"`` (values written so they parse back exactly)."""
        return ", ".join(f"{f}:({_number_text(v)})" for f, v in self.points)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def parse_schedule(spec: Any, name: str) -> ValueSchedule:
    """A schedule from Deforum's string, a ``{frame: value}`` mapping or a number; ``name`` (the field, e.g.
    ``schedules.cfg``) starts every error sentence."""
    if isinstance(spec, bool):
        raise LatentscapeError(f"{name} got {spec!r}; expected a schedule like \"0:(7), 24:(12)\", a {{frame: value}} mapping or a number.")
    if isinstance(spec, (int, float)):
        return ValueSchedule(((0, _value(spec, name, 0)),))
    if isinstance(spec, Mapping):
        items = [(_frame(k, name), _value(v, name, k)) for k, v in spec.items()]
    elif isinstance(spec, str):
        items = _parse_text(spec, name)
    else:
        raise LatentscapeError(f"{name} is a {type(spec).__name__}; expected a schedule like \"0:(7), 24:(12)\", a {{frame: value}} mapping or a number.")
    if not items:
        raise LatentscapeError(f"{name} is empty; expected at least one FRAME:(VALUE) point, like \"0:(7), 24:(12)\".")
    if len(items) > MAX_POINTS:
        raise LatentscapeError(f"{name} has {len(items)} points; at most {MAX_POINTS} are accepted.")
    for (f0, _), (f1, _) in zip(items, items[1:]):
        if f1 == f0:
            raise LatentscapeError(f"{name} gives frame {f1} twice; each frame may appear once.")
        if f1 < f0:
            raise LatentscapeError(f"{name} has frame {f1} after frame {f0}; list the frames in increasing order.")
    return ValueSchedule(tuple(items))


def _parse_text(text: str, name: str) -> list[tuple[int, float]]:
    """Deforum's ``FRAME:(VALUE), ...`` (a trailing comma allowed), scanned by hand so that nested
    parentheses (a math expression) are found and refused as such rather than misread."""
    items: list[tuple[int, float]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return items
        colon = text.find(":", i)
        if colon < 0:
            raise LatentscapeError(f"{name} cannot be read at '{_shown(text[i:])}'; expected FRAME:(VALUE) points like \"0:(7), 24:(12)\".")
        frame = _frame(text[i:colon].strip(), name)
        j = colon + 1
        while j < n and text[j].isspace():
            j += 1
        if j < n and text[j] == "(":
            depth, k = 0, j
            while k < n:
                depth += {"(": 1, ")": -1}.get(text[k], 0)
                if depth == 0:
                    break
                k += 1
            if k >= n:
                raise LatentscapeError(f"{name} has an unclosed '(' at frame {frame}; expected FRAME:(VALUE) points like \"0:(7), 24:(12)\".")
            raw, j = text[j + 1:k], k + 1
        else:
            end = text.find(",", j)
            end = n if end < 0 else end
            raw, j = text[j:end], end
            if ":" in raw:  # "0:7 24:9": the next point was not separated
                raise LatentscapeError(f"{name} cannot be read at '{_shown(raw.strip())}'; separate FRAME:(VALUE) points with commas.")
        items.append((frame, _value(raw, name, frame)))
        while j < n and text[j].isspace():
            j += 1
        if j < n and text[j] != ",":
            raise LatentscapeError(f"{name} cannot be read at '{_shown(text[j:])}'; separate FRAME:(VALUE) points with commas.")
        i = j + 1


def _frame(raw: Any, name: str) -> int:
    if isinstance(raw, bool):
        raise LatentscapeError(f"{name} has frame {raw!r}; frames are whole numbers from 0.")
    if isinstance(raw, int):
        frame = raw
    elif isinstance(raw, float) and raw.is_integer():
        frame = int(raw)
    elif isinstance(raw, str) and _FRAME.fullmatch(raw.strip()):
        frame = int(raw.strip())
    else:
        raise LatentscapeError(f"{name} has frame '{_shown(str(raw))}', which is not a whole number; frames are whole numbers from 0.")
    if frame < 0:
        raise LatentscapeError(f"{name} has frame {frame}; frames are whole numbers from 0.")
    return frame


def _value(raw: Any, name: str, frame: Any) -> float:
    if isinstance(raw, bool):
        raise LatentscapeError(f"{name} has {raw!r} at frame {frame}; expected a number.")
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise LatentscapeError(f"{name} has no value at frame {frame}; expected a number, like {frame}:(7).")
        if not _NUMBER.fullmatch(text):
            if text.lower().lstrip("+-") in ("inf", "infinity", "nan"):
                raise LatentscapeError(f"{name} has {text} at frame {frame}; expected a finite number.")
            raise LatentscapeError(
                f"{name} has '{_shown(text)}' at frame {frame}, which is not a plain number; Deforum's math expressions "
                "(t, sin(), ...) are not supported: give the values at frames and they are interpolated linearly.")
        value = float(text)
    else:
        raise LatentscapeError(f"{name} has a {type(raw).__name__} at frame {frame}; expected a number.")
    if not math.isfinite(value):
        raise LatentscapeError(f"{name} has {value} at frame {frame}; expected a finite number.")
    return value


def _shown(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
