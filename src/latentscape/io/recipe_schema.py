"""The one schema for recipes read back from files: every field typed and bounded before anything runs.

A recipe in a PNG (or a manifest) is untrusted input. :func:`parse_recipe_json` checks its JSON as a whole
(nesting depth, number of values, string lengths, finite numbers), then the :class:`Recipe` fields with a
pydantic model; :func:`validate_params` checks a workflow's ``params`` against that workflow's own config
dataclass (a pydantic ``TypeAdapter`` over it, in strict JSON mode: ``cfg`` must be a number, ``seed`` a
whole number, ``prompt`` a string). Errors are one sentence naming the field and what it accepts, e.g.
``the recipe's params.cfg is 'abc'; accepted: a finite number.``
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from latentscape.core.seeds import SEED_LIMIT
from latentscape.errors import LatentscapeError

MAX_DEPTH = 12  # nesting of lists/objects anywhere in a recipe (make_recipe writes at most 5)
MAX_VALUES = 50_000  # numbers, strings, lists and objects in one recipe
MAX_STRING = 100_000  # characters in one string (prompts, paths)
MAX_BATCH_INDEX = 10_000  # no workflow makes more outputs in one job
FAMILIES = ("sd", "sdxl", "sd3", "flux")

Text = Annotated[str, StringConstraints(max_length=MAX_STRING)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid", frozen=True)


Path_ = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class InputFile(_Strict):
    """An input file as ``make_recipe`` records it: its path and SHA-256, and where replays look for it
    (``relative`` to the output's folder, ``absolute``, its ``size``); fields of newer versions are allowed."""

    model_config = ConfigDict(extra="allow")
    path: Path_
    sha256: Sha256
    relative: Path_ | None = None
    absolute: Path_ | None = None
    size: Annotated[int, Field(ge=0)] | None = None


class LoadOptions(_Strict):
    model_config = ConfigDict(extra="allow")  # options of newer versions pass through
    config: Annotated[str, StringConstraints(max_length=4096)] | None = None
    dtype: Literal["fp32", "fp16", "bf16"] | None = None


Scalar = Union[Text, int, float, bool, None]


class RecipeSchema(_Strict):
    """The fields of :class:`latentscape.io.recipe.Recipe`, typed as ``to_json`` writes them."""

    model_config = ConfigDict(extra="ignore")  # fields of newer versions are ignored, as Recipe.from_json does
    workflow: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    model: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    family: Literal[FAMILIES]  # type: ignore[valid-type]
    params: dict[str, Any]
    seed: Annotated[int, Field(ge=0, le=SEED_LIMIT)]
    batch_index: Annotated[int, Field(ge=0, le=MAX_BATCH_INDEX)] = 0
    inputs: dict[str, InputFile | list[InputFile]] = {}
    infotext_extra: dict[str, Scalar] = {}
    sampler_label: Annotated[str, StringConstraints(max_length=200)] = ""
    versions: dict[str, Annotated[str, StringConstraints(max_length=200)]] = {}
    load: LoadOptions = LoadOptions()
    format: Annotated[int, Field(ge=1)] = 1


def parse_recipe_json(text: str, *, source: str = "the recipe") -> dict[str, Any]:
    """``text`` -> the recipe's fields as plain JSON values, checked; one sentence on any problem."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise LatentscapeError(f"{source} nests deeper than {MAX_DEPTH} levels; accepted: a recipe written by latentscape.") from None
    except ValueError as exc:
        raise LatentscapeError(f"{source} is not valid JSON ({str(exc)[:80]}).") from None
    if not isinstance(data, dict):
        raise LatentscapeError(f"{source} is a JSON {type(data).__name__}; accepted: a JSON object of recipe fields.")
    check_json_value(data, source=source)
    try:
        RecipeSchema.model_validate(data)
    except ValidationError as exc:
        raise schema_error(exc, source=source, prefix="") from None
    return data


def check_json_value(value: Any, *, source: str, path: str = "") -> None:
    """Refuse JSON that nests deeper than :data:`MAX_DEPTH`, holds more than :data:`MAX_VALUES` values or a
    string over :data:`MAX_STRING` characters, or a number that is not finite (``Infinity``, ``NaN``)."""
    count = 0
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise LatentscapeError(f"{source} holds more than {MAX_VALUES:,} values; accepted: a recipe written by latentscape.")
        if depth > MAX_DEPTH:
            raise LatentscapeError(f"{source}'s {where or 'top level'} nests deeper than {MAX_DEPTH} levels; accepted: a recipe written by latentscape.")
        if isinstance(item, float) and not math.isfinite(item):
            raise LatentscapeError(f"{source}'s {where} is {item}; accepted: a finite number (JSON has no Infinity or NaN).")
        if isinstance(item, str) and len(item) > MAX_STRING:
            raise LatentscapeError(f"{source}'s {where} is a string of {len(item):,} characters; accepted: at most {MAX_STRING:,}.")
        if isinstance(item, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))


@functools.lru_cache(maxsize=None)
def _adapter(config_class: type) -> TypeAdapter:
    return TypeAdapter(config_class)


def validate_params(config_class: type, params: Mapping[str, Any], *, source: str = "the recipe",
                    batch_index: int | None = None) -> None:
    """Check a recipe's ``params`` against the workflow's config dataclass: each known field must have its
    declared type (strict JSON: no "7" for a number); unknown fields are left to the config's own check.

    ``batch_index`` (when given) must name an item of the batch the params describe (``batch``).
    """
    check_json_value(dict(params), source=source, path="params")
    known = getattr(config_class, "__dataclass_fields__", {})
    data = {k: v for k, v in params.items() if k in known}
    try:
        _adapter(config_class).validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise schema_error(exc, source=source, prefix="params.") from None
    except (TypeError, ValueError) as exc:  # a config's __post_init__ refusing a value (a LatentscapeError)
        raise LatentscapeError(f"{source}'s params are refused: {exc}") from None
    for name in getattr(config_class, "RECIPE_TEXT_FIELDS", ()):  # None in a config, but a recipe records the text used
        if name in data and not isinstance(data[name], str):
            raise LatentscapeError(f"{source}'s params.{name} is {json.dumps(data[name])}; accepted: a string.")
    batch = data.get("batch")
    if batch_index is not None and isinstance(batch, int) and batch_index >= batch:
        raise LatentscapeError(f"{source}'s batch_index is {batch_index}; accepted: 0 to {batch - 1} (params.batch is {batch}).")


# pydantic error type -> what the field accepts, in words
_ACCEPTED = {
    "float_type": "a finite number", "float_parsing": "a finite number", "finite_number": "a finite number",
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "tuple_type": "a list", "dict_type": "an object", "model_type": "an object",
    "dataclass_type": "an object", "model_attributes_type": "an object", "none_required": "null",
    "missing": "a value (the field is required)", "extra_forbidden": "no such field",
}


def schema_error(exc: ValidationError, *, source: str, prefix: str, joiner: str = "'s ") -> LatentscapeError:
    """The most specific problem in ``exc`` as one sentence: the field, the value found, what is accepted
    (``{source}{joiner}{field} is ...``)."""
    errors = exc.errors(include_url=False)
    first = max(errors, key=lambda e: len(e["loc"]))  # the most specific (a union's members each report one)
    field = prefix + _location(first["loc"])
    accepted = _accepted(first)
    if first["type"] == "missing":
        text = f"{source} has no {field.rstrip('.')}; accepted: {accepted}"
    else:
        text = f"{source}{joiner}{field.rstrip('.') or 'content'} is {_show(first.get('input'))}; accepted: {accepted}"
    # a union (a keyframe object or its string) reports one error per member at the same field: count fields
    fields = {prefix + _location(e["loc"]) for e in errors}
    more = len([f for f in fields if not (field.startswith(f) or f.startswith(field))])
    return LatentscapeError(text + (f" (and {more} more problem{'s' if more > 1 else ''})." if more else "."))


_MEMBER = re.compile(r"^([A-Z][A-Za-z0-9]*|str|int|float|bool|none|(list|tuple|dict)\[.*\]|function-\w+|json-or-python|lax-or-strict)$")


def _location(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _MEMBER.match(str(part)):
            continue  # pydantic's names for union members and validators, not fields
        else:
            out += f".{part}" if out else str(part)
    return out


def _accepted(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "literal_error":
        return f"one of {ctx.get('expected', '')}".replace("'", "")
    if kind in ("greater_than_equal", "greater_than"):
        return f"a number {'>=' if kind.endswith('equal') else '>'} {_number(ctx.get('ge', ctx.get('gt')))}"
    if kind in ("less_than_equal", "less_than"):
        return f"a number {'<=' if kind.endswith('equal') else '<'} {_number(ctx.get('le', ctx.get('lt')))}"
    if kind == "string_too_long":
        return f"a string of at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "a non-empty string"
    if kind == "string_pattern_mismatch":
        return "64 lowercase hex digits" if "0-9a-f" in str(ctx.get("pattern", "")) else f"a string matching {ctx.get('pattern')}"
    if kind == "value_error":
        return str(ctx.get("error", error.get("msg", ""))).rstrip(".")
    return _ACCEPTED.get(kind, error.get("msg", "").lower().removeprefix("input should be "))


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
