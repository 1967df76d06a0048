"""A morph's timing and value schedules: keyframes pinned to frames, and cfg / strength / guidance rescale /
seed scheduled over frames (Deforum and FizzNodes style, :mod:`latentscape.core.value_schedule`).

Timing: every keyframe lies on a frame, pinned by the user (``{"0": ..., "48": ...}``) or evenly shared. The
frame axis of a schedule is the path's own timing: a frame at path position ``u`` in segment k has the frame
number ``f = at[k] + (u − k)·(at[k+1] − at[k])`` (:func:`latentscape.core.frame_pins.frame_at`). With uniform
pacing (linear ease) frame f sits exactly at frame number f, so it gets the schedule's value at f; perceptual
and adaptive pacing move frames within their segment (never off a pin), and a moved frame takes the values
at its place on the path (a fractional frame number), so the values are a function of the path alone:
probes, frame-tree branches and resumed renders all agree, and every pinned frame gets exactly its
frame's values (so it equals a standalone ``generate`` with them).

Scheduled values:
- ``cfg``: replaces the linear interpolation of keyframe CFGs (a keyframe ``cfg`` and a cfg schedule are
  not combined: one is refused); ``cfg_dip`` still lowers it mid-segment.
- ``guidance_rescale``: per frame (0 to 1).
- ``strength``: per frame, for paths with image keyframes (each frame's img2img starts at its own step);
  not with adaptive pacing, whose branches share one schedule start.
- ``seed``: with ``seed_behavior`` ``schedule``, the seed of every keyframe without one of its own is the
  schedule at the keyframe's frame (truncated to a whole number, as Deforum's ``int()`` does); its points
  must lie on keyframe frames, because a morph's noise comes from its keyframes' seeds and is slerped
  between them.

Seed behaviours (Deforum's ``seed_behavior``), for keyframes that name no seed; per-frame seeds, as Deforum
draws them, would give every frame unrelated noise (a flicker), so they act per keyframe and the noise
stays a slerp between keyframes:
- ``fixed`` (the default): every such keyframe uses ``seed``;
- ``iter``: keyframe i uses ``seed + i`` (A1111's batch seeds), so consecutive keyframes differ in noise;
- ``random``: each draws its own seed (recorded in the recipe, so replay and ``--resume`` reproduce it);
- ``schedule``: from ``schedules.seed`` as above.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from latentscape.core.frame_pins import frame_at, resolve_pins
from latentscape.core.paths import guidance_curve, keyframe_frames, segment_count
from latentscape.core.seeds import SEED_LIMIT
from latentscape.core.value_schedule import ValueSchedule, parse_schedule
from latentscape.errors import LatentscapeError
from latentscape.workflows.keyframes import Keyframe

SCHEDULED = ("cfg", "strength", "guidance_rescale", "seed")
SEED_BEHAVIORS = ("fixed", "iter", "random", "schedule")
DEFAULT_FRAMES = 24
_RANGES = {"cfg": (0.0, None), "strength": (0.0, 1.0), "guidance_rescale": (0.0, 1.0), "seed": (0.0, float(SEED_LIMIT))}


@dataclass(frozen=True)
class Timing:
    """On which frame each keyframe lies (``keyframe_at``), of ``frames``; ``pinned``: the user said so."""

    frames: int
    keyframe_at: tuple[int, ...]
    closed: bool
    pinned: bool

    def frame_at(self, u: float) -> float:
        return frame_at(u, self.keyframe_at, self.frames, self.closed)

    @property
    def counts(self) -> list[int]:
        """Frame gaps in each segment."""
        ends = list(self.keyframe_at) + ([self.frames] if self.closed else [])
        return [b - a for a, b in zip(ends, ends[1:])]


def timing(keyframes: Sequence[Keyframe], frames: int | None, closed: bool) -> Timing:
    """The path's timing: the pins (checked, unpinned keyframes spread between them) or evenly shared segments.
    ``frames`` None: from the last pin, else the default 24. ``frames`` must already be a whole number when given."""
    pins = [k.frame for k in keyframes]
    if any(p is not None for p in pins):
        total, at = resolve_pins(pins, frames, closed)
        return Timing(total, tuple(at), closed, True)
    total = DEFAULT_FRAMES if frames is None else frames
    if segment_count(len(keyframes), closed) > (total if closed else total - 1):
        return Timing(total, (), closed, False)  # too few frames: the caller's frame check says so
    return Timing(total, tuple(keyframe_frames(len(keyframes), total, closed)), closed, False)


def parse_schedules(schedules: Mapping[str, Any], frames: int) -> dict[str, ValueSchedule]:
    """Each named schedule parsed and checked: known name, points within the frames, values in range."""
    if not isinstance(schedules, Mapping):
        raise LatentscapeError(f"schedules is a {type(schedules).__name__}; expected an object of name: schedule ({', '.join(SCHEDULED)}).")
    out: dict[str, ValueSchedule] = {}
    for name, spec in schedules.items():
        if name not in SCHEDULED:
            raise LatentscapeError(f"schedules has an unknown name '{str(name)[:40]}'; accepted: {', '.join(SCHEDULED)}.")
        field = f"schedules.{name}"
        schedule = parse_schedule(spec, field)
        if schedule.last_frame > frames - 1:
            raise LatentscapeError(f"{field} has a point at frame {schedule.last_frame}, beyond the last frame {frames - 1} (frames = {frames}).")
        low, high = _RANGES[name]
        for f, v in schedule.points:
            if v < low or (high is not None and v > high) or (name == "seed" and not v.is_integer()):
                span = f"a whole number from 0 to {SEED_LIMIT}" if name == "seed" else f"a number from {low:g} to {high:g}" if high is not None else f"a number >= {low:g}"
                raise LatentscapeError(f"{field} has {v:g} at frame {f}; expected {span}.")
        out[name] = schedule
    return out


def canonical(schedules: Mapping[str, ValueSchedule]) -> dict[str, str]:
    """The schedules as Deforum strings, as a recipe records them (they parse back to the same points)."""
    return {name: schedules[name].to_text() for name in SCHEDULED if name in schedules}


def check_schedule_use(schedules: Mapping[str, ValueSchedule], keyframes: Sequence[Keyframe], timing_: Timing,
                       seed_behavior: str, *, pacing: str, img2img: bool) -> None:
    """The combinations that cannot mean one thing, each refused in one sentence naming the field."""
    if seed_behavior not in SEED_BEHAVIORS:
        raise LatentscapeError(f"seed_behavior got '{seed_behavior}'; accepted: {', '.join(SEED_BEHAVIORS)}.")
    if "cfg" in schedules:
        given = [i for i, k in enumerate(keyframes) if k.cfg is not None]
        if given:
            raise LatentscapeError(f"schedules.cfg and keyframe {given[0] + 1}'s own cfg both set its CFG; use one of them.")
    if "strength" in schedules:
        if not img2img:
            raise LatentscapeError("schedules.strength applies only to a path with image keyframes (img2img); this path has none.")
        if pacing == "adaptive":
            raise LatentscapeError("schedules.strength cannot be used with pacing adaptive, the default (its in-between frames "
                                   "branch from shared latents at one strength); pass pacing uniform or perceptual.")
    if ("seed" in schedules) != (seed_behavior == "schedule"):
        raise LatentscapeError("schedules.seed needs seed_behavior schedule (and seed_behavior schedule needs schedules.seed).")
    if "seed" in schedules:
        off = [f for f, _ in schedules["seed"].points if f not in timing_.keyframe_at]
        if off:
            raise LatentscapeError(f"schedules.seed has a point at frame {off[0]}, which holds no keyframe (keyframes are on frames "
                                   f"{', '.join(map(str, timing_.keyframe_at))}); a morph's noise comes from its keyframes' seeds.")
        scheduled = [int(math.trunc(schedules["seed"].at(f))) for f in timing_.keyframe_at]
        own = [i for i, k in enumerate(keyframes) if k.seed is not None and k.seed != scheduled[i]]  # a recipe's are the same
        if own:
            raise LatentscapeError(f"schedules.seed and keyframe {own[0] + 1}'s own seed both set its seed; use one of them.")


def apply_seed_behavior(keyframes: Sequence[Keyframe], seed_behavior: str, seed: int, schedules: Mapping[str, ValueSchedule],
                        timing_: Timing) -> list[Keyframe]:
    """Seeds for the keyframes that name none (``seed`` is the resolved ``--seed``); ``random`` gives them -1
    (drawn later, and recorded, like any keyframe seed of -1)."""
    out = []
    for i, k in enumerate(keyframes):
        if k.seed is None and seed_behavior == "iter":
            if seed + i > SEED_LIMIT:
                raise LatentscapeError(f"seed_behavior iter gives keyframe {i + 1} seed {seed + i}, beyond {SEED_LIMIT}; use a smaller seed.")
            k = dataclasses.replace(k, seed=seed + i)
        elif k.seed is None and seed_behavior == "random":
            k = dataclasses.replace(k, seed=-1)
        elif k.seed is None and seed_behavior == "schedule":
            k = dataclasses.replace(k, seed=int(math.trunc(schedules["seed"].at(timing_.keyframe_at[i]))))
        out.append(k)
    return out


class FrameValues:
    """The scheduled values of a path point (a, b, t) (the hook of ``RenderSettings.scheduled``)."""

    def __init__(self, schedules: Mapping[str, ValueSchedule], timing_: Timing, cfg_dip: float):
        self.schedules = {k: v for k, v in schedules.items() if k != "seed"}
        self.timing, self.cfg_dip = timing_, cfg_dip

    def __bool__(self) -> bool:
        return bool(self.schedules)

    def frame(self, point: tuple[int, int, float]) -> float:
        a, _, t = point
        return self.timing.frame_at(a + t)

    def __call__(self, point: tuple[int, int, float]) -> dict[str, float]:
        f = self.frame(point)
        values = {name: s.at(f) for name, s in self.schedules.items()}
        t = point[2]
        if "cfg" in values and self.cfg_dip and t != 0:
            values["cfg"] = 1 + (values["cfg"] - 1) * guidance_curve(t, self.cfg_dip)
        return values

    def uses_cfg_anywhere(self) -> bool:
        return "cfg" in self.schedules and any(v > 1 for _, v in self.schedules["cfg"].points)


def infotext_extra(schedules: Mapping[str, ValueSchedule], timing_: Timing, seed_behavior: str) -> dict[str, str]:
    """Infotext fields for pins and schedules, free of ',' ':' and quotes (civitai and sd-parsers cut there)."""
    extra = {}
    if timing_.pinned:
        extra["Keyframe frames"] = " | ".join(map(str, timing_.keyframe_at))
    for name in SCHEDULED:
        if name in schedules:
            label = {"cfg": "CFG", "guidance_rescale": "Guidance rescale"}.get(name, name.capitalize())
            extra[f"{label} schedule"] = " | ".join(f"{f} -> {_g(v)}" for f, v in schedules[name].points)
    if seed_behavior != "fixed":
        extra["Seed behavior"] = seed_behavior
    return extra


def _g(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:g}"
