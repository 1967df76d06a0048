"""`plot [PROMPT] --x FIELD=VALUES [--y ...] [--z ...]`: A1111's X/Y/Z plot over any generate field."""

from __future__ import annotations

import argparse
from pathlib import Path

from latentscape.interfaces.common import (
    IMAGE_SUFFIXES, Progress, add_model_args, add_output_args, add_sampling_args, check_output_suffix, check_writable,
    emit, is_folder_output, json_output, json_result, load_model, size_args,
)

AXIS_HELP = ("FIELD=VALUES: a generate field (prompt, negative, seed, steps, sampler, cfg, true_cfg, guidance_rescale, "
             "width, height, size, strength) and its values: 1,3,7.5 | ranges 1..4, 1..10:2 (step), 0..1[5] (count) and "
             "A1111's 1-4, 1-10 (+2), 0-1 [5] | prompt=S/R:cat,dog (A1111 Prompt S/R) | quote a value holding a comma")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot", help="X/Y/Z plot over any generate field (A1111's script)",
        description="Render a labelled grid per Z value: columns the --x values, rows the --y values. Every cell is a "
                    "standalone `generate` (its PNG carries its own infotext and recipe; `replay` re-makes it); "
                    "the sheet's recipe replays the sheet. At most 256 cells.",
    )
    p.add_argument("prompt", nargs="?", default=None, help="the base prompt (optional when --x/--y/--z set whole prompts)")
    p.add_argument("--x", dest="x", default=None, metavar="FIELD=VALUES", help=f"columns; {AXIS_HELP}")
    p.add_argument("--y", dest="y", default=None, metavar="FIELD=VALUES", help="rows (as --x)")
    p.add_argument("--z", dest="z", default=None, metavar="FIELD=VALUES", help="one sheet per value (as --x)")
    p.add_argument("--image", default=None, help="an input image: every cell is an img2img of it (a strength axis then works)")
    p.add_argument("--strength", type=float, default=0.75, help="with --image: how much to change (0 keeps it, 1 ignores it)")
    p.add_argument("--resize", default="none", choices=["none", "stretch", "crop"],
                   help="with --image: an image size off the model's size grid is an error (none), stretched or cropped")
    p.add_argument("--batch-seeds", action="store_true",
                   help="run cells that differ only by consecutive seeds as one batch (faster; within 1/255 of a "
                        "batch-of-one generate on CPU, and each cell's recipe replays it exactly)")
    p.add_argument("--save-cells", metavar="DIR", default=None, help="also write every cell as its own PNG (cell-ZZ-YY-XX.png)")
    add_sampling_args(p, batch=False)
    add_model_args(p)
    add_output_args(p, "outputs/NNNNN-plot.png")
    p.set_defaults(func=run_plot)


def sheet_paths(out: str | None, count: int) -> list[Path]:
    """``-o x.png`` -> x.png (one Z value) or x-0.png, x-1.png, ...; ``-o DIR/`` or none -> DIR/NNNNN-plot[-Z].png."""
    from latentscape.interfaces.commands._creative import sheet_path

    path = sheet_path(out, "plot")
    return [path] if count == 1 else [path.with_name(f"{path.stem}-{z}{path.suffix}") for z in range(count)]


def cell_name(cell) -> str:
    return f"cell-{cell.z:02d}-{cell.y:02d}-{cell.x:02d}.png"


def build_config(args: argparse.Namespace):
    """The :class:`PlotConfig` the flags describe (axes parsed and the whole plan checked: no model yet)."""
    from latentscape.errors import LatentscapeError
    from latentscape.workflows.plot import PlotConfig
    from latentscape.workflows.plot_axes import parse_axis

    axes = {name: parse_axis(getattr(args, name), where=name) if getattr(args, name) is not None else None for name in ("x", "y", "z")}
    prompt = args.prompt
    if prompt is None:
        whole = [a for a in axes.values() if a is not None and a.field == "prompt" and not a.replace]
        if not whole:
            raise LatentscapeError("a plot needs a prompt; pass PROMPT, or put whole prompts on an axis (--x prompt=\"a cat\",\"a dog\").")
        prompt = whole[0].values[0]
    width, height = size_args(args)
    return PlotConfig(
        prompt=prompt, negative=args.negative, seed=args.seed, steps=args.steps, sampler=args.sampler, cfg=args.cfg,
        true_cfg=args.true_cfg, guidance_rescale=args.guidance_rescale, width=width, height=height,
        init_image=args.image, strength=args.strength, resize=args.resize, batch_seeds=args.batch_seeds, **axes,
    )


def run_plot(args: argparse.Namespace) -> int:
    from latentscape.errors import LatentscapeError
    from latentscape.io.recipe import save_png
    from latentscape.workflows.inputs import anchor_inputs
    from latentscape.workflows.plot import check_plan, plot

    if not is_folder_output(args.output):
        check_output_suffix(args.output, IMAGE_SUFFIXES)
    check_output_suffix(args.preview, IMAGE_SUFFIXES, "--preview")
    config = build_config(args)
    planned = check_plan(config)  # every axis value and cell checked before the model loads
    sheets = sheet_paths(args.output, len(config.z.values) if config.z else 1)
    inputs = [args.image] if args.image else []
    check_writable(sheets, overwrite=args.overwrite, inputs=inputs)
    check_writable([args.preview], overwrite=True, inputs=inputs, flag="--preview")
    if args.save_cells is not None:
        folder = Path(args.save_cells)
        if folder.exists() and not folder.is_dir():
            raise LatentscapeError(f"--save-cells got '{folder}', which is a file; accepted: a folder (created if missing).")
        check_writable([folder / cell_name(c) for c in planned], overwrite=args.overwrite, inputs=inputs, flag="--save-cells")
    model = load_model(args, config)
    preview = (args.preview, model.latent_format) if args.preview else None
    out = plot(model, config, callback=Progress(not (args.quiet or args.json), "plot", preview=preview))
    for image, recipe, path in zip(out.info["sheets"], out.info["sheet_recipes"], sheets):
        save_png(image, path, anchor_inputs(recipe, path))
    cells = []
    if args.save_cells is not None:
        for image, recipe, place in zip(out.images, out.recipes, planned):
            path = Path(args.save_cells) / cell_name(place)
            cells.append(save_png(image, path, anchor_inputs(recipe, path)))
    lines = [f"wrote {p}" for p in sheets] + ([f"wrote {len(cells)} cells to {args.save_cells}"] if cells else [])
    entries = [json_output(p, "sheet", r) for p, r in zip(sheets, out.info["sheet_recipes"])]
    entries += [json_output(p, "cell", r) for p, r in zip(cells, out.recipes)]
    emit(args, json_result(args, "plot", entries, model, axes=out.info["axes"], cells=len(out.images)), "\n".join(lines))
    return 0
