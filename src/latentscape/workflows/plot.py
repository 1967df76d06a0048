"""X/Y/Z plot (A1111's script): a base :class:`GenerateConfig`, up to three axes over its fields, one
labelled grid per Z value (columns X, rows Y).

Planning is pure (:func:`plan`, :func:`check_plan`: no model, so a bad axis costs no load). Rendering runs
each cell as a ``generate`` job, so a cell *is* a standalone generate: its PNG carries that job's
infotext and recipe, and ``latentscape replay CELL.png`` makes it again. With ``batch_seeds`` the cells that
share everything but consecutive seeds run as one ``generate`` batch (seeds s, s+1, ...): faster, and
each cell's recipe is that batch's, so its replay is still exact; against a batch-of-one generate it is
within float rounding (1/255 on CPU: batching is not bit-identical there, so it is off by default).

A sheet's recipe is this workflow (``plot``) for its one Z value with ``returns="sheets"``: replaying a
sheet PNG renders that sheet again.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from PIL import Image

from latentscape.core.noise import resolve_seed
from latentscape.errors import LatentscapeError
from latentscape.workflows.common import MAX_BATCH, Output, config_dict, make_recipe
from latentscape.workflows.generate import GenerateConfig
from latentscape.workflows.plot_axes import Axis

MAX_PLOT_CELLS = 256
RETURNS = ("cells", "sheets")
AXES = ("x", "y", "z")


@dataclass(frozen=True, kw_only=True)
class PlotConfig(GenerateConfig):
    """The base job (every :class:`GenerateConfig` field; ``batch`` stays 1) and axes ``x`` (columns), ``y``
    (rows), ``z`` (one sheet per value); ``returns`` "cells" (each cell, the sheets in ``info``) or "sheets";
    ``sheet`` renders only that Z value's sheet (a sheet PNG's recipe)."""

    x: Axis | None = None
    y: Axis | None = None
    z: Axis | None = None
    batch_seeds: bool = False
    returns: str = "cells"
    sheet: int | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "PlotConfig":
        """The config a recipe's ``params`` describe (axes from their JSON objects)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise LatentscapeError(f"the recipe has parameters this latentscape does not know ({', '.join(unknown)}); it was made by a newer version.")
        values = dict(params)
        for name in AXES:
            if isinstance(values.get(name), Mapping):
                axis = values[name]
                items = tuple(tuple(v) if isinstance(v, list) else v for v in axis.get("values", ()))
                values[name] = Axis(str(axis.get("field")), items, bool(axis.get("replace", False)))
        return cls(**values)


@dataclass(frozen=True)
class Cell:
    """One cell: its place (z sheet, y row, x column) and the generate job it is."""

    z: int
    y: int
    x: int
    config: GenerateConfig


def axes_of(config: PlotConfig) -> list[tuple[str, Axis]]:
    return [(name, axis) for name in AXES if (axis := getattr(config, name)) is not None]


def base_config(config: PlotConfig) -> GenerateConfig:
    return GenerateConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(GenerateConfig)})


def _count(axis: Axis | None) -> int:
    return len(axis.values) if axis is not None else 1


def _apply(base: GenerateConfig, settings: Sequence[tuple[Axis, int]]) -> GenerateConfig:
    return dataclasses.replace(base, **_changes(base, settings))


def _changes(base: GenerateConfig, settings: Sequence[tuple[Axis, int]]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for axis, index in settings:
        value = axis.values[index]
        if axis.replace:
            text = changes.get(axis.field, getattr(base, axis.field))
            changes[axis.field] = text.replace(axis.values[0], value)
        elif axis.field == "size":
            changes.update(width=value[0], height=value[1])
        else:
            changes[axis.field] = value
    return changes


def plan(config: PlotConfig) -> list[Cell]:
    """Every cell, sheet by sheet, row-major (z, then y, then x)."""
    base = base_config(config)
    cells = []
    zs = range(_count(config.z)) if config.sheet is None else [config.sheet]
    for z, y, x in itertools.product(zs, range(_count(config.y)), range(_count(config.x))):
        settings = [(axis, i) for axis, i in ((config.x, x), (config.y, y), (config.z, z)) if axis is not None]
        cells.append(Cell(z, y, x, _apply(base, settings)))
    return cells


def check_plan(config: PlotConfig) -> list[Cell]:
    """Refuse, in one sentence naming the field, a plot that cannot run; model-free (before any load)."""
    from latentscape.workflows.fields import check_fields

    if config.returns not in RETURNS:
        raise LatentscapeError(f"returns got '{config.returns}'; accepted: {', '.join(RETURNS)}.")
    if config.batch != 1:
        raise LatentscapeError(f"batch got {config.batch}; a plot renders one image per cell (put seeds on an axis: seed=1..4).")
    named = axes_of(config)
    if not named:
        raise LatentscapeError("x got nothing; a plot needs at least one axis, e.g. x cfg=1,3,7.5.")
    taken: dict[str, str] = {}
    for name, axis in named:
        fields = ("width", "height") if axis.field == "size" else (axis.field,)
        for f in fields:
            if f in taken:
                raise LatentscapeError(f"{name} got the field '{axis.field}', which {taken[f]} already varies; accepted: each field on one axis.")
            taken[f] = name
        if axis.replace and axis.values[0] not in getattr(config, axis.field):
            raise LatentscapeError(f"{name} got '{axis.field}=S/R:{axis.values[0]},...' but the {axis.field} does not contain "
                                   f"'{axis.values[0]}'; accepted: S/R whose first value is text of the {axis.field}.")
        if axis.field == "strength" and config.init_image is None:
            raise LatentscapeError(f"{name} got the field 'strength', which only an img2img plot (one with an input image) has.")
    if config.sheet is not None and not (isinstance(config.sheet, int) and 0 <= config.sheet < _count(config.z)):
        raise LatentscapeError(f"sheet got {config.sheet!r}; accepted: a Z value's index, 0 to {_count(config.z) - 1}.")
    total = _count(config.x) * _count(config.y) * _count(config.z)
    if total > MAX_PLOT_CELLS:
        sizes = " x ".join(f"{_count(a)} {n}" for n, a in named)
        raise LatentscapeError(f"{named[0][0]} got a plot of {sizes} values = {total} cells; accepted: at most {MAX_PLOT_CELLS} cells.")
    cells = plan(config)
    for cell in cells:
        check_fields(cell.config)
    return cells


def resolve_seeds(config: PlotConfig) -> PlotConfig:
    """The config with random seeds (-1) drawn: one base seed shared by every cell (as A1111), and each -1
    on a seed axis its own."""
    changes: dict[str, Any] = {"seed": resolve_seed(config.seed)}
    for name, axis in axes_of(config):
        if axis.field == "seed" and -1 in axis.values:
            changes[name] = dataclasses.replace(axis, values=tuple(resolve_seed(v) for v in axis.values))
    return dataclasses.replace(config, **changes)


def _check_model(model, cells: Sequence[Cell]) -> None:
    """The model-dependent checks of every distinct sampler and size, before any cell renders."""
    from latentscape.workflows.common import check_sampling, resolve_size

    for sampler in dict.fromkeys(c.config.sampler for c in cells):
        check_sampling(model, steps=cells[0].config.steps, sampler=sampler, cfg=None)
    if cells[0].config.init_image is None:
        for width, height in dict.fromkeys((c.config.width, c.config.height) for c in cells):
            resolve_size(model, width, height)


def _jobs(cells: Sequence[Cell], batch_seeds: bool) -> Iterator[tuple[list[int], GenerateConfig]]:
    """(cell indices, generate job) pairs: one per cell, or with ``batch_seeds`` one per run of cells that
    differ only by consecutive seeds (at most ``MAX_BATCH`` each)."""
    if not batch_seeds:
        for i, cell in enumerate(cells):
            yield [i], cell.config
        return
    groups: dict[GenerateConfig, list[int]] = {}
    for i, cell in enumerate(cells):
        groups.setdefault(dataclasses.replace(cell.config, seed=0), []).append(i)
    for key, members in groups.items():
        members = sorted(dict((cells[i].config.seed, i) for i in members).items())  # by seed, one cell per seed
        run: list[tuple[int, int]] = []
        for seed, i in members + [(None, None)]:
            if run and (seed is None or seed != run[-1][0] + 1 or len(run) == MAX_BATCH):
                yield [j for _, j in run], dataclasses.replace(key, seed=run[0][0], batch=len(run))
                run = []
            if seed is not None:
                run.append((seed, i))


def plot(model, config: PlotConfig, *, callback=None) -> Output:
    """Render every cell (``generate`` jobs) and lay out one labelled sheet per Z value."""
    import torch

    from latentscape.workflows.generate import generate

    config = resolve_seeds(config)
    cells = check_plan(config)
    _check_model(model, cells)
    resolved: dict[str, Any] = {"cfg": model.default_guidance() if config.cfg is None else config.cfg}
    if config.init_image is None:  # the sheet's infotext states the size (each cell's job resolves its own)
        from latentscape.workflows.common import resolve_size

        resolved["width"], resolved["height"] = resolve_size(model, config.width, config.height)
    config = dataclasses.replace(config, **resolved)
    cells = plan(config)
    images: list[Image.Image | None] = [None] * len(cells)
    recipes: list[Any] = [None] * len(cells)
    latents: list[Any] = [None] * len(cells)
    done: dict[GenerateConfig, int] = {}
    for indices, job in _jobs(cells, config.batch_seeds):
        if job.batch == 1 and job in done:  # the same cell twice (a repeated value): rendered once
            first = done[job]
            for i in indices:
                images[i], recipes[i], latents[i] = images[first], recipes[first], latents[first]
            continue
        out = generate(model, job, callback=callback)
        for k, i in enumerate(indices):
            images[i], recipes[i], latents[i] = out.images[k], out.recipes[k], out.latents[k:k + 1]
        done.setdefault(job, indices[0])
    for i, cell in enumerate(cells):  # batch_seeds with a repeated seed: the cell its twin rendered
        if images[i] is None:
            twin = next(j for j, c in enumerate(cells) if images[j] is not None and c.config == cell.config)
            images[i], recipes[i], latents[i] = images[twin], recipes[twin], latents[twin]
    sheets, sheet_recipes = _sheets(model, config, cells, images, recipes)
    shapes = {tuple(t.shape) for t in latents}
    stacked = torch.cat(latents) if len(shapes) == 1 else torch.empty(0)
    info = {"seed": config.seed, "sheets": sheets, "sheet_recipes": sheet_recipes, "latents": latents,
            "cells": [{"x": c.x, "y": c.y, "z": c.z} for c in cells],
            "axes": {name: {"field": a.field, "values": list(a.values)} for name, a in axes_of(config)}}
    if config.returns == "sheets":
        return Output(images=sheets, latents=stacked, recipes=sheet_recipes, info={**info, "cell_recipes": recipes})
    return Output(images=images, latents=stacked, recipes=recipes, info=info)


def _sheets(model, config: PlotConfig, cells: Sequence[Cell], images, recipes) -> tuple[list[Image.Image], list[Any]]:
    from latentscape.io.grid import labelled_grid
    from latentscape.workflows.grids import cell_scale

    cols, rows = _count(config.x), _count(config.y)
    col_labels = [config.x.cell_label(i) for i in range(cols)] if config.x else [""]
    row_labels = [config.y.cell_label(i) for i in range(rows)] if config.y else [""]
    sheets, sheet_recipes = [], []
    for z in dict.fromkeys(c.z for c in cells):
        page = [images[i] for i, c in enumerate(cells) if c.z == z]
        page = _same_size(page)
        grid_rows = [page[r * cols:(r + 1) * cols] for r in range(rows)]
        title = config.prompt + (f" | {config.z.cell_label(z)}" if config.z else "")
        sheets.append(labelled_grid(grid_rows, row_labels, col_labels, title=title, cell_scale=cell_scale(page[0].width)))
        one = dataclasses.replace(config, sheet=z if config.z else None, returns="sheets")
        if config.z is not None and not config.z.replace:  # the sheet's own infotext states its Z value
            one = dataclasses.replace(one, **_changes(base_config(one), [(config.z, z)]))
        first = recipes[next(i for i, c in enumerate(cells) if c.z == z)]
        sheet_recipes.append(make_recipe("plot", model, config_dict(one), config.seed, inputs=first.inputs,
                                         infotext_extra=_sheet_extra(config, z)))
    return sheets, sheet_recipes


def _sheet_extra(config: PlotConfig, z: int) -> dict[str, str]:
    """A1111-style script fields for a sheet, values free of commas, colons and quotes."""
    extra = {"Script": "X/Y/Z plot"}
    for name, axis in axes_of(config):
        extra[f"{name.upper()} Type"] = axis.label + (" S/R" if axis.replace else "")
        extra[f"{name.upper()} Values"] = axis.values_text()
    if config.z is not None:
        extra["Z Value"] = re.sub(r"[,:\"]", " ", config.z.cell_label(z)).replace("  ", " ").strip()
    return extra


def _same_size(images: Sequence[Image.Image]) -> list[Image.Image]:
    """Cells of one sheet at one size: smaller ones centred on a white canvas of the largest (a size axis)."""
    width, height = max(i.width for i in images), max(i.height for i in images)
    out = []
    for image in images:
        if image.size == (width, height):
            out.append(image)
            continue
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        canvas.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
        out.append(canvas)
    return out
