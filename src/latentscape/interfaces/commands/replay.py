"""`replay FILE`: make an output again from the recipe stored in it."""

from __future__ import annotations

import argparse

from latentscape.interfaces.common import (
    IMAGE_SUFFIXES, Progress, add_model_args, add_overwrite_arg, add_recipe_model_args, check_output_suffix, check_writable,
    emit, json_output, json_result, load_for_replay, load_model,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="re-make an output from its recipe (or an A1111/Forge PNG from its parameters)",
                       description="Reproduce an image from the recipe latentscape stored in it. The recipe is untrusted: it reads only "
                                   "the input files it records (same SHA-256) and uses the model it names only with --model-from-recipe. "
                                   "A PNG made by AUTOMATIC1111 or Forge (no latentscape recipe, an A1111 'parameters' chunk) is rendered "
                                   "from its settings on --model (default: the embedded model); each setting latentscape cannot honour "
                                   "(hires fix, ADetailer, LoRA tags, GPU noise, clip skip, ...) is named in a warning.")
    p.add_argument("file", help="a PNG written by latentscape, AUTOMATIC1111 or Forge, or a morph's manifest (VIDEO.manifest.json)")
    p.add_argument("-o", "--output", required=True, help="where to write the reproduction (.png; a morph: .mp4, .gif or .webp)")
    p.add_argument("--inputs", action="append", default=[], metavar="DIR",
                   help="a folder to look in (by SHA-256) for input files that moved since the output was made (repeatable)")
    add_model_args(p)
    add_recipe_model_args(p)
    add_overwrite_arg(p)
    p.add_argument("--strict", action="store_true",
                   help="an A1111 PNG: refuse (exit 2, nothing written) when any of its settings cannot be honoured, instead of warning")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    from latentscape.io.recipe import save_png
    from latentscape.workflows.inputs import anchor_inputs
    from latentscape.workflows.replay import check_inputs, load_recipe, replay

    if is_a1111_png(args.file):
        return run_replay_a1111(args)
    recipe = load_recipe(args.file)
    check_writable([args.output], overwrite=args.overwrite, inputs=[args.file])
    if recipe.workflow == "morph":  # a video: re-rendered whole, written with its own manifest
        from latentscape.interfaces.commands.morph import run_replay_morph

        return run_replay_morph(args, recipe)
    check_output_suffix(args.output, IMAGE_SUFFIXES)
    config = check_inputs(recipe, recipe_file=args.file, search=args.inputs)  # before loading anything
    model = load_for_replay(args, recipe.model, recipe.load)
    out = replay(model, recipe, config, callback=Progress(not (args.quiet or args.json)))
    index = recipe.batch_index
    save_png(out.images[index], args.output, anchor_inputs(out.recipes[index], args.output))
    emit(args, json_result(args, "replay", [json_output(args.output, "image", out.recipes[index])], model, workflow=recipe.workflow,
                           seed=recipe.seed, source="latentscape", warnings=[]),
         f"wrote {args.output} ({recipe.workflow}, seed {recipe.seed}, model {model.model_id})")
    return 0


def is_a1111_png(path: str) -> bool:
    """A PNG with A1111/Forge ``parameters`` but no latentscape recipe (a morph manifest is not one)."""
    from pathlib import Path

    from latentscape.errors import LatentscapeError
    from latentscape.io.a1111_infotext import png_chunks
    from latentscape.io.recipe import A1111_CHUNK, RECIPE_CHUNK

    if Path(path).suffix.lower() == ".json" or not Path(path).is_file():
        return False
    try:
        chunks = png_chunks(path)
    except LatentscapeError:
        return False  # not a readable image: the recipe reader says why, in its own words
    return RECIPE_CHUNK not in chunks and A1111_CHUNK in chunks


def run_replay_a1111(args: argparse.Namespace) -> int:
    """Render an A1111/Forge PNG's settings; every check (names, numbers, --strict, the output) before loading."""
    import sys

    from latentscape.errors import LatentscapeError
    from latentscape.io.a1111_infotext import read_png_settings
    from latentscape.io.recipe import save_png
    from latentscape.workflows.a1111_replay import a1111_job, model_note
    from latentscape.workflows.replay import resolve

    source = f"the A1111 parameters in '{args.file}'"
    if args.model_from_recipe:
        raise LatentscapeError(f"'{args.file}' is an A1111/Forge PNG, which names its model only by name and hash; "
                               "pass --model with that checkpoint instead of --model-from-recipe.")
    check_writable([args.output], overwrite=args.overwrite, inputs=[args.file])
    check_output_suffix(args.output, IMAGE_SUFFIXES)
    settings = read_png_settings(args.file)
    job = a1111_job(settings, source=source)
    if args.strict and job.warnings:
        more = f" (and {len(job.warnings) - 1} more)" if len(job.warnings) > 1 else ""
        raise LatentscapeError(f"--strict: '{args.file}' has settings latentscape cannot honour: {job.warnings[0].rstrip('.')}{more}.")
    model = load_model(args, job.config)  # the config's field checks run first
    if model.embedded_guidance and settings.distilled_cfg is not None:
        job = a1111_job(settings, source=source, flow_guidance=True)
    for sentence in [*job.warnings, model_note(settings, model.model_id)]:
        if sentence:
            print(f"warning: {sentence}", file=sys.stderr)
    _, run = resolve(job.workflow)
    out = run(model, job.config, callback=Progress(not (args.quiet or args.json)))
    recipe = out.recipes[0]
    save_png(out.images[0], args.output, recipe)
    emit(args, json_result(args, "replay", [json_output(args.output, "image", recipe)], model, workflow=job.workflow,
                           seed=recipe.seed, source="a1111", sampler=job.config.sampler, warnings=list(job.warnings)),
         f"wrote {args.output} (A1111 settings as {job.workflow}: {job.config.sampler}, seed {recipe.seed}, model {model.model_id})")
    return 0
