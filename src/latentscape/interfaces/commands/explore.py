"""`explore POINT`: a neighbourhood grid around a prompt and seed, or an image, in noise space."""

from __future__ import annotations

import argparse

from latentscape.interfaces.commands._creative import add_common, add_image_mode, check_outputs, options, progress, report, write_grid


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explore", help="neighbourhood grid around a prompt+seed or an image",
        description="A grid around POINT (a prompt, PROMPT@SEED or an image) in noise space: the centre is the point's image; "
                    "the cell at offset (u, v) is a variation of strength radius*|(u, v)| along two fixed directions. An image "
                    "is inverted, so the centre is its VAE round trip and the cells vary its inversion (--image-mode noise: "
                    "img2img of the image at --strength from each cell's noise). Writes a labelled sheet (-o) whose recipe "
                    "replays it; --save-cells writes every cell.",
    )
    p.add_argument("point", help="a prompt, PROMPT@SEED or an image (a path or image:PATH)")
    p.add_argument("--grid", default="5x5", help="COLUMNSxROWS, odd numbers (default 5x5)")
    p.add_argument("--radius", type=float, default=0.3, help="variation strength at the middle of the edges, 0..1 (default 0.3)")
    p.add_argument("--cond-jitter", type=float, default=0.0, help="also move the conditioning, growing from the centre (0 = off)")
    p.add_argument("--strength", type=float, default=0.5, help="with an image and --image-mode noise: img2img denoising strength, (0, 1] (default 0.5)")
    add_image_mode(p, "each cell is an img2img of the image at --strength from its noise")
    add_common(p, grid=True, default_hint="outputs/NNNNN-explore.png")
    p.set_defaults(func=run_explore)


def run_explore(args: argparse.Namespace) -> int:
    from latentscape.interfaces.common import load_model
    from latentscape.workflows.explore import ExploreConfig, explore
    from latentscape.workflows.grids import parse_grid
    from latentscape.workflows.render import as_keyframe

    check_outputs(args)
    parse_grid(args.grid, odd=True)
    as_keyframe(args.point, "POINT")
    config = ExploreConfig(point=args.point, seed=args.seed, grid=args.grid, radius=args.radius, cond_jitter=args.cond_jitter,
                           strength=args.strength, image_mode=args.image_mode, **options(args))
    model = load_model(args, config)
    out = explore(model, config, callback=progress(args, model))
    path, cells = write_grid(args, out, "explore")
    inversion = out.info["inversion"]
    how = "" if out.info["mode"] == "prompt" else f", img2img at strength {args.strength:g}" if inversion is None else (
        ", image inverted " + ("(from the cache)" if inversion["cached"] else f"({inversion['seconds']:g} s)"))
    report(args, model, out, {"workflow": "explore", "mode": out.info["mode"], "seed": out.info["seed"], "inversion": inversion,
                              "sheet": str(path), "cells": [str(c) for c in cells]},
           [f"wrote {path} ({len(out.images)} cells, seed {out.info['seed']}{how})"]
           + ([f"wrote {len(cells)} cells to {args.save_cells}"] if cells else []))
    return 0
