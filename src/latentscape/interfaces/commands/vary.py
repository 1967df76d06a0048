"""`vary SOURCE`: variations of a generated PNG, a prompt and seed, or an external image (Midjourney Vary)."""

from __future__ import annotations

import argparse

from latentscape.interfaces.commands._creative import add_common, add_image_mode, check_outputs, options, progress, report, write_images
from latentscape.interfaces.common import add_recipe_model_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vary", help="variations of an image or a prompt+seed", conflict_handler="resolve",
        description="Variations of SOURCE: a PNG made by `latentscape generate` (its recipe: A1111 variation seeds, "
                    "strength 0 = the source, 1 = the variation seed's own image), PROMPT@SEED, a prompt with --seed, "
                    "or any other image (img2img variations). Presets: subtle = 0.2 (variation) / 0.35 (img2img), "
                    "strong = 0.6 / 0.65.",
    )
    p.add_argument("source", help="a latentscape PNG, an image file, PROMPT@SEED, a prompt, or seed:N")
    p.add_argument("--strength", default="subtle", help="subtle, strong or a number from 0 to 1 (default subtle)")
    add_image_mode(p, "an external image is repainted by img2img at --strength (seed s + i)")
    p.add_argument("--variation-seed", type=int, default=-1, help="first variation seed; variation i uses it + i (-1 = random)")
    p.add_argument("--prompt", default=None, help="prompt for an external image, or to replace the source's prompt")
    add_common(p)
    add_recipe_model_args(p)
    # -n is the number of variations here (as in the issue's `vary SOURCE -n 4`); the negative prompt is --negative
    p.add_argument("-n", "--count", dest="n", type=int, default=4, help="number of variations (default 4)")
    # unset sampling flags keep what a generated source's recipe says
    p.set_defaults(func=run_vary, negative=None, steps=None, sampler=None, seed=None, true_cfg=None, guidance_rescale=None)


def run_vary(args: argparse.Namespace) -> int:
    from latentscape.interfaces.common import load_for_replay, load_model
    from latentscape.workflows.vary import resolve_strength, vary, vary_config

    check_outputs(args)
    config, recipe = vary_config(args.source, n=args.n, strength=args.strength, variation_seed=args.variation_seed,
                                 prompt=args.prompt, seed=args.seed, image_mode=args.image_mode, **options(args))
    resolve_strength(config.strength, "image" if config.init_image and config.image_mode == "noise" else "seed")
    # the source PNG's recipe is untrusted: its model is loaded only with --model-from-recipe
    from latentscape.workflows.fields import check_fields

    check_fields(config)  # before any model loads
    model = load_model(args) if recipe is None else load_for_replay(args, recipe.model, recipe.load)
    out = vary(model, config, callback=progress(args, model))
    paths = write_images(args, out, "vary")
    report(args, model, out,
           {"workflow": "vary", "mode": out.info["mode"], "seed": out.info["seed"], "strength": out.info["strength"],
            "outputs": [{"path": str(p), **r.infotext_extra} for p, r in zip(paths, out.recipes)]},
           [f"wrote {p} ({', '.join(f'{k} {v}' for k, v in r.infotext_extra.items())})" for p, r in zip(paths, out.recipes)])
    return 0
