"""A1111 prompt syntax, pure Python: emphasis weights, ``BREAK``, prompt editing and 75-token chunks.

Written from AUTOMATIC1111's documented behaviour (wiki "Features": attention/emphasis, prompt editing,
BREAK), not its code:

- ``(text)`` multiplies the attention to ``text`` by 1.1, ``[text]`` divides it by 1.1, ``(text:1.5)`` sets
  the factor; groups nest and multiply (``((a))`` = 1.21). ``\\(``, ``\\)``, ``\\[``, ``\\]``, ``\\\\`` are
  literal characters.
- ``BREAK`` (upper case, a word of its own) ends the current 75-token chunk.
- Prompt editing ``[from:to:when]`` uses ``from`` up to step ``when`` and ``to`` after it; ``[to:when]`` adds
  ``to`` after ``when``; ``[from::when]`` removes ``from`` after ``when``. ``when`` >= 1 is a step number, a
  number below 1 a fraction of the steps (``int(when * steps)``). A step uses ``from`` while its index
  (counted from 0) is at most ``when``, as A1111 counts; a ``when`` that comes to less than step 1 uses ``to``
  from the start.

Unlike A1111, which reads unbalanced brackets and a weight that is not a number as literal text, this module
refuses them with one sentence (:class:`PromptSyntaxError`): a typo should not silently change the weights.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from latentscape.errors import LatentscapeError

EMPHASIS = 1.1
CHUNK_TOKENS = 75  # CLIP's 77 positions minus the start and end tokens
COMMA_BACKTRACK = 20  # a full chunk is cut after its last comma when that comma is this close to the end

_SPECIAL = "()[]\\"
_BREAK = re.compile(r"\bBREAK\b")


class PromptSyntaxError(LatentscapeError):
    """A prompt whose weights or editing cannot be read (one sentence naming the prompt field)."""


@dataclass(frozen=True)
class Segment:
    """A run of prompt text and the attention multiplier of its tokens."""

    text: str
    weight: float = 1.0


# --------------------------------------------------------------------------------------------- the tree
@dataclass(frozen=True)
class _Text:
    raw: str  # as written (escapes kept), for rendering the prompt back
    text: str  # escapes resolved


@dataclass(frozen=True)
class _Group:
    opener: str  # "(" or "["
    children: tuple
    weight: float
    raw_weight: str | None  # the written ":1.2" number, None for a bare group


@dataclass(frozen=True)
class _Edit:
    before: tuple
    after: tuple
    when: float


class _Parser:
    def __init__(self, prompt: str, field: str):
        self.src, self.i, self.field = prompt, 0, field

    def fail(self, what: str) -> PromptSyntaxError:
        return PromptSyntaxError(f"{self.field} {self.src!r}: {what}.")

    def parse(self) -> tuple:
        parts = self._sequence(closer=None)
        return _join_colons(parts)

    def _sequence(self, closer: str | None) -> list[list]:
        """Nodes up to ``closer`` (consumed), split at top-level colons into parts."""
        parts: list[list] = [[]]
        raw, text = [], []

        def flush():
            if raw:
                parts[-1].append(_Text("".join(raw), "".join(text)))
                raw.clear()
                text.clear()

        while self.i < len(self.src):
            c = self.src[self.i]
            if c == "\\" and self.i + 1 < len(self.src) and self.src[self.i + 1] in _SPECIAL:
                raw.append(self.src[self.i:self.i + 2])
                text.append(self.src[self.i + 1])
                self.i += 2
            elif c in "([":
                flush()
                start = self.i
                self.i += 1
                parts[-1].append(self._group(c, start))
            elif c in ")]":
                if c != closer:
                    if closer is None:
                        raise self.fail(f"'{c}' at character {self.i + 1} closes nothing (write \\{c} for a literal one)")
                    raise self.fail(f"'{c}' at character {self.i + 1} does not match the '{_OPEN[closer]}' before it")
                flush()
                self.i += 1
                return parts
            elif c == ":" and closer is not None:
                flush()
                parts.append([])
                self.i += 1
            else:
                raw.append(c)
                text.append(c)
                self.i += 1
        flush()
        if closer is not None:
            raise self.fail(f"'{_OPEN[closer]}' is never closed (add '{closer}', or write \\{_OPEN[closer]} for a literal one)")
        return parts

    def _group(self, opener: str, start: int):
        closer = ")" if opener == "(" else "]"
        parts = self._sequence(closer)
        if opener == "(":
            if len(parts) == 1:
                return _Group("(", tuple(parts[0]), EMPHASIS, None)
            raw_weight = _plain_text(parts[-1], self, start)
            weight = _number(raw_weight, self, f"the weight in '{self.src[start:self.i]}'")
            return _Group("(", tuple(_join_colons(parts[:-1])), weight, raw_weight.strip())
        if len(parts) == 1:
            return _Group("[", tuple(parts[0]), 1 / EMPHASIS, None)
        if len(parts) > 3:
            raise self.fail(f"'{self.src[start:self.i]}' has {len(parts) - 1} colons; prompt editing is [from:to:when] or [to:when]")
        when = _number(_plain_text(parts[-1], self, start), self, f"the step in '{self.src[start:self.i]}'")
        if when < 0 or (when >= 1 and when != int(when)):
            raise self.fail(f"the step in '{self.src[start:self.i]}' is {when:g}; accepted: a whole step number >= 1 or a fraction of the steps below 1")
        before, after = (parts[0], parts[1]) if len(parts) == 3 else ([], parts[0])
        return _Edit(tuple(before), tuple(after), when)


_OPEN = {")": "(", "]": "["}


def _join_colons(parts: list[list]) -> tuple:
    """Parts split at colons back into one node list with the colons as literal text."""
    out: list = []
    for k, part in enumerate(parts):
        if k:
            out.append(_Text(":", ":"))
        out.extend(part)
    return tuple(out)


def _plain_text(nodes: list, parser: _Parser, start: int) -> str:
    if not all(isinstance(n, _Text) for n in nodes):
        raise parser.fail(f"'{parser.src[start:parser.i]}' ends in ':' followed by more than a number")
    return "".join(n.text for n in nodes)


def _number(text: str, parser: _Parser, what: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*", text) or not math.isfinite(value):
        raise parser.fail(f"{what} is '{text.strip()}', not a finite number")
    return value


def _parse(prompt: str, field: str) -> tuple:
    if not isinstance(prompt, str):
        raise PromptSyntaxError(f"{field} got {type(prompt).__name__}; expected text.")
    return _Parser(prompt, field).parse()


# ------------------------------------------------------------------------------------- public functions
def is_plain(prompt: str) -> bool:
    """True when ``prompt`` uses no syntax at all (no brackets, escapes or BREAK): it means its own text."""
    return not any(c in prompt for c in _SPECIAL) and not _BREAK.search(prompt)


def check_prompt(prompt: str, *, steps: int | None = None, field: str = "prompt") -> None:
    """Raise :class:`PromptSyntaxError` if ``prompt`` cannot be read (or edits after step ``steps``)."""
    tree = _parse(prompt, field)
    if steps is not None:
        for when in _edit_steps(tree):
            if when >= 1 and when > steps:
                raise PromptSyntaxError(
                    f"{field} {prompt!r}: prompt editing switches after step {when:g}, but steps is {steps}; "
                    f"accepted: a step from 1 to {steps} or a fraction below 1.")


def has_editing(prompt: str) -> bool:
    """True when ``prompt`` contains prompt editing (``[a:b:N]`` and its short forms)."""
    return bool(_edit_steps(_parse(prompt, "prompt")))


def parse_weights(prompt: str, field: str = "prompt") -> list[list[Segment]]:
    """``prompt`` -> its BREAK-separated parts, each a list of weighted segments (adjacent equal weights
    merged, empty text dropped). Prompt editing is not allowed here: resolve it with :func:`prompt_schedule`."""
    tree = _parse(prompt, field)
    if _edit_steps(tree):
        raise PromptSyntaxError(f"{field} {prompt!r}: prompt editing [from:to:when] needs the step it is sampled at.")
    parts: list[list[Segment]] = [[]]
    for segment in _flatten(tree, 1.0):
        if segment is None:
            parts.append([])
            continue
        part = parts[-1]
        if part and part[-1].weight == segment.weight:
            part[-1] = Segment(part[-1].text + segment.text, segment.weight)
        else:
            part.append(segment)
    return [[s for s in part if s.text] for part in parts]


def plain_text(prompt: str, field: str = "prompt") -> str:
    """The words of ``prompt`` without weights or BREAKs (for encoders that cannot weight tokens)."""
    parts = parse_weights(prompt, field)
    return re.sub(r"\s+", " ", " ".join("".join(s.text for s in part) for part in parts)).strip()


def _flatten(nodes: tuple, weight: float):
    """Segments in order (None marks a BREAK), unmerged."""
    for node in nodes:
        if isinstance(node, _Text):
            pieces = _BREAK.split(node.text)
            for k, piece in enumerate(pieces):
                if k:
                    yield None
                yield Segment(piece.strip(" ") if len(pieces) > 1 else piece, weight)
        elif isinstance(node, _Group):
            yield from _flatten(node.children, weight * node.weight)
        else:
            raise AssertionError("prompt editing must be resolved before flattening")


def _edit_steps(nodes: tuple) -> list[float]:
    out = []
    for node in nodes:
        if isinstance(node, _Group):
            out += _edit_steps(node.children)
        elif isinstance(node, _Edit):
            out += [node.when, *_edit_steps(node.before), *_edit_steps(node.after)]
    return out


def _step_of(when: float, steps: int) -> int:
    return int(when * steps) if when < 1 else int(when)


def _render(nodes: tuple, step: int, steps: int) -> str:
    """The prompt text at sampling step ``step`` (0-based): edits resolved, everything else as written."""
    out = []
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.raw)
        elif isinstance(node, _Group):
            close = ")" if node.opener == "(" else "]"
            weight = f":{node.raw_weight}" if node.raw_weight is not None else ""
            out.append(f"{node.opener}{_render(node.children, step, steps)}{weight}{close}")
        else:
            when = _step_of(node.when, steps)  # below step 1 (e.g. 0, or 0.01 of 20 steps): "to" from the start
            out.append(_render(node.before if 1 <= when and step <= when else node.after, step, steps))
    return "".join(out)


def prompt_schedule(prompt: str, steps: int, field: str = "prompt") -> list[tuple[int, str]]:
    """A1111 prompt editing: ``[(last_step, text), ...]`` in step order; step index i (0-based) uses the text
    of the first entry whose ``last_step`` >= i. A prompt without editing gives ``[(steps - 1, prompt)]``.
    Consecutive steps with the same text are one entry."""
    check_prompt(prompt, steps=steps, field=field)
    tree = _parse(prompt, field)
    if not _edit_steps(tree):
        return [(steps - 1, prompt)]
    schedule: list[tuple[int, str]] = []
    for i in range(steps):
        text = _render(tree, i, steps)
        if schedule and schedule[-1][1] == text:
            schedule[-1] = (i, text)
        else:
            schedule.append((i, text))
    return schedule


def text_at(schedule: Sequence[tuple[int, str]], step: int) -> str:
    """The text of ``schedule`` (from :func:`prompt_schedule`) at step index ``step``."""
    for last, text in schedule:
        if step <= last:
            return text
    return schedule[-1][1]


# --------------------------------------------------------------------------------------------- chunks
@dataclass(frozen=True)
class Chunk:
    """Up to ``CHUNK_TOKENS`` token ids with one multiplier each (no start/end/padding tokens yet)."""

    tokens: tuple[int, ...]
    weights: tuple[float, ...]


def chunk_tokens(
    parts: Sequence[Sequence[Segment]],
    tokenize: Callable[[str], list[int]],
    *,
    size: int = CHUNK_TOKENS,
    comma: int | None = None,
    backtrack: int = COMMA_BACKTRACK,
) -> list[Chunk]:
    """Split weighted ``parts`` (from :func:`parse_weights`) into chunks of at most ``size`` tokens, as A1111
    does: every BREAK starts a new chunk; a chunk that fills up is cut after its last ``comma`` token when that
    comma is at most ``backtrack`` tokens from the end (the words after it move to the next chunk). Always at
    least one chunk (an empty prompt is one empty chunk)."""
    chunks: list[Chunk] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close():
        nonlocal tokens, weights, last_comma
        chunks.append(Chunk(tuple(tokens), tuple(weights)))
        tokens, weights, last_comma = [], [], -1

    for k, part in enumerate(parts):
        if k:
            close()
        for segment in part:
            for token in tokenize(segment.text):
                if len(tokens) == size:
                    if comma is not None and last_comma >= 0 and size - last_comma <= backtrack:
                        cut = last_comma + 1
                        rest, rest_w = tokens[cut:], weights[cut:]
                        tokens, weights = tokens[:cut], weights[:cut]
                        close()
                        tokens, weights = rest, rest_w
                    else:
                        close()
                if token == comma:
                    last_comma = len(tokens)
                tokens.append(token)
                weights.append(segment.weight)
    if tokens or not chunks:
        close()
    return chunks


# ------------------------------------------------------------------------------------ weights on paths
def _escape(text: str) -> str:
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


def interpolate_weighted(a: str, b: str, t: float) -> str | None:
    """The prompt between ``a`` and ``b`` at ``t`` in [0, 1] when both are the same text with different
    weights (``(cat:1.0)`` -> ``(cat:0.0)`` at 0.5 gives ``(cat:0.5)``); None when their texts differ, either
    uses prompt editing, or it cannot be parsed. ``t`` 0 and 1 return ``a`` and ``b`` unchanged (exact
    endpoints)."""
    try:
        ta, tb = _parse(a, "prompt"), _parse(b, "prompt")
    except PromptSyntaxError:
        return None
    if _edit_steps(ta) or _edit_steps(tb):
        return None
    pa, pb = _char_weights(ta), _char_weights(tb)
    if [[c for c, _ in part] for part in pa] != [[c for c, _ in part] for part in pb]:
        return None
    if t <= 0:
        return a
    if t >= 1:
        return b
    rendered = []
    for xa, xb in zip(pa, pb):
        runs: list[list] = []  # [text, weight] runs of equal interpolated weight
        for (c, wa), (_, wb) in zip(xa, xb):
            w = (1 - t) * wa + t * wb
            if runs and runs[-1][1] == w:
                runs[-1][0] += c
            else:
                runs.append([c, w])
        rendered.append("".join(_escape(x) if w == 1 else f"({_escape(x)}:{w:.6g})" for x, w in runs))
    return " BREAK ".join(rendered)


def _char_weights(tree: tuple) -> list[list[tuple[str, float]]]:
    """Each BREAK part as (character, weight) pairs: two prompts share a weight path when the characters agree."""
    parts: list[list[tuple[str, float]]] = [[]]
    for segment in _flatten(tree, 1.0):
        if segment is None:
            parts.append([])
        else:
            parts[-1] += [(c, segment.weight) for c in segment.text]
    return parts
