"""`mix CONTENT STYLE`: the content of one prompt with the style of another."""

from __future__ import annotations

import argparse

from latentscape.interfaces.commands._creative import add_common, check_outputs, options, progress, report, write_images


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mix", help="style mixing of two prompts",
        description="Mix CONTENT and STYLE (prompts or PROMPT@SEED). embed: the conditioning is lerp(content, style, ratio); "
                    "schedule: CONTENT conditions the first 1-ratio of the steps and STYLE the rest (A1111 [content:style:1-ratio]). "
                    "Ratio 0 is the content's own image.",
    )
    p.add_argument("content", help="the content prompt (or PROMPT@SEED)")
    p.add_argument("style", help="the style prompt")
    p.add_argument("--ratio", default="0.5", help="0 (content) to 1 (style); several, comma-separated, give one image each")
    p.add_argument("--mode", default="embed", choices=["embed", "schedule"])
    add_common(p)
    p.set_defaults(func=run_mix)


def parse_ratios(text: str) -> tuple[float, ...]:
    from latentscape.errors import LatentscapeError

    try:
        return tuple(float(r) for r in text.split(","))
    except ValueError:
        raise LatentscapeError(f"--ratio got '{text}'; accepted: numbers from 0 to 1, comma-separated.") from None


def run_mix(args: argparse.Namespace) -> int:
    from latentscape.interfaces.common import load_model
    from latentscape.workflows.mix import MixConfig, _ratios, mix
    from latentscape.workflows.render import as_keyframe

    check_outputs(args)
    ratios = _ratios(parse_ratios(args.ratio))
    as_keyframe(args.content, "CONTENT"), as_keyframe(args.style, "STYLE")
    config = MixConfig(content=args.content, style=args.style, ratio=tuple(ratios), mode=args.mode, seed=args.seed, **options(args))
    model = load_model(args, config)
    out = mix(model, config, callback=progress(args, model))
    paths = write_images(args, out, "mix")
    report(args, model, out, {"workflow": "mix", "mode": args.mode, "seed": out.info["seed"],
                              "outputs": [{"path": str(p), "ratio": r} for p, r in zip(paths, ratios)]},
           [f"wrote {p} ({args.mode}, ratio {r:g})" for p, r in zip(paths, ratios)])
    return 0
