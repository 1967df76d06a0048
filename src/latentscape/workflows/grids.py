"""Grid workflows (explore, map, sweep): the grid size, the labelled sheet and what a recipe replays.

A grid job renders its cells as one batch. Each cell's recipe replays that cell (``batch_index`` = the
cell, row-major); the sheet's recipe is the same job with ``returns="sheet"``, so replaying the sheet PNG
makes the sheet again. ``returns`` picks what :class:`Output.images` holds: the cells (default, with the
sheet in ``info["sheet"]`` and its recipe in ``info["sheet_recipe"]``) or only the sheet.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io.grid import labelled_grid
from latentscape.io.recipe import Recipe
from latentscape.models.family import Family
from latentscape.workflows.common import Output, config_dict, make_recipe, require
from latentscape.workflows.render import MAX_CELLS, SamplingOptions

RETURNS = ("cells", "sheet")
MAX_SIDE = 16


@dataclass(frozen=True, kw_only=True)
class GridOptions(SamplingOptions):
    """``returns``: "cells" (each cell an image) or "sheet" (only the labelled sheet)."""

    returns: str = "cells"


def parse_grid(text: str | Sequence[int], *, minimum: int = 1, odd: bool = False, flag: str = "--grid") -> tuple[int, int]:
    """``"5x5"`` (COLUMNSxROWS) -> (columns, rows), each from ``minimum`` to 16 (odd when asked)."""
    accepted = f"COLUMNSxROWS with {'odd ' if odd else ''}whole numbers from {minimum} to {MAX_SIDE}, e.g. {'5x5' if odd else '7x7'}"
    if isinstance(text, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
        if not m:
            raise LatentscapeError(f"{flag} got '{text}'; accepted: {accepted}.")
        cols, rows = int(m.group(1)), int(m.group(2))
    else:
        cols, rows = (int(v) for v in text)
    for v in (cols, rows):
        if not minimum <= v <= MAX_SIDE or (odd and v % 2 == 0):
            raise LatentscapeError(f"{flag} got {cols}x{rows}; accepted: {accepted}.")
    require(cols * rows <= MAX_CELLS, f"{flag} got {cols}x{rows} = {cols * rows} cells; accepted: at most {MAX_CELLS}.")
    return cols, rows


def grid_text(cols: int, rows: int) -> str:
    return f"{cols}x{rows}"


def cell_scale(width: int) -> int:
    """Enlarge small cells so captions fit: 64 px -> 2, 32 px -> 4, 128 px and up -> 1."""
    return max(1, 128 // max(width, 1))


def sheet(cells: Sequence[Image.Image], cols: int, row_labels: Sequence[str], col_labels: Sequence[str], title: str) -> Image.Image:
    rows = [list(cells[r * cols:(r + 1) * cols]) for r in range(len(row_labels))]
    return labelled_grid(rows, row_labels, col_labels, title=title, cell_scale=cell_scale(cells[0].width))


def finish(
    model: Family,
    workflow: str,
    config: GridOptions,
    cells: list[Image.Image],
    latents: torch.Tensor,
    seeds: Sequence[int],
    sheet_image: Image.Image,
    *,
    cell_extras: Sequence[Mapping[str, Any]],
    sheet_extra: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    extra_views: Mapping[str, tuple[Image.Image, Mapping[str, Any]]] | None = None,
    cell_prompts: Sequence[str] | None = None,
) -> Output:
    """The grid's :class:`Output` for ``config.returns`` (``config`` is the resolved job: seeds, size, ...).

    Every cell's infotext is that cell's: its seed, its ``cell_extras`` (e.g. its own CFG scale) and its
    prompt (``cell_prompts``). A sheet or chart shows many cells; its infotext is its middle cell's (the
    centre of an explore grid, the point itself) plus the view's own ``sheet_extra``.
    ``extra_views`` adds further returnable images (name -> (image, infotext extra)), e.g. sweep's chart.
    """
    views = {"sheet": (sheet_image, dict(sheet_extra or {})), **dict(extra_views or {})}
    prompts = list(cell_prompts) if cell_prompts is not None else [None] * len(seeds)
    mid = len(seeds) // 2
    cell_params = config_dict(dataclasses.replace(config, returns="cells"))
    recipes = [make_recipe(workflow, model, cell_params, s, batch_index=i, inputs=inputs, infotext_extra=e, prompt_line=p)
               for i, (s, e, p) in enumerate(zip(seeds, cell_extras, prompts))]
    view_recipes: dict[str, Recipe] = {
        name: make_recipe(workflow, model, config_dict(dataclasses.replace(config, returns=name)), seeds[mid],
                          inputs=inputs, infotext_extra={**dict(cell_extras[mid]), **dict(extra)}, prompt_line=prompts[mid])
        for name, (_, extra) in views.items()
    }
    info = dict(info or {})
    for name, (image, _) in views.items():
        info[name] = image
        info[f"{name}_recipe"] = view_recipes[name]
    if config.returns == "cells":
        return Output(images=list(cells), latents=latents, recipes=recipes, info=info)
    image, _ = views[config.returns]
    return Output(images=[image], latents=latents, recipes=[view_recipes[config.returns]], info={**info, "cell_recipes": recipes})


def check_returns(config: GridOptions, extra: Sequence[str] = ()) -> None:
    accepted = RETURNS + tuple(extra)
    require(config.returns in accepted, f"returns got '{config.returns}'; accepted: {', '.join(accepted)}.")
