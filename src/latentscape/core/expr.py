"""The ``math`` expression language: linear combinations of prompts, seeds and images, parsed safely.

Grammar (whitespace between tokens is ignored; no ``eval`` anywhere)::

    expr    := term (("+" | "-") term)*
    term    := factor (("*" | "/") factor)*
    factor  := ("+" | "-") factor | NUMBER | operand | "(" expr ")"
    operand := STRING                  a prompt: "king face" or 'king face' (\\" and \\\\ escape)
             | "seed:" DIGITS          the initial noise of a seed
             | "image:" (STRING | PATH) an image (PATH: the characters up to the next space or ")")

Everything is linear: a product needs a number on one side, a divisor must be a number, and numbers
cannot be added to operands. The result is a list of :class:`Term` (coefficient, operand), equal operands
merged, in order of first appearance. Every number and coefficient stays finite (``1e308*1e308*"x"`` is
refused where it overflows) and a result coefficient is at most ``MAX_COEFFICIENT`` in size. Errors are one sentence naming the 1-based character position;
parentheses and unary signs nest at most ``MAX_DEPTH`` deep.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from latentscape.core.noise import SEED_LIMIT
from latentscape.errors import LatentscapeError

Kind = Literal["prompt", "seed", "image"]
MAX_LENGTH = 4000
MAX_DEPTH = 64  # nested parentheses and signs (the parser recurses once per level)
# |coefficient| of a result term: beyond it a conditioning or latent overflows half precision (fp16 max
# 65504) and the image is NaN; no arithmetic in latent space means anything there.
MAX_COEFFICIENT = 1000.0
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][\w.-]*")
_OPERATORS = "+-*/()"
SYNTAX = 'a prompt in quotes ("..."), seed:N, image:PATH, a number, "+", "-", "*", "/" or parentheses'


@dataclass(frozen=True)
class Operand:
    kind: Kind
    value: str | int

    def __str__(self) -> str:
        if self.kind == "prompt":
            return '"' + str(self.value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        if self.kind == "image":
            return f'image:"{self.value}"' if re.search(r'[\s()"]', str(self.value)) else f"image:{self.value}"
        return f"seed:{self.value}"


@dataclass(frozen=True)
class Term:
    coefficient: float
    operand: Operand


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "op", "operand", "end"
    value: object
    pos: int  # 0-based


def _error(expr: str, pos: int, what: str) -> LatentscapeError:
    found = expr[pos:pos + 12]
    where = f"at position {pos + 1} (found '{found}')" if found else "at the end"
    return LatentscapeError(f"math expression '{expr}': {what} {where}; accepted: {SYNTAX}.")


def _quoted(expr: str, i: int) -> tuple[str, int]:
    """The string starting with the quote at ``expr[i]``; returns (text, index after the closing quote)."""
    quote, out, j = expr[i], [], i + 1
    while j < len(expr):
        c = expr[j]
        if c == "\\" and j + 1 < len(expr):
            out.append(expr[j + 1])
            j += 2
            continue
        if c == quote:
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise LatentscapeError(f"math expression '{expr}': the string opened at position {i + 1} is never closed; close it with {quote}.")


def tokenize(expr: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c.isspace():
            i += 1
        elif c in "\"'":
            text, j = _quoted(expr, i)
            if not text.strip():
                raise _error(expr, i, "a prompt is empty")
            tokens.append(_Token("operand", Operand("prompt", text), i))
            i = j
        elif c in _OPERATORS:
            tokens.append(_Token("op", c, i))
            i += 1
        elif m := _NUMBER.match(expr, i):
            number = float(m.group(0))
            if not math.isfinite(number):
                raise _error(expr, i, f"the number {m.group(0)[:24]} is too large to be finite (at most about 1.8e308)")
            tokens.append(_Token("num", number, i))
            i = m.end()
        elif expr.startswith("seed:", i) or expr[i:i + 5].lower() == "seed:":
            m = re.compile(r"\d+").match(expr, i + 5)
            if not m:
                raise _error(expr, i, "seed: needs a whole number >= 0 (seed:42)")
            digits = m.group(0)
            if len(digits.lstrip("0")) > len(str(SEED_LIMIT)) or int(digits) > SEED_LIMIT:  # int() caps digits
                shown = digits if len(digits) <= 40 else f"{digits[:12]}...{digits[-4:]} ({len(digits)} digits)"
                raise LatentscapeError(f"math expression: seed {shown} at position {i + 1} is out of range; expected 0 to {SEED_LIMIT}.")
            tokens.append(_Token("operand", Operand("seed", int(digits)), i))
            i = m.end()
        elif expr[i:i + 6].lower() == "image:":
            j = i + 6
            if j < len(expr) and expr[j] in "\"'":
                path, j = _quoted(expr, j)
            else:
                m = re.compile(r"[^\s()]+").match(expr, j)
                path, j = (m.group(0), m.end()) if m else ("", j)
            if not path:
                raise _error(expr, i, "image: needs a path (image:photo.png)")
            tokens.append(_Token("operand", Operand("image", path), i))
            i = j
        elif m := _WORD.match(expr, i):
            word = m.group(0)
            raise LatentscapeError(
                f"math expression '{expr}': '{word}' at position {i + 1} is not quoted; prompts go in quotes "
                f"(\"{word}\"), seeds as seed:N and images as image:PATH."
            )
        else:
            raise _error(expr, i, f"unexpected character '{c}'")
    tokens.append(_Token("end", None, len(expr)))
    return tokens


# A value is a number (float) or a linear combination {operand: coefficient} (dicts keep insertion order).
_Value = float | dict


class _Parser:
    def __init__(self, expr: str):
        self.expr = expr
        self.tokens = tokenize(expr)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok: _Token, what: str) -> LatentscapeError:
        return _error(self.expr, tok.pos, what)

    def expr_(self) -> _Value:
        value = self.term()
        while (tok := self.peek()).kind == "op" and tok.value in "+-":
            self.take()
            right = self.term()
            if isinstance(value, float) != isinstance(right, float):
                raise self.fail(tok, "a number cannot be added to or subtracted from a prompt, seed or image")
            sign = 1.0 if tok.value == "+" else -1.0
            value = self.finite(tok, value + sign * right if isinstance(value, float) else _add(value, right, sign))
        return value

    def term(self) -> _Value:
        value = self.factor()
        while (tok := self.peek()).kind == "op" and tok.value in "*/":
            self.take()
            right = self.factor()
            if tok.value == "/":
                if not isinstance(right, float):
                    raise self.fail(tok, "the divisor must be a number")
                if right == 0:
                    raise self.fail(tok, "division by zero")
                value = _scale(value, 1.0 / right)
            elif isinstance(value, float):
                value = _scale(right, value)
            elif isinstance(right, float):
                value = _scale(value, right)
            else:
                raise self.fail(tok, "two prompts, seeds or images cannot be multiplied (scale one by a number)")
            value = self.finite(tok, value)
        return value

    def finite(self, tok: _Token, value: _Value) -> _Value:
        """``value``, unless the operation at ``tok`` made a number or coefficient overflow to inf/NaN."""
        numbers = [value] if isinstance(value, float) else list(value.values())
        if not all(math.isfinite(n) for n in numbers):
            raise self.fail(tok, "this operation overflows (the result is not a finite number)")
        return value

    def nested(self, tok: _Token, parse):
        """``parse()`` one level deeper (for a sign or a parenthesis at ``tok``), refusing past MAX_DEPTH."""
        if self.depth >= MAX_DEPTH:
            raise LatentscapeError(
                f"math expression: parentheses and signs nest more than {MAX_DEPTH} deep at position {tok.pos + 1}; simplify the expression.")
        self.depth += 1
        try:
            return parse()
        finally:
            self.depth -= 1

    def factor(self) -> _Value:
        tok = self.take()
        if tok.kind == "op" and tok.value in "+-":
            inner = self.nested(tok, self.factor)
            return inner if tok.value == "+" else _scale(inner, -1.0)
        if tok.kind == "num":
            return float(tok.value)
        if tok.kind == "operand":
            return {tok.value: 1.0}
        if tok.kind == "op" and tok.value == "(":
            inner = self.nested(tok, self.expr_)
            close = self.take()
            if not (close.kind == "op" and close.value == ")"):
                raise self.fail(close, f"expected ')' to close the '(' at position {tok.pos + 1}")
            return inner
        if tok.kind == "end":
            raise self.fail(tok, "the expression ends where a term was expected")
        raise self.fail(tok, "expected a term")


def _scale(value: _Value, k: float) -> _Value:
    return value * k if isinstance(value, float) else {op: c * k for op, c in value.items()}


def _add(a: dict, b: dict, sign: float) -> dict:
    out = dict(a)
    for op, c in b.items():
        out[op] = out.get(op, 0.0) + sign * c
    return out


def parse(expr: str) -> list[Term]:
    """``expr`` -> its terms (coefficient, operand), equal operands merged; a one-sentence error otherwise."""
    if not isinstance(expr, str) or not expr.strip():
        raise LatentscapeError(f"math expression is empty; accepted: {SYNTAX}, e.g. '\"king face\" - \"man\" + \"woman\"'.")
    if len(expr) > MAX_LENGTH:
        raise LatentscapeError(f"math expression has {len(expr)} characters; accepted: at most {MAX_LENGTH}.")
    parser = _Parser(expr)
    value = parser.expr_()
    end = parser.peek()
    if end.kind != "end":
        raise parser.fail(end, "expected '+', '-', '*', '/' or the end")
    if isinstance(value, float):
        raise LatentscapeError(f"math expression '{expr}' is only a number; it needs at least one prompt, seed:N or image:PATH.")
    for op, c in value.items():
        if abs(c) > MAX_COEFFICIENT:
            raise LatentscapeError(
                f"math expression '{expr}': {op} gets the coefficient {c:g}; accepted: coefficients from "
                f"-{MAX_COEFFICIENT:g} to {MAX_COEFFICIENT:g} (larger ones overflow the model's numbers).")
    return [Term(c, op) for op, c in value.items()]


def format_terms(terms: list[Term]) -> str:
    """The canonical text of a parsed expression (parses back to the same terms)."""
    parts = []
    for i, t in enumerate(terms):
        c = t.coefficient
        sign = "-" if c < 0 else ("+" if i else "")
        mag = abs(c)
        body = str(t.operand) if mag == 1 else f"{mag:g}*{t.operand}"
        parts.append(f"{sign} {body}".strip() if i else f"{sign}{body}")
    return " ".join(parts)
