"""AUTOMATIC1111 / Forge infotext (the PNG ``parameters`` chunk) -> typed settings, validated as untrusted input.

The grammar, as A1111's PNG Info documents and writes it::

    {prompt, any number of lines}
    Negative prompt: {negative, any number of lines}      <- optional
    Key: value, Key: "a \\"quoted\\", value", Key: value   <- the last line

A value holding ``,`` ``:`` or a newline is written as a JSON string. The settings line is the last line
when it holds at least three ``Key: value`` pairs (else the whole text is the prompt, as A1111 reads it).
``<lora:NAME:WEIGHT>`` (and other ``<kind:...>`` extra-network tags) in the prompt are collected and taken
out of the prompt text, as A1111 does before encoding. Parsing is pure (no torch, no files);
:func:`read_png_settings` reads a PNG with the untrusted-image guards of :mod:`latentscape.io.images`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Mapping

from latentscape.core.seeds import SEED_LIMIT
from latentscape.errors import LatentscapeError
from latentscape.limits import check_pixels, limit

MAX_FIELDS = 500
_KEY = re.compile(r"\s*([A-Za-z][\w \-/.()+]*?)\s*:\s*")
_NETWORK = re.compile(r"<(?P<kind>[a-z_]+):(?P<body>[^<>]*)>", re.IGNORECASE)
_VERSION = re.compile(r"v(\d+)\.(\d+)")


@dataclass(frozen=True)
class ExtraNetwork:
    """A ``<kind:name:weight...>`` tag of the prompt (LoRA, LyCORIS, hypernetwork)."""

    kind: str
    name: str
    weight: float | None
    tag: str


@dataclass(frozen=True)
class A1111Settings:
    """What an A1111/Forge infotext says. ``fields`` holds every ``Key: value`` pair as text (quotes removed);
    the typed attributes are the ones latentscape can act on (None: not in the infotext)."""

    prompt: str
    negative: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)
    networks: tuple[ExtraNetwork, ...] = ()
    steps: int | None = None
    sampler: str | None = None
    schedule_type: str | None = None
    cfg: float | None = None
    distilled_cfg: float | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    variation_seed: int | None = None
    variation_strength: float | None = None
    rng: str | None = None
    clip_skip: int | None = None
    version: str | None = None

    def a1111_version(self) -> tuple[int, int] | None:
        """(major, minor) of the A1111 version that wrote it (Forge's ``f2.0.1v1.10.1...`` too), else None."""
        m = _VERSION.search(self.version or "")
        return (int(m.group(1)), int(m.group(2))) if m else None


def parse_settings_line(line: str) -> dict[str, str] | None:
    """``Key: value, Key: "quoted", ...`` -> {key: value}; None when the line is not a settings line (fewer
    than three pairs, or text that is not pairs)."""
    out: dict[str, str] = {}
    pos, n = 0, len(line)
    while pos < n:
        m = _KEY.match(line, pos)
        if not m:
            return None
        key, pos = m.group(1), m.end()
        if pos < n and line[pos] == '"':
            try:
                value, end = json.JSONDecoder().raw_decode(line, pos)
            except ValueError:
                return None
            if not isinstance(value, str):
                return None
            pos = end
        else:
            end = line.find(",", pos)
            end = n if end < 0 else end
            value, pos = line[pos:end].strip(), end
        out[key] = value
        if len(out) > MAX_FIELDS:
            raise LatentscapeError(f"the settings line has more than {MAX_FIELDS} fields.")
        rest = line[pos:].lstrip()
        if rest and not rest.startswith(","):
            return None
        pos = n - len(rest) + 1 if rest else n
    return out if len(out) >= 3 else None


def _number(fields: Mapping[str, str], key: str, kind, where: str, low: float | None = None, high: float | None = None):
    text = fields.get(key)
    if text is None or text == "":
        return None
    try:
        value = kind(text)
    except (ValueError, OverflowError):
        what = "a whole number" if kind is int else "a number"
        raise LatentscapeError(f"{where}: {key} '{text[:40]}' is not {what}.") from None
    if value != value or value in (float("inf"), float("-inf")) or (low is not None and value < low) or (high is not None and value > high):
        raise LatentscapeError(f"{where}: {key} {text[:40]} is out of range; expected {low:g} to {high:g}.")
    return value


def _seed(fields: Mapping[str, str], key: str, where: str) -> int | None:
    text = fields.get(key)
    if text is not None and len(text.lstrip("-")) > len(str(SEED_LIMIT)):
        raise LatentscapeError(f"{where}: {key} has {len(text)} digits; expected 0 to {SEED_LIMIT} or -1.")
    value = _number(fields, key, int, where, -1, SEED_LIMIT)
    return value


def _networks(prompt: str, where: str) -> tuple[str, tuple[ExtraNetwork, ...]]:
    """The prompt without its extra-network tags (as A1111 cuts them before encoding), and the tags."""
    found = []
    for m in _NETWORK.finditer(prompt):
        parts = m.group("body").split(":")
        weight = None
        if len(parts) > 1:
            try:
                weight = float(parts[1])
            except ValueError:
                raise LatentscapeError(f"{where}: the prompt's tag '{m.group(0)[:60]}' has a weight that is not a number.") from None
        found.append(ExtraNetwork(m.group("kind").lower(), parts[0].strip(), weight, m.group(0)))
    return _NETWORK.sub("", prompt).strip(), tuple(found)  # the text A1111 encodes: the tags cut out, nothing else


def parse_infotext(text: str, *, source: str = "the infotext") -> A1111Settings:
    """An A1111/Forge ``parameters`` text -> :class:`A1111Settings`; one sentence (naming ``source`` and the
    field) when it is too large, has no settings line, or a number that is not one."""
    if not isinstance(text, str):
        raise LatentscapeError(f"{source} is not text.")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit("max_text_chunk"):
        raise LatentscapeError(f"{source} is {size} bytes; the limit is {limit('max_text_chunk')} (LATENTSCAPE_MAX_TEXT_CHUNK).")
    if "\x00" in text:
        raise LatentscapeError(f"{source} holds a NUL character; it is not an A1111 infotext.")
    lines = text.replace("\r\n", "\n").strip().split("\n")
    fields = parse_settings_line(lines[-1].strip()) if lines else None
    if fields is None:
        raise LatentscapeError(f"{source} has no A1111 settings line (a last line like 'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1').")
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines[:-1]:
        if not in_negative and line.startswith("Negative prompt:"):
            in_negative, line = True, line[len("Negative prompt:"):].lstrip()
        (negative_lines if in_negative else prompt_lines).append(line)
    prompt, networks = _networks("\n".join(prompt_lines).strip(), source)
    negative, _ = _networks("\n".join(negative_lines).strip(), source)

    width = height = None
    if (size_text := fields.get("Size")) is not None:
        m = re.fullmatch(r"\s*(\d{1,6})\s*x\s*(\d{1,6})\s*", size_text)
        if not m or not int(m.group(1)) or not int(m.group(2)):
            raise LatentscapeError(f"{source}: Size '{size_text[:40]}' is not WIDTHxHEIGHT in pixels.")
        width, height = int(m.group(1)), int(m.group(2))
        check_pixels(width, height, what=f"{source}: Size")
    return A1111Settings(
        prompt=prompt,
        negative=negative,
        fields=dict(fields),
        networks=networks,
        steps=_number(fields, "Steps", int, source, 1, 10000),
        sampler=fields.get("Sampler") or None,
        schedule_type=fields.get("Schedule type") or None,
        cfg=_number(fields, "CFG scale", float, source, 0, 1000),
        distilled_cfg=_number(fields, "Distilled CFG Scale", float, source, 0, 1000),
        seed=_seed(fields, "Seed", source),
        width=width,
        height=height,
        variation_seed=_seed(fields, "Variation seed", source),
        variation_strength=_number(fields, "Variation seed strength", float, source, 0, 1),
        rng=fields.get("RNG") or None,
        clip_skip=_number(fields, "Clip skip", int, source, 1, 12),
        version=fields.get("Version") or None,
    )


def png_chunks(path) -> dict[str, str]:
    """The text chunks of a PNG (or any image Pillow reads), read under latentscape's untrusted-image guards;
    one sentence for a missing or unreadable file."""
    from pathlib import Path

    from latentscape.io.images import decode_limits, open_untrusted, pillow_errors

    path = Path(path)
    if not path.is_file():
        raise LatentscapeError(f"'{path}' does not exist; expected a PNG made by latentscape, AUTOMATIC1111 or Forge.")
    with decode_limits(), pillow_errors(f"'{path}'", "an image"):
        with open_untrusted(path, f"image '{path}'") as im:
            return {str(k): v for k, v in dict(getattr(im, "text", {}) or {}).items() if isinstance(v, str)}


def read_png_settings(path) -> A1111Settings | None:
    """The A1111/Forge settings in a PNG's ``parameters`` chunk, or None when it has none."""
    text = png_chunks(path).get("parameters")
    return None if text is None else parse_infotext(text, source=f"the A1111 parameters in '{path}'")
