"""`replay FILE`: make an output again from the recipe stored in it."""

from __future__ import annotations

import argparse

from latentscape.interfaces.common import IMAGE_SUFFIXES, Progress, add_model_args, check_output_suffix, emit, load_for_replay


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="re-make an output from its recipe", description="Reproduce an image from the recipe latentscape stored in it.")
    p.add_argument("file", help="a PNG written by latentscape, or a morph's manifest (VIDEO.manifest.json)")
    p.add_argument("-o", "--output", required=True, help="where to write the reproduction (.png; a morph: .mp4, .gif or .webp)")
    add_model_args(p)  # every flag defaults to what the recipe recorded
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    from latentscape.io.recipe import save_png
    from latentscape.workflows.replay import check_inputs, config_from_recipe, load_recipe, replay

    recipe = load_recipe(args.file)
    if recipe.workflow == "morph":  # a video: re-rendered whole, written with its own manifest
        from latentscape.interfaces.commands.morph import run_replay_morph

        return run_replay_morph(args, recipe)
    check_output_suffix(args.output, IMAGE_SUFFIXES)
    config_from_recipe(recipe)  # fail on an unknown workflow before loading anything
    check_inputs(recipe)
    model = load_for_replay(args, recipe)
    out = replay(model, recipe, callback=Progress(not (args.quiet or args.json)))
    index = recipe.batch_index
    save_png(out.images[index], args.output, out.recipes[index])
    emit(args, {"path": args.output, "workflow": recipe.workflow, "seed": recipe.seed, "model": model.model_id},
         f"wrote {args.output} ({recipe.workflow}, seed {recipe.seed}, model {model.model_id})")
    return 0
