"""`smoothness PATH`: how even the steps of a frame folder, GIF, WebP or video are, by two distances."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "smoothness", help="score how even the steps of a frame folder, GIF, WebP or video are",
        description="Measure the distance between adjacent frames of any sequence (a folder of images, an animated "
                    "GIF/WebP/PNG, an MP4 or other video, from latentscape or any other tool) by the perceptual "
                    "distance morph pacing uses and by an independent structural one (1 - SSIM over three scales), "
                    "and report max/mean step, 1 - Gini (AID), ISTD (Smooth Diffusion) and path length.",
    )  # fmt: skip
    p.add_argument("path", metavar="PATH", help="a folder of frames (natural name order), a .gif/.webp/.png animation or a video")
    p.add_argument("--distance", default="auto", choices=["auto", "lab", "lpips"],
                   help="the perceptual distance: lpips when installed with local weights, else lab (multi-scale CIELAB)")
    p.add_argument("--loop", action="store_true", help="score it as a loop: the last frame also steps back to the first")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.set_defaults(func=run_smoothness)


def run_smoothness(args: argparse.Namespace) -> int:
    from latentscape.interfaces.common import emit, json_result
    from latentscape.workflows.smoothness import score_sequence

    report, metric = score_sequence(args.path, args.distance, closed=args.loop)
    lines = [f"{args.path}: {report.frames} frames{' (as a loop)' if args.loop else ''}"]
    lines += [f"  {name}: {stats.describe()}" for name, stats in report.stats.items()]
    emit(args, json_result(args, "smoothness", [], None, path=args.path, perceptual_distance=metric, closed=args.loop, **report.to_dict()),
         "\n".join(lines))
    return 0
