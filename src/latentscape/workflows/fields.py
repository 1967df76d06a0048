"""Checks on a workflow config that need no model, run before one loads (a bad value should not cost a
5-25 s model load). Errors name the config *field* (``cfg``, ``strength``); the CLI maps fields to flags.

Every number anywhere in a config must be finite (``inf``/``nan`` would render a black image); the fields
every workflow shares get their ranges here; a workflow's own checks (with the model) still run after.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

from latentscape.core.prompt_syntax import PromptSyntaxError, check_prompt, has_editing
from latentscape.core.seeds import SEED_LIMIT
from latentscape.errors import LatentscapeError
from latentscape.workflows.common import MAX_BATCH, MAX_STEPS
from latentscape.workflows.keyframes import Keyframe

# field -> (low, high, whole number?, what it is); a bound of None is open
RANGES: dict[str, tuple[float | None, float | None, bool, str]] = {
    "steps": (1, MAX_STEPS, True, "denoising steps"),
    "batch": (1, MAX_BATCH, True, "images"),
    "batch_size": (1, MAX_BATCH, True, "items per model call"),
    "n": (1, MAX_BATCH, True, "variations"),
    "cfg": (0, None, False, "guidance scale (1 = no guidance, 7-12 typical)"),
    "guidance_rescale": (0, 1, False, "guidance rescale phi"),
    "cfg_dip": (0, 1, False, "CFG dip (0 = off)"),
    "width": (1, None, True, "pixels"),
    "height": (1, None, True, "pixels"),
}
SEED_FIELDS = ("seed", "variation_seed")
PROMPT_FIELDS = ("prompt", "negative", "prompts")  # plain text fields; keyframe fields are checked where parsed


def check_fields(config: Any) -> None:
    """Refuse, in one sentence naming the field, a non-finite number anywhere in ``config`` or a shared field
    out of its range."""
    if getattr(config, "prompt", "") is None and getattr(config, "from_latents", None) is None:  # None: an inversion's caption
        raise LatentscapeError("prompt got None; expected text (None only with from_latents an inversion file: its caption).", field="prompt")
    _check_prompts(config)
    if hasattr(config, "image_mode"):  # before any image is read or inverted (the studio checks at request time)
        from latentscape.workflows.plan import check_image_mode

        check_image_mode(config.image_mode)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        _finite(f.name, value)
        if value is None or f.name not in RANGES and f.name not in SEED_FIELDS and f.name not in ("strength", "true_cfg"):
            continue
        if f.name in SEED_FIELDS:
            if not _integer(value) or not (value == -1 or 0 <= value <= SEED_LIMIT):
                raise LatentscapeError(f"{f.name} got {value!r}; expected a whole number from 0 to {SEED_LIMIT}, or -1 for random.")
        elif f.name == "strength":
            if isinstance(value, str):
                continue  # a preset name (vary): checked by the workflow
            if not _number(value) or not 0 <= value <= 1:
                raise LatentscapeError(f"strength got {value!r}; expected a number from 0 (keep the input) to 1.")
        elif f.name == "true_cfg":
            if not _number(value) or not (value >= 1 or value == 0):
                raise LatentscapeError(f"true_cfg got {value!r}; expected a number >= 1 (1 = off).")
        else:
            low, high, whole, what = RANGES[f.name]
            if (whole and not _integer(value)) or not _number(value) or (low is not None and value < low) or (high is not None and value > high):
                kind = "a whole number" if whole else "a number"
                span = f"from {low} to {high}" if high is not None else f">= {low}"
                raise LatentscapeError(f"{f.name} got {value!r}; expected {kind} {span} ({what}).")


def _check_prompts(config: Any) -> None:
    """A1111 prompt syntax (balanced brackets, finite weights) in every prompt field and keyframe prompt;
    prompt editing only in the ``prompt`` of configs that schedule it (``PROMPT_EDITING``), up to ``steps``."""
    editing = getattr(config, "PROMPT_EDITING", False)
    steps = getattr(config, "steps", None)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            name, text = (f.name, item) if f.name in PROMPT_FIELDS else (f"{f.name} prompt", getattr(item, "prompt", None))
            if not isinstance(text, str) or not (f.name in PROMPT_FIELDS or isinstance(item, Keyframe)):
                continue
            schedules = editing and f.name == "prompt"
            check_prompt(text, steps=steps if schedules and isinstance(steps, int) else None, field=name)
            if not schedules and has_editing(text):
                raise PromptSyntaxError(
                    f"{name} {text!r} uses prompt editing [from:to:when], which is read in the prompt of generate and "
                    "img2img only (this samples one conditioning per image).")


def _finite(name: str, value: Any) -> None:
    if isinstance(value, Keyframe):
        _finite(f"{name} cfg", value.cfg)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _finite(name, item)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isfinite(value):
        raise LatentscapeError(f"{name} got {value}; expected a finite number (inf and nan are refused).")


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
