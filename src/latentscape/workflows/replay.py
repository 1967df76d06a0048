"""Replay a recipe: rebuild the workflow's config from it and run it again (bit for bit on the same machine)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Sequence

from latentscape.errors import LatentscapeError
from latentscape.io.recipe import Recipe, read_recipe
from latentscape.io.recipe_schema import validate_params
from latentscape.models.family import Family
from latentscape.workflows.common import Output
from latentscape.workflows.inputs import resolve_inputs

# recipe.workflow -> (module, config class, function); imported lazily.
WORKFLOWS: dict[str, tuple[str, str, str]] = {
    "generate": ("latentscape.workflows.generate", "GenerateConfig", "generate"),
    "img2img": ("latentscape.workflows.generate", "GenerateConfig", "generate"),
    # navigation and exploration workflows (each module defines its config dataclass and function)
    "morph": ("latentscape.workflows.morph", "MorphConfig", "morph"),
    "vary": ("latentscape.workflows.vary", "VaryConfig", "vary"),
    "blend": ("latentscape.workflows.blend", "BlendConfig", "blend"),
    "mix": ("latentscape.workflows.mix", "MixConfig", "mix"),
    "explore": ("latentscape.workflows.explore", "ExploreConfig", "explore"),
    "map": ("latentscape.workflows.latent_map", "MapConfig", "latent_map"),
    "sweep": ("latentscape.workflows.sweep", "SweepConfig", "sweep"),
    "plot": ("latentscape.workflows.plot", "PlotConfig", "plot"),
    "math": ("latentscape.workflows.latent_math", "MathConfig", "latent_math"),
}


def register(name: str, module: str, config_class: str, function: str) -> None:
    """Make recipes of workflow ``name`` replayable."""
    WORKFLOWS[name] = (module, config_class, function)


def resolve(name: str) -> tuple[type, Any]:
    if name not in WORKFLOWS:
        raise LatentscapeError(f"recipe workflow '{name}' is unknown to this latentscape; known: {', '.join(sorted(WORKFLOWS))}.")
    module, cls, fn = WORKFLOWS[name]
    mod = importlib.import_module(module)
    return getattr(mod, cls), getattr(mod, fn)


def load_recipe(path: str | Path) -> Recipe:
    """The recipe of an output: a PNG's recipe chunk, or a morph's manifest ``.json`` (videos carry none)."""
    if Path(path).suffix.lower() == ".json":
        from latentscape.workflows.morph_manifest import read_manifest_recipe

        return read_manifest_recipe(path)
    return read_recipe(path)


def check_inputs(recipe: Recipe, *, recipe_file: str | Path | None = None, search: Sequence[str | Path] = ()):
    """The recipe's workflow config, with every file it names checked against the recipe's recorded inputs
    (exists, same SHA-256, found by hash when moved: see :mod:`latentscape.workflows.inputs`); call it
    before loading a model."""
    return resolve_inputs(recipe, config_from_recipe(recipe), recipe_file=recipe_file, search=search)


def config_from_recipe(recipe: Recipe):
    """The workflow config a recipe describes (``cls.from_params`` when the config class defines one)."""
    cls, _ = resolve(recipe.workflow)
    validate_params(cls, recipe.params, batch_index=recipe.batch_index)
    if hasattr(cls, "from_params"):
        return cls.from_params(dict(recipe.params))
    known = cls.__dataclass_fields__
    unknown = sorted(set(recipe.params) - set(known))
    if unknown:
        raise LatentscapeError(f"the recipe has parameters this latentscape does not know ({', '.join(unknown)}); it was made by a newer version.")
    return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in recipe.params.items()})


def replay(model: Family, recipe: Recipe, config: Any = None, **kwargs) -> Output:
    """Run the recipe's workflow again on ``model``; returns the whole batch (``recipe.batch_index`` is this one).

    ``config``: the one :func:`check_inputs` returned (else it is checked here, inputs at their recorded paths).
    """
    config = check_inputs(recipe) if config is None else config
    _, fn = resolve(recipe.workflow)
    return fn(model, config, **kwargs)
