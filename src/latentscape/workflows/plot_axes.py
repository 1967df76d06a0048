"""X/Y/Z plot axes (A1111's "X/Y/Z plot" script): ``FIELD=VALUES`` over a :class:`GenerateConfig` field.

Pure parsing, no model. Values are comma-separated (a value holding a comma is double-quoted, as in
A1111: ``negative="blurry, dark",none``). Numeric fields also take ranges, each item of the list on its own:

==================  ==========================  =========================
written             means                       as in A1111
==================  ==========================  =========================
``1..4``            1, 2, 3, 4                  ``1-4``
``1..10:3``         1, 4, 7, 10 (step 3)        ``1-10 (+3)``
``10..1:3``         10, 7, 4, 1                 ``10-1 (-3)``
``0..1[5]``         0, 0.25, 0.5, 0.75, 1       ``0-1 [5]``
==================  ==========================  =========================

The A1111 spellings are accepted too. ``prompt=S/R:cat,dog,owl`` is A1111's Prompt S/R: the first value
is searched for in the prompt and each value replaces it (so the first cell is the prompt itself);
``negative`` takes S/R the same way. ``size=64x64,96x96`` sets width and height together.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from typing import Any

from latentscape.errors import LatentscapeError

MAX_VALUES = 256  # per axis; the whole plot has its own cap (workflows.plot.MAX_PLOT_CELLS)

# field -> (kind, label in the grid and infotext); kinds: int, float, text, sampler, size
FIELDS: dict[str, tuple[str, str]] = {
    "prompt": ("text", "Prompt"),
    "negative": ("text", "Negative prompt"),
    "seed": ("int", "Seed"),
    "steps": ("int", "Steps"),
    "sampler": ("sampler", "Sampler"),
    "cfg": ("float", "CFG scale"),
    "true_cfg": ("float", "True CFG scale"),
    "guidance_rescale": ("float", "CFG Rescale phi"),
    "width": ("int", "Width"),
    "height": ("int", "Height"),
    "size": ("size", "Size"),
    "strength": ("float", "Denoising strength"),
}
# other spellings people use (A1111's axis names, flags) -> field
ALIASES = {
    "cfg_scale": "cfg", "guidance_scale": "cfg", "scale": "cfg", "prompt_s/r": "prompt", "prompt_sr": "prompt",
    "negative_prompt": "negative", "neg": "negative", "denoising": "strength", "denoising_strength": "strength",
    "cfg_rescale": "guidance_rescale", "cfg_rescale_phi": "guidance_rescale",
}

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DOTS = re.compile(rf"\s*({_NUMBER})\s*\.\.\s*({_NUMBER})\s*(?::\s*({_NUMBER})|\[\s*(\d+)\s*\])?\s*")
_A1111_STEP = re.compile(rf"\s*({_NUMBER})\s*-\s*({_NUMBER})\s*(?:\(\s*([+-]?\s*(?:\d+(?:\.\d*)?|\.\d+))\s*\))?\s*")
_A1111_COUNT = re.compile(rf"\s*({_NUMBER})\s*-\s*({_NUMBER})\s*\[\s*(\d+)\s*\]\s*")
SR_PREFIX = re.compile(r"\s*s/r\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class Axis:
    """One plot axis: ``field`` takes each of ``values`` in turn (``replace``: A1111 Prompt S/R, the
    first value is the text searched for in the base value, every value its replacement)."""

    field: str
    values: tuple[Any, ...]
    replace: bool = False

    @property
    def label(self) -> str:
        return FIELDS[self.field][1] if self.field in FIELDS else self.field

    def cell_label(self, index: int) -> str:
        value = self.values[index]
        if self.field in ("prompt", "negative"):
            return str(value) if value != "" else "(none)"
        if self.field == "size":
            return f"{value[0]}x{value[1]}"
        return f"{self.label}: {_text(value)}"

    def values_text(self) -> str:
        """The values for an infotext field: `` | ``-separated, free of commas, colons and quotes."""
        parts = [f"{v[0]}x{v[1]}" if self.field == "size" else _text(v) for v in self.values]
        return " | ".join(re.sub(r"[,:\"]", " ", p).strip() or "(none)" for p in parts)


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def field_name(text: str, where: str = "axis") -> str:
    """The config field an axis name means (``CFG Scale``, ``cfg``, ``guidance-rescale`` ...)."""
    key = re.sub(r"[\s\-]+", "_", text.strip().lower())
    key = ALIASES.get(key, key)
    if key not in FIELDS:
        raise LatentscapeError(f"{where} got the field '{text.strip()}', which is no plot field; accepted: {', '.join(FIELDS)}.")
    return key


def parse_axis(text: str, *, where: str = "axis") -> Axis:
    """``FIELD=VALUES`` -> :class:`Axis` (values parsed and checked for their field's kind)."""
    if "=" not in text:
        raise LatentscapeError(f"{where} got '{text}'; accepted: FIELD=VALUES, e.g. cfg=1,3,7.5 or seed=1..4.")
    name, _, spec = text.partition("=")
    field = field_name(name, where)
    kind = FIELDS[field][0]
    replace = False
    if kind == "text" and SR_PREFIX.match(spec):
        spec, replace = SR_PREFIX.sub("", spec, count=1), True
    items = _split(spec, where)
    if not items or (kind != "text" and all(i.strip() == "" for i in items)):
        raise LatentscapeError(f"{where} got no values for '{field}'; accepted: comma-separated values, e.g. {field}={_example(kind)}.")
    values: list[Any] = []
    for item in items:
        values.extend(_values(field, kind, item, where))
        if len(values) > MAX_VALUES:
            raise LatentscapeError(f"{where} got more than {MAX_VALUES} values for '{field}'; accepted: at most {MAX_VALUES}.")
    if replace and len(values) < 2:
        raise LatentscapeError(f"{where} got one value for '{field}=S/R:...'; accepted: the text to search for, then its replacements, e.g. prompt=S/R:cat,dog.")
    return Axis(field, tuple(values), replace)


def _split(spec: str, where: str) -> list[str]:
    try:
        rows = list(csv.reader([spec], skipinitialspace=True, strict=True))
    except csv.Error:
        raise LatentscapeError(f"{where} got '{spec}', which has an unclosed quote; accepted: comma-separated values, double-quoted where a value holds a comma.") from None
    return [item.strip() for item in rows[0]] if rows else []


def _example(kind: str) -> str:
    return {"int": "1..4", "float": "1,3,7.5", "sampler": "euler,dpmpp_2m", "size": "64x64,96x96"}.get(kind, "cat,dog")


def _values(field: str, kind: str, item: str, where: str) -> list[Any]:
    if kind == "text":
        return [item]
    if kind == "sampler":
        return [_sampler(item, where)]
    if kind == "size":
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", item)
        if not m:
            raise LatentscapeError(f"{where} got the size '{item}'; accepted: WIDTHxHEIGHT values, e.g. size=64x64,96x96.")
        return [(int(m.group(1)), int(m.group(2)))]
    whole = kind == "int"
    numbers = _range(item, whole, where)
    if numbers is None:
        try:
            numbers = [float(item)]
        except ValueError:
            raise LatentscapeError(f"{where} got '{item}' for '{field}'; accepted: {'whole ' if whole else ''}numbers or ranges "
                                   f"such as 1..4, 1..10:2 or 0..1[5].") from None
    out = []
    for n in numbers:
        if not math.isfinite(n):
            raise LatentscapeError(f"{where} got '{item}' for '{field}'; accepted: finite numbers.")
        if whole:
            if n != int(n):
                raise LatentscapeError(f"{where} got '{item}' for '{field}', which gives {n:g}; accepted: whole numbers.")
            out.append(int(n))
        else:
            out.append(float(n))
    return out


def _range(item: str, whole: bool, where: str) -> list[float] | None:
    """The numbers a range item means, or None when it is no range (a plain number)."""
    if m := _DOTS.fullmatch(item):
        a, b, step, count = m.groups()
    elif m := _A1111_COUNT.fullmatch(item):
        (a, b, count), step = m.groups(), None
    elif m := _A1111_STEP.fullmatch(item):
        (a, b, step), count = m.groups(), None
        step = step.replace(" ", "") if step else None
    else:
        return None
    lo, hi = float(a), float(b)
    if count is not None:
        n = int(count)
        if not 1 <= n <= MAX_VALUES:
            raise LatentscapeError(f"{where} got the range '{item}', which asks for {n} values; accepted: 1 to {MAX_VALUES}.")
        values = [lo] if n == 1 else [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        return [round(v) if whole and abs(v - round(v)) < 1e-9 else round(v, 12) for v in values]
    s = abs(float(step)) if step is not None else 1.0
    if s == 0 or not math.isfinite(s):
        raise LatentscapeError(f"{where} got the range '{item}' with step 0; accepted: a step other than 0, e.g. 1..10:2.")
    n = math.floor(abs(hi - lo) / s + 1e-9) + 1
    if n > MAX_VALUES:
        raise LatentscapeError(f"{where} got the range '{item}', which gives {n} values; accepted: at most {MAX_VALUES} per axis.")
    sign = 1 if hi >= lo else -1
    return [round(lo + sign * s * i, 12) for i in range(n)]


def _sampler(name: str, where: str) -> str:
    """latentscape's name for a sampler (latentscape's or A1111's: ``Euler a``, ``DPM++ 2M Karras``); the
    loaded model's family is checked after it loads."""
    from latentscape.samplers import canonical_sampler

    try:
        return canonical_sampler(name)
    except LatentscapeError as exc:
        text = str(exc)
        accepted = text[text.index("accepted:"):] if "accepted:" in text else "accepted: the names `--help` lists."
        raise LatentscapeError(f"{where} got the sampler '{name}', which latentscape does not know; {accepted}") from None
