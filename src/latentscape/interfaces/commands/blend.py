"""`blend INPUT INPUT [...]`: 2 to 5 prompts, seeds and images blended into one image (Midjourney /blend)."""

from __future__ import annotations

import argparse

from latentscape.interfaces.commands._creative import add_common, add_image_mode, check_outputs, options, progress, report, write_images
from latentscape.workflows.keyframes import KEYFRAME_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "blend", help="blend 2-5 prompts/seeds/images",
        description="Blend 2 to 5 inputs into one image: prompts and seeds blend their noises (spherical barycentre) and "
                    "conditionings; images are inverted and blend the same way (--image-mode noise: the latents blend and img2img "
                    "repaints them at --strength). "
                    "A one-hot weight reproduces that input.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=KEYFRAME_HELP)
    p.add_argument("--weights", default=None, help="comma-separated weights >= 0, one per input (default: equal)")
    p.add_argument("--strength", type=float, default=0.5, help="with --image-mode noise: img2img strength when an image is among the inputs (0 = decode the latent blend)")
    add_image_mode(p, "the latents blend and img2img repaints them at --strength")
    add_common(p)
    p.set_defaults(func=run_blend)


def run_blend(args: argparse.Namespace) -> int:
    from latentscape.interfaces.common import load_model
    from latentscape.workflows.blend import BlendConfig, blend, check_inputs, check_weights, parse_weights

    check_outputs(args)
    weights = parse_weights(args.weights)
    check_weights(weights, len(check_inputs(args.inputs)))
    config = BlendConfig(inputs=tuple(args.inputs), weights=weights, seed=args.seed, strength=args.strength,
                         image_mode=args.image_mode, **options(args))
    model = load_model(args, config)
    out = blend(model, config, callback=progress(args, model))
    paths = write_images(args, out, "blend")
    report(args, model, out, {"workflow": "blend", "mode": out.info["mode"], "weights": out.info["weights"],
                              "input_seeds": out.info["seeds"], "outputs": [str(p) for p in paths]},
           [f"wrote {paths[0]} ({out.info['mode']} blend, weights {', '.join(f'{w:.3g}' for w in out.info['weights'])})"])
    return 0
