"""`map CORNER CORNER CORNER CORNER` or `map --images DIR`: a 2-D latent map, as a labelled sheet and an HTML page."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from latentscape.interfaces.commands._creative import add_common, add_image_mode, check_outputs, options, progress, report, write_grid
from latentscape.workflows.keyframes import KEYFRAME_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "map", help="2-D latent map between four keyframes, or PCA of a folder",
        description="A grid between four corners (top-left, top-right, bottom-left, bottom-right) by bilinear slerp of "
                    "their noises and lerp of their conditionings (each corner cell is that corner's own image), or with "
                    "--images DIR the PCA projection of the folder's latents. Writes a labelled sheet (-o) and a "
                    "self-contained HTML page (--html) that shows each cell's coordinates and recipe on hover.",
    )
    p.add_argument("corners", nargs="*", metavar="CORNER", help=f"four corners, each {KEYFRAME_HELP}")
    p.add_argument("--images", default=None, metavar="DIR", help="map a folder of images by PCA of their latents instead")
    p.add_argument("--grid", default="7x7", help="COLUMNSxROWS, each 2 to 16 (default 7x7)")
    p.add_argument("--strength", type=float, default=0.5, help="with --image-mode noise: img2img strength when a corner is an image (0 = decode the latent grid)")
    add_image_mode(p, "corners become latents, interpolated and repainted by img2img at --strength")
    p.add_argument("--html", default=None, help="the HTML page to write (default: the sheet's path with .html)")
    add_common(p, grid=True, default_hint="outputs/NNNNN-map.png")
    p.set_defaults(func=run_map)


def run_map(args: argparse.Namespace) -> int:
    from latentscape.interfaces.common import load_model
    from latentscape.workflows.grids import parse_grid
    from latentscape.workflows.latent_map import MapConfig, check_corners, folder_images, latent_map
    from latentscape.workflows.common import require

    check_outputs(args, (args.html, (".html", ".htm"), "--html"))
    if args.images is not None:
        require(not args.corners, "map takes either four CORNER arguments or --images DIR, not both.")
        folder_images(args.images)
    else:
        check_corners(args.corners)
        parse_grid(args.grid, minimum=2)
    config = MapConfig(corners=tuple(args.corners), grid=args.grid, seed=args.seed, strength=args.strength,
                       image_mode=args.image_mode, images_dir=args.images, **options(args))
    model = load_model(args, config)
    out = latent_map(model, config, callback=progress(args, model))
    path, cells = write_grid(args, out, "map")
    html_path = Path(args.html) if args.html else path.with_suffix(".html")
    write_html(out, html_path, config)
    report(args, model, out, {"workflow": "map", "mode": out.info["mode"], "sheet": str(path), "html": str(html_path),
                              "cells": [str(c) for c in cells]},
           [f"wrote {path} and {html_path} ({out.info['mode']} map)"] + ([f"wrote {len(cells)} cells to {args.save_cells}"] if cells else []))
    return 0


def write_html(out, path: Path, config) -> None:
    from latentscape.io.html_map import Cell, page, write_page
    from latentscape.workflows.grids import cell_scale

    meta = out.info["cells_meta"]
    if out.info["mode"] == "pca":
        coords = out.info["coords"]
        lo, hi = coords.min(dim=0).values, coords.max(dim=0).values
        span = (hi - lo).clamp_min(1e-12)
        recipe = out.recipes[0].to_json()
        cells = [Cell(image, Path(m["file"]).name, {"PC1": f"{m['pc1']:.3f}", "PC2": f"{m['pc2']:.3f}", "file": m["file"]}, recipe,
                      x=float((x - lo[0]) / span[0]), y=float(1 - (y - lo[1]) / span[1]))
                 for image, m, (x, y) in zip(out.info["cells"], meta, coords.tolist())]
        ev = out.info["explained_variance"]
        text = page(f"latent map: PCA of {config.images_dir}", cells, scatter=True, scale=cell_scale(cells[0].image.width),
                    subtitle=f"PC1 explains {ev[0] * 100:.1f}% and PC2 {ev[1] * 100:.1f}% of the latents' variance; x = PC1, y = PC2 (up).")
    else:
        cols = out.info["grid"][0]
        corners = out.info["corners"]
        cells = [Cell(image, f"cell ({m['col']}, {m['row']})",
                      {"u": f"{m['u']:.3f}", "v": f"{m['v']:.3f}", "CFG": f"{m['cfg']:.3g}", "seed": r.seed}, r.to_json(),
                      row=m["row"], col=m["col"])
                 for image, m, r in zip(out.images, meta, out.recipes)]
        text = page("latent map: " + json.dumps(corners, ensure_ascii=False), cells, cols=cols,
                    scale=cell_scale(cells[0].image.width),
                    subtitle=f"corners: top-left {corners[0]}, top-right {corners[1]}, bottom-left {corners[2]}, "
                             f"bottom-right {corners[3]}; u runs left to right, v top to bottom.")
    write_page(path, text)
