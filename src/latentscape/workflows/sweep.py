"""A CFG sweep: rows are (prompt, seed), columns CFG scales, all in one batch with a per-item scale, and
a chart of prompt adherence and diversity against CFG ("low CFG explores, high CFG adheres", measured).

- diversity at a CFG: the mean pairwise RMS pixel distance (values in [0, 1]) between the seeds' images
  of one prompt, averaged over the prompts.
- adherence (``adherence``): ``classifier`` is caption retrieval by the model itself
  (:mod:`latentscape.workflows.adherence`; "auto" picks it on the embedded model), ``clip`` the mean CLIP
  score under a local ``clip_model``, ``none`` skips it. With ``emoji_data`` (a path to the emoji data
  set) the nearest-training-image name accuracy is added.

The recipe's ``inputs`` record the emoji data file and every file of the CLIP model folder (path and
SHA-256), so a replay refuses when either changed instead of measuring something else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentscape.core.metrics import mean_pairwise_distance
from latentscape.core.noise import batch_seeds, resolve_seed
from latentscape.io.chart import line_chart
from latentscape.io.recipe import file_sha256
from latentscape.models.family import Family
from latentscape.sampling import StepCallback
from latentscape.workflows import adherence as adh
from latentscape.workflows.common import MAX_BATCH, Output, decode_images, require, resolve_size
from latentscape.workflows.grids import GridOptions, check_returns, finish, sheet
from latentscape.workflows.render import MAX_CELLS, check_options, encode_job, render, seed_noise

DEFAULT_CFGS = (1.0, 3.0, 5.0, 7.5, 10.0, 15.0)
ADHERENCE = ("auto", "classifier", "clip", "none")
MAX_PROMPTS = 8
MAX_CFGS = 16


@dataclass(frozen=True, kw_only=True)
class SweepConfig(GridOptions):
    """``prompts`` x ``seeds`` seeds (seed, seed + 1, ...) x ``cfgs``; ``returns`` also accepts "chart"."""

    prompts: tuple[str, ...] = ()
    cfgs: tuple[float, ...] = DEFAULT_CFGS
    seeds: int = 4
    seed: int = -1
    adherence: str = "auto"
    clip_model: str | None = None
    candidates: tuple[str, ...] | None = None
    emoji_data: str | None = None


def parse_cfgs(text: str) -> tuple[float, ...]:
    from latentscape.errors import LatentscapeError

    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise LatentscapeError(f"--cfg got '{text}'; accepted: comma-separated numbers >= 0, e.g. 1,3,5,7.5,10,15.") from None
    return values


def _is_embedded(model: Family) -> bool:
    from latentscape.models.load import EMBEDDED_DIR

    return model.model_id == "embedded" or Path(str(model.model_id)).resolve() == EMBEDDED_DIR.resolve()


def adherence_kind(model: Family, config: SweepConfig) -> str:
    if config.adherence != "auto":
        return config.adherence
    if config.clip_model:
        return "clip"
    return "classifier" if (_is_embedded(model) or config.candidates) else "none"


def check(model: Family, config: SweepConfig) -> None:
    check_options(model, config)
    check_returns(config, extra=("chart",))
    require(1 <= len(config.prompts) <= MAX_PROMPTS, f"sweep got {len(config.prompts)} prompts; accepted: 1 to {MAX_PROMPTS}.")
    require(1 <= len(config.cfgs) <= MAX_CFGS, f"--cfg got {len(config.cfgs)} values; accepted: 1 to {MAX_CFGS} numbers >= 0.")
    for c in config.cfgs:
        require(c >= 0, f"--cfg got {c:g}; accepted: numbers >= 0 (1 = no guidance).")
    require(isinstance(config.seeds, int) and 1 <= config.seeds <= MAX_BATCH, f"--seeds got {config.seeds}; accepted: a whole number from 1 to {MAX_BATCH}.")
    cells = len(config.prompts) * config.seeds * len(config.cfgs)
    require(cells <= MAX_CELLS, f"sweep asks for {cells} images ({len(config.prompts)} prompts x {config.seeds} seeds x {len(config.cfgs)} CFG values); accepted: at most {MAX_CELLS}.")
    require(config.adherence in ADHERENCE, f"--adherence got '{config.adherence}'; accepted: {', '.join(ADHERENCE)}.")
    if adherence_kind(model, config) == "clip":
        require(config.clip_model is not None, "--adherence clip needs --clip-model PATH (a local CLIP model folder).")
        adh.check_clip_model(config.clip_model)
    if config.emoji_data is not None:
        require(Path(config.emoji_data).is_file(), f"--emoji-data got '{config.emoji_data}', which is not a file; accepted: the emoji64.npz that `latentscape train data` writes.")


def measurement_inputs(config: SweepConfig, kind: str) -> dict[str, Any]:
    """The recipe's ``inputs`` for the files the measurements read: the emoji data set, and every file of
    the CLIP model folder (config, weights, tokenizer and processor files), each with its SHA-256."""
    inputs: dict[str, Any] = {}
    if config.emoji_data is not None:
        inputs["emoji data"] = {"path": str(config.emoji_data), "sha256": file_sha256(config.emoji_data)}
    if kind == "clip" and config.clip_model is not None:
        root = Path(config.clip_model)
        files = sorted(p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
        inputs["CLIP model file"] = [{"path": str(p), "sha256": file_sha256(p)} for p in files]
    return inputs


def measure(model: Family, config: SweepConfig, cells: list, cfgs: list[float], kind: str) -> list[dict[str, Any]]:
    """One row per CFG: diversity, and adherence as ``kind`` asks (cells are row-major: prompt, seed, cfg)."""
    p, s, c = len(config.prompts), config.seeds, len(cfgs)
    pixels = torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) / 255 for im in cells]))  # (N, H, W, 3)
    pixels = pixels.reshape(p, s, c, *pixels.shape[1:])
    table = []
    for j, cfg in enumerate(cfgs):
        images = [cells[(i * s + k) * c + j] for i in range(p) for k in range(s)]
        prompts = [config.prompts[i] for i in range(p) for _ in range(s)]
        row: dict[str, Any] = {"cfg": cfg, "diversity": float(np.mean([mean_pairwise_distance(pixels[i, :, j]) for i in range(p)]))}
        if kind == "classifier":
            result = adh.classify(model, images, prompts, list(config.candidates) if config.candidates else None)
            row.update(adherence=result.accuracy, name_accuracy=result.name_accuracy, style_accuracy=result.style_accuracy,
                       predicted=result.predicted)
        elif kind == "clip":
            row["clip_score"] = float(np.mean(adh.clip_scores(images, prompts, config.clip_model)))
        if config.emoji_data is not None:
            nn = adh.nearest_training_accuracy(images, prompts, config.emoji_data)
            row.update(nn_name_accuracy=nn["name_accuracy"], nn_style_accuracy=nn["style_accuracy"])
        table.append(row)
    return table


def chart(table: list[dict[str, Any]], title: str):
    series_left = {}
    for key, label in (("adherence", "caption retrieval"), ("name_accuracy", "name only"), ("style_accuracy", "style only"),
                       ("nn_name_accuracy", "nearest training image (name)")):
        if table and table[0].get(key) is not None:
            series_left[label] = [row[key] for row in table]
    panels = []
    if series_left:
        panels.append(("adherence (fraction of images)", series_left, (0.0, 1.0)))
    if table and table[0].get("clip_score") is not None:
        panels.append(("CLIP score", {"CLIP score": [row["clip_score"] for row in table]}, None))
    panels.append(("diversity (mean pairwise RMS pixel distance)", {"diversity": [row["diversity"] for row in table]}, None))
    return line_chart([row["cfg"] for row in table], panels, x_label="CFG scale", title=title)


def sweep(model: Family, config: SweepConfig, *, callback: StepCallback | None = None) -> Output:
    """The CFG grid's cells (or its sheet, or its chart); ``info["table"]`` holds the measurements."""
    check(model, config)
    seed = resolve_seed(config.seed)
    seeds = batch_seeds(seed, config.seeds)
    cfgs = [float(c) for c in config.cfgs]
    width, height = resolve_size(model, config.width, config.height)
    shape = model.latent_format.latent_shape(width, height)
    items = [(pi, s, c) for pi in range(len(config.prompts)) for s in seeds for c in cfgs]
    cond_p, uncond_p = encode_job(model, config, list(config.prompts), [max(cfgs)] * len(config.prompts))
    cond = cond_p.select([pi for pi, _, _ in items])
    uncond = uncond_p.select([pi for pi, _, _ in items]) if uncond_p is not None else None
    noise, generators = seed_noise([s for _, s, _ in items], shape)
    latents = render(model, config, noise, cond, uncond, [c for _, _, c in items], generators, callback=callback)
    cells = decode_images(model, latents)

    kind = adherence_kind(model, config)
    inputs = measurement_inputs(config, kind)  # before measuring: the recipe names the files as they were read
    table = measure(model, config, cells, cfgs, kind)
    resolved = dataclasses.replace(config, seed=seed, cfgs=tuple(cfgs), width=width, height=height, adherence=kind)
    prompt_text = " / ".join(config.prompts)
    row_labels = [f"{p if len(config.prompts) > 1 else ''} seed {s}".strip() for p in config.prompts for s in seeds]
    col_labels = [f"CFG {c:g}" for c in cfgs]
    image = sheet(cells, len(cfgs), row_labels, col_labels, f"sweep: {prompt_text}")
    chart_image = chart(table, f"sweep: {prompt_text} ({len(seeds)} seeds per prompt)")
    extras = [{"CFG scale": c, "Sweep": f"prompt {pi + 1}"} for pi, _, c in items]
    info = {"seed": seed, "seeds": seeds, "cfgs": cfgs, "table": table, "adherence": kind, "width": width, "height": height}
    return finish(model, "sweep", resolved, cells, latents, [s for _, s, _ in items], image, cell_extras=extras,
                  sheet_extra={"Sweep": f"CFG {' '.join(f'{c:g}' for c in cfgs)}"}, inputs=inputs, info=info,
                  extra_views={"chart": (chart_image, {"Sweep": "adherence and diversity chart"})},
                  cell_prompts=[config.prompts[pi] for pi, _, _ in items])
