"""Plumbing shared by the exploration verbs (vary, blend, mix, explore, map, sweep, math): flags, the
sampling options, and writing images, sheets and cells (each with its recipe) only after the work is done."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Sequence

from latentscape.interfaces.common import (
    IMAGE_SUFFIXES, Progress, add_model_args, add_output_args, add_sampling_args, check_output_suffix, check_writable,
    emit, is_folder_output, json_output, json_result, output_paths, size_args,
)


def add_common(p: argparse.ArgumentParser, *, grid: bool = False, default_hint: str = "outputs/NNNNN-SEED.png") -> None:
    """Sampling (no --batch), --batch-size, model and output flags; grids add --save-cells."""
    add_sampling_args(p, batch=False)
    p.add_argument("--batch-size", type=int, default=8, help="items per model call (bounds memory; default 8)")
    # as generate/img2img/morph: an image off the model's size grid is an error naming the nearest valid size.
    # The job's size is --size, else the first image's (fitted by --resize); every other image of the job is
    # stretched to that size (workflows.render.job_size and image_latents).
    p.add_argument("--resize", default="none", choices=["none", "stretch", "crop"],
                   help="an image whose size is not a multiple of the model's factor: none = error (default), stretch "
                        "or crop to a valid size; other images of the job are stretched to the first one's size")
    add_model_args(p)
    add_output_args(p, default_hint)
    if grid:
        p.add_argument("--save-cells", metavar="DIR", default=None, help="also write every cell as its own PNG (its recipe replays it)")


def add_image_mode(p: argparse.ArgumentParser, noise_means: str) -> None:
    """``--image-mode invert|noise`` for verbs that take images (:mod:`latentscape.workflows.plan`)."""
    p.add_argument("--image-mode", default="invert", choices=["invert", "noise"],
                   help=f"image inputs: invert (default) inverts each image with the job's sampler and steps, so an item on an "
                        f"image is its VAE round trip; noise: {noise_means}")


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`SamplingOptions` fields from the parsed flags (None where a flag was left unset)."""
    width, height = size_args(args)
    return {
        "negative": args.negative, "steps": args.steps, "sampler": args.sampler, "cfg": getattr(args, "cfg", None),
        "true_cfg": args.true_cfg, "guidance_rescale": args.guidance_rescale, "width": width, "height": height,
        "batch_size": args.batch_size, "resize": args.resize,
    }


def check_outputs(args: argparse.Namespace, *extra: tuple[str | None, Sequence[str], str]) -> None:
    """Fail on an output path we cannot write before any work (``-o``, ``--preview``, ``extra``, ``--save-cells``)."""
    if not is_folder_output(args.output):
        check_output_suffix(args.output, IMAGE_SUFFIXES)
    check_output_suffix(getattr(args, "preview", None), IMAGE_SUFFIXES, "--preview")
    for path, suffixes, flag in extra:
        check_output_suffix(path, suffixes, flag)
    inputs = input_files(args)
    if not is_folder_output(args.output):
        check_writable([args.output], overwrite=args.overwrite, inputs=inputs)
    check_writable([getattr(args, "preview", None)], overwrite=True, inputs=inputs, flag="--preview")
    for path, _, flag in extra:
        check_writable([path], overwrite=args.overwrite, inputs=inputs, flag=flag)
    cells = getattr(args, "save_cells", None)
    if cells is not None and Path(cells).exists() and not Path(cells).is_dir():
        from latentscape.errors import LatentscapeError

        raise LatentscapeError(f"--save-cells got '{cells}', which is a file; accepted: a folder (created if missing).")


def input_files(args: argparse.Namespace) -> list[str]:
    """The existing files the verb's positional inputs name (``image:PATH`` or a path), to keep outputs off them."""
    values: list[str] = []
    for name in ("inputs", "source", "content", "style", "point", "corners", "image"):
        value = getattr(args, name, None)
        values += value if isinstance(value, list) else [value] if isinstance(value, str) else []
    paths = [v[len("image:"):] if v.lower().startswith("image:") else v for v in values]
    return [p for p in paths if Path(p).is_file()]


def progress(args: argparse.Namespace, model, desc: str = "sampling") -> Progress:
    """The step progress bar, also rewriting ``--preview`` (the first item of each batch) when given."""
    preview = getattr(args, "preview", None)
    return Progress(not (args.quiet or args.json), desc, preview=(preview, model.latent_format) if preview else None)


def sheet_path(output: str | None, verb: str, folder: str = "outputs") -> Path:
    """``-o`` or the next free ``outputs/NNNNN-<verb>.png``."""
    if output is not None and not is_folder_output(output):
        return Path(output)
    root = Path(output if output is not None else folder)
    numbers = [int(m.group(1)) for f in root.iterdir() if (m := re.match(r"(\d{5})-", f.name))] if root.is_dir() else []
    return root / f"{max(numbers, default=-1) + 1:05d}-{verb}.png"


def write_images(args: argparse.Namespace, out, verb: str) -> list[Path]:
    """One PNG per image (``-o x.png``; several: x-0.png, x-1.png, ...), each with its recipe."""
    from latentscape.io.recipe import save_png
    from latentscape.workflows.inputs import anchor_inputs

    paths = output_paths(args.output, [r.seed for r in out.recipes])
    check_writable(paths, overwrite=args.overwrite, inputs=input_files(args))  # all of them before writing one
    for image, recipe, path in zip(out.images, out.recipes, paths):
        save_png(image, path, anchor_inputs(recipe, path))
    return paths


def write_grid(args: argparse.Namespace, out, verb: str) -> tuple[Path, list[Path]]:
    """The labelled sheet (with the whole job's recipe) and, with --save-cells, every cell."""
    from latentscape.io.recipe import save_png
    from latentscape.workflows.inputs import anchor_inputs

    path = sheet_path(args.output, verb)
    check_writable([path], overwrite=args.overwrite, inputs=input_files(args))
    save_png(out.info["sheet"], path, anchor_inputs(out.info["sheet_recipe"], path))
    cells: list[Path] = []
    if getattr(args, "save_cells", None):
        folder = Path(args.save_cells)
        width = max(3, len(str(len(out.images) - 1)))
        for i, (image, recipe) in enumerate(zip(out.images, out.recipes)):
            cell = folder / f"cell-{i:0{width}d}.png"
            cells.append(save_png(image, cell, anchor_inputs(recipe, cell)))
    return path, cells


def report(args: argparse.Namespace, model, out, payload: dict[str, Any], lines: list[str]) -> None:
    """Emit the verb's ``--json`` result: ``payload``'s ``outputs`` (paths, or dicts with a ``path``, one per
    image of ``out``), ``sheet``, ``cells``, ``chart`` and ``html`` become the result's ``outputs``, each with
    its recipe and infotext; every other key is a verb field."""
    extras = dict(payload)
    verb = extras.pop("workflow")
    written = []
    for item, recipe in zip(extras.pop("outputs", []), out.recipes):
        entry = item if isinstance(item, dict) else {"path": item}
        written.append({**json_output(entry["path"], "image", recipe), **{k: v for k, v in entry.items() if k != "path"}})
    if extras.get("sheet"):
        written.append(json_output(extras["sheet"], "sheet", out.info.get("sheet_recipe")))
    if extras.get("chart"):
        written.append(json_output(extras["chart"], "chart", out.info.get("chart_recipe")))
    if extras.get("html"):
        written.append(json_output(extras["html"], "html"))
    written += [json_output(cell, "cell", recipe) for cell, recipe in zip(extras.get("cells", []), out.recipes)]
    emit(args, json_result(args, verb, written, model, **extras), "\n".join(lines))
