"""`sweep PROMPT`: a CFG grid (rows seeds, columns CFG) and a chart of adherence and diversity against CFG."""

from __future__ import annotations

import argparse
from pathlib import Path

from latentscape.interfaces.commands._creative import add_common, check_outputs, options, progress, report, write_grid


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="CFG grid with an adherence/diversity chart", conflict_handler="resolve",
        description="Render PROMPT(s) for --seeds seeds at each CFG scale in one batch; write the labelled grid (-o) and a "
                    "chart (--chart) of prompt adherence (caption retrieval on the embedded model, CLIP score with "
                    "--clip-model) and diversity (mean pairwise pixel distance between seeds) against CFG.",
    )
    p.add_argument("prompts", nargs="+", metavar="PROMPT")
    add_common(p, grid=True, default_hint="outputs/NNNNN-sweep.png")
    p.add_argument("--cfg", default="1,3,5,7.5,10,15", help="CFG scales, comma-separated (default 1,3,5,7.5,10,15)")
    p.add_argument("--seeds", type=int, default=4, help="seeds per prompt: --seed, --seed + 1, ... (default 4)")
    p.add_argument("--chart", default=None, help="the chart PNG (default: the sheet's path with -chart.png)")
    p.add_argument("--adherence", default="auto", choices=["auto", "classifier", "clip", "none"],
                   help="auto: caption retrieval on the embedded model, CLIP with --clip-model, else none")
    p.add_argument("--clip-model", default=None, help="a local CLIP model folder for CLIP scores (never downloaded)")
    p.add_argument("--candidates", default=None, help="captions for caption retrieval, separated by '|' (default: the emoji set)")
    p.add_argument("--emoji-data", default=None, help="the emoji data set (emoji64.npz): add nearest-training-image accuracy")
    p.set_defaults(func=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    from latentscape.interfaces.common import load_model
    from latentscape.io.recipe import save_png
    from latentscape.workflows.sweep import SweepConfig, parse_cfgs, sweep

    check_outputs(args, (args.chart, (".png",), "--chart"))
    cfgs = parse_cfgs(args.cfg)
    opts = {k: v for k, v in options(args).items() if k != "cfg"}
    candidates = tuple(c.strip() for c in args.candidates.split("|") if c.strip()) if args.candidates else None
    config = SweepConfig(prompts=tuple(args.prompts), cfgs=cfgs, seeds=args.seeds, seed=args.seed, adherence=args.adherence,
                         clip_model=args.clip_model, candidates=candidates, emoji_data=args.emoji_data, **opts)
    model = load_model(args, config)
    from latentscape.workflows.sweep import check

    check(model, config)
    out = sweep(model, config, callback=progress(args, model))
    path, cells = write_grid(args, out, "sweep")
    chart_path = Path(args.chart) if args.chart else path.with_name(path.stem + "-chart.png")
    from latentscape.workflows.inputs import anchor_inputs

    save_png(out.info["chart"], chart_path, anchor_inputs(out.info["chart_recipe"], chart_path))
    table = [{k: v for k, v in row.items() if k != "predicted"} for row in out.info["table"]]
    lines = [f"wrote {path} and {chart_path}", format_table(table)]
    if cells:
        lines.append(f"wrote {len(cells)} cells to {args.save_cells}")
    report(args, model, out, {"workflow": "sweep", "seed": out.info["seed"], "sheet": str(path), "chart": str(chart_path),
                              "adherence": out.info["adherence"], "table": table, "cells": [str(c) for c in cells]}, lines)
    return 0


def format_table(table: list[dict]) -> str:
    keys = [k for k in table[0] if k != "cfg"]
    head = "CFG     " + "  ".join(f"{k:>16}" for k in keys)
    rows = [f"{row['cfg']:<7g} " + "  ".join(f"{row[k]:>16.3f}" if isinstance(row[k], float) else f"{str(row[k]):>16}" for k in keys)
            for row in table]
    return "\n".join([head, *rows])
