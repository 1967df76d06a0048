"""`math EXPR`: latent and conditioning arithmetic over prompts, seeds and images."""

from __future__ import annotations

import argparse

from latentscape.interfaces.commands._creative import add_common, add_image_mode, check_outputs, options, progress, report, write_images


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "math", help="prompt/seed/image arithmetic",
        description='Render an expression such as \'"king face" - "man" + "woman"\': prompts ("..."), seed:N and image:PATH '
                    "joined by + and -, scaled by numbers (0.5*\"cat\", seed:3/2), with parentheses. Prompts add up as "
                    "conditioning, seeds as noise (renormalised), images as inversions (--image-mode noise: as latents repainted at --strength).",
    )
    p.add_argument("expression", help='e.g. \'"cat face, google style" - "google style" + "twitter style"\'')
    p.add_argument("--strength", type=float, default=0.6, help="with --image-mode noise: img2img strength when the expression has images (0 = decode the latent sum)")
    add_image_mode(p, "images combine as latents, repainted by img2img at --strength")
    add_common(p)
    p.set_defaults(func=run_math)


def run_math(args: argparse.Namespace) -> int:
    from latentscape.core.expr import parse
    from latentscape.interfaces.common import load_model
    from latentscape.workflows.latent_math import MathConfig, latent_math

    check_outputs(args)
    parse(args.expression)
    config = MathConfig(expression=args.expression, seed=args.seed, strength=args.strength, image_mode=args.image_mode,
                        **options(args))
    model = load_model(args, config)
    out = latent_math(model, config, callback=progress(args, model))
    paths = write_images(args, out, "math")
    report(args, model, out, {"workflow": "math", "expression": out.info["expression"], "seed": out.info["seed"], "outputs": [str(p) for p in paths]},
           [f"wrote {paths[0]} ({out.info['expression']})"])
    return 0
