"""`replay FILE`: make an output again from the recipe stored in it."""

from __future__ import annotations

import argparse

from latentscape.interfaces.common import (
    IMAGE_SUFFIXES, Progress, add_model_args, add_overwrite_arg, add_recipe_model_args, check_output_suffix, check_writable,
    emit, load_for_replay,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="re-make an output from its recipe", description="Reproduce an image from the recipe latentscape stored in it. The recipe is untrusted: it reads only the input files it records (same SHA-256) and uses the model it names only with --model-from-recipe.")
    p.add_argument("file", help="a PNG written by latentscape, or a morph's manifest (VIDEO.manifest.json)")
    p.add_argument("-o", "--output", required=True, help="where to write the reproduction (.png; a morph: .mp4, .gif or .webp)")
    p.add_argument("--inputs", action="append", default=[], metavar="DIR",
                   help="a folder to look in (by SHA-256) for input files that moved since the output was made (repeatable)")
    add_model_args(p)
    add_recipe_model_args(p)
    add_overwrite_arg(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    from latentscape.io.recipe import save_png
    from latentscape.workflows.inputs import anchor_inputs
    from latentscape.workflows.replay import check_inputs, load_recipe, replay

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
    emit(args, {"path": args.output, "workflow": recipe.workflow, "seed": recipe.seed, "model": model.model_id},
         f"wrote {args.output} ({recipe.workflow}, seed {recipe.seed}, model {model.model_id})")
    return 0
