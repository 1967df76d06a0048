"""The ``--json`` result every verb prints (``latentscape.result/1``), as a pydantic model.

The CLI builds the document with :func:`latentscape.interfaces.common.json_result` (no pydantic at run
time); this model is its specification: the tests validate every verb's output against it, and
``docs/result.schema.json`` is :func:`json_schema` written out (a test keeps the two equal). Prose:
``docs/json-schema.md``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "latentscape.result/1"
KINDS = ("image", "sheet", "cell", "chart", "html", "video", "manifest", "latent", "inversion", "preview")


class OutputEntry(BaseModel):
    """One file the verb wrote. ``recipe`` is the JSON recipe the file carries (the PNG's ``latentscape``
    chunk; a video's manifest), ``infotext`` its A1111 ``parameters`` text; both null for files that carry
    none (latents, HTML, a VAE preview). Verbs may add fields (e.g. mix's ``ratio``)."""

    model_config = ConfigDict(extra="allow")

    path: str = Field(min_length=1)
    kind: Literal[KINDS]  # type: ignore[valid-type]
    seed: int | None
    infotext: str | None
    recipe: dict[str, Any] | None


class Timings(BaseModel):
    """Seconds: ``load_s`` the model load (0 when the verb loads none), ``render_s`` from the loaded model
    to the written outputs, ``total_s`` the whole command from its parsed arguments (imports included)."""

    model_config = ConfigDict(extra="forbid")

    load_s: float = Field(ge=0)
    render_s: float = Field(ge=0)
    total_s: float = Field(ge=0)


class Result(BaseModel):
    """What ``latentscape VERB ... --json`` prints on stdout. Verb-specific fields follow the common ones
    (``table`` for sweep, ``axes`` for plot, ``smoothness`` for morph, ...) and never replace them."""

    model_config = ConfigDict(extra="allow", title="latentscape.result/1")

    schema_: Literal["latentscape.result/1"] = Field(alias="schema")
    verb: str = Field(min_length=1)
    model: str | None
    family: str | None
    outputs: list[OutputEntry]
    seeds: list[int]
    timings: Timings


def validate(document: dict[str, Any] | str) -> Result:
    """Parse and check a ``--json`` document (a pydantic ``ValidationError`` says what is wrong)."""
    data = json.loads(document) if isinstance(document, str) else document
    result = Result.model_validate(data, strict=True)
    for entry in result.outputs:
        if (entry.recipe is None) != (entry.infotext is None):
            raise ValueError(f"output '{entry.path}' has {'a recipe but no infotext' if entry.infotext is None else 'an infotext but no recipe'}")
    seeds = list(dict.fromkeys(e.seed for e in result.outputs if e.seed is not None))
    if result.seeds != seeds:
        raise ValueError(f"seeds {result.seeds} are not the outputs' seeds {seeds}")
    return result


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :class:`Result`, as written to ``docs/result.schema.json``."""
    schema = Result.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA, **schema}
