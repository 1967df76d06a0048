"""2-D latent maps: a grid between four keyframes, or a PCA projection of a folder of images.

Corners (TOP-LEFT, TOP-RIGHT, BOTTOM-LEFT, BOTTOM-RIGHT), cell (u, v) with u, v ∈ [0, 1] across and down:

- prompts and seeds only: the noise is the bilinear slerp ``slerp(slerp(TL, TR, u), slerp(BL, BR, u), v)``
  of the corners' noises, the conditioning and CFG the bilinear lerp of theirs; each corner cell is that
  corner's standalone ``generate`` image (a stochastic sampler's step noise follows the nearest corner).
- with an image corner, ``image_mode="invert"`` (the default): image corners are inverted
  (:mod:`latentscape.workflows.plan`) and interpolate like prompt corners (their inversion's noise
  bilinearly, their per-step noise streams with the bilinear weights, caption and CFG (own, else 1)), so an
  image corner's cell is the image's VAE round trip;
- with an image corner, ``image_mode="noise"``: every corner becomes a latent (images VAE-encoded, prompts rendered standalone),
  the latents are bilinearly interpolated and repainted by img2img at ``strength`` with the bilinear
  noise and conditioning (0 decodes them as they are, so the corners are the corner images' latents).

``images_dir``: the images of a folder, VAE-encoded, projected on the first two principal components of
their latents (PCA by SVD of the centred latents; each component's sign is fixed so its largest loading
is positive) and drawn at those coordinates. The recipe records the files it used (``images``, and each
file's SHA-256 in its inputs), so a replay maps exactly those, whatever the folder holds by then.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image, ImageDraw

from latentscape.core.interpolate import lerp, slerp
from latentscape.io.grid import _font, contact_sheet
from latentscape.models.family import Family
from latentscape.sampling import StepCallback
from latentscape.workflows.common import Output, config_dict, decode_images, make_recipe, require
from latentscape.workflows.grids import GridOptions, check_returns, finish, grid_text, parse_grid, sheet
from latentscape.workflows.job import prepare_job
from latentscape.workflows.keyframes import IMAGE_EXTENSIONS, KEYFRAME_HELP, Keyframe
from latentscape.workflows.plan import weighted_step_noise
from latentscape.workflows.render import (
    MAX_CELLS, anchor_latents, as_keyframe, cfg_of, check_keyframe_cfgs, check_options, encode_job, image_inputs, image_latents, inverted_anchors,
    job_size, lerp_conditioning, render, seed_noise,
)

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass(frozen=True, kw_only=True)
class MapConfig(GridOptions):
    """A ``grid`` (COLUMNSxROWS, each >= 2) between four ``corners`` (TL, TR, BL, BR), or with ``images_dir``
    a PCA map of that folder's images. ``seed`` is the seed of corners that name none. ``images``: the
    folder's files to map (empty: all image files in it, listed when the map runs and recorded)."""

    corners: tuple[Keyframe | str, ...] = ()
    grid: str = "7x7"
    seed: int = -1
    strength: float = 0.5  # image_mode noise only
    image_mode: str = "invert"
    images_dir: str | None = None
    images: tuple[str, ...] = ()

    KEYFRAME_FIELDS: ClassVar[tuple[str, ...]] = ("corners",)


def bilinear_uv(cols: int, rows: int) -> list[tuple[float, float]]:
    """(u, v) per cell, row-major: u = column/(cols−1), v = row/(rows−1)."""
    return [(c / (cols - 1), r / (rows - 1)) for r in range(rows) for c in range(cols)]


def bilinear(corners: torch.Tensor, u: torch.Tensor, v: torch.Tensor, fn=slerp) -> torch.Tensor:
    """``fn(fn(TL, TR, u), fn(BL, BR, u), v)`` per cell; ``corners`` (4, ...), u and v (N,) -> (N, ...)."""
    n = u.shape[0]

    def rep(i: int) -> torch.Tensor:
        return corners[i:i + 1].expand(n, *corners.shape[1:]).contiguous()

    return fn(fn(rep(0), rep(1), u), fn(rep(2), rep(3), u), v)


def check_corners(corners) -> list[Keyframe]:
    require(len(corners) == 4, f"map got {len(corners)} corners; accepted: four ({', '.join(CORNERS)}), each {KEYFRAME_HELP}, or --images DIR.")
    keyframes = [as_keyframe(c, f"{name} corner") for c, name in zip(corners, CORNERS)]
    check_keyframe_cfgs(keyframes)
    return keyframes


def latent_map(model: Family, config: MapConfig, *, callback: StepCallback | None = None) -> Output:
    """The map's cells (or its sheet) with recipes; ``info["cells_meta"]`` feeds the HTML page."""
    check_options(model, config)
    check_returns(config)
    if config.images_dir is not None:
        require(not config.corners, "map takes either four corners or --images DIR, not both.")
        return _pca_map(model, config)
    require(not config.images, "map got image files to map but no --images DIR; pass the folder they come from.")
    corners = check_corners(config.corners)
    cols, rows = parse_grid(config.grid, minimum=2)
    job = prepare_job(model, config, corners)
    corners, images, inverted, seed, shape = job.keyframes, job.images, job.inverted, job.seed, job.shape
    width, height = job.size

    uv = bilinear_uv(cols, rows)
    n = len(uv)
    u = torch.tensor([p[0] for p in uv], dtype=torch.float64)
    v = torch.tensor([p[1] for p in uv], dtype=torch.float64)
    cfgs4 = [cfg_of(model, config, k.cfg, inverted_image=inverted and k.image is not None) for k in corners]
    cond4, uncond4 = encode_job(model, config, [k.prompt or "" for k in corners], cfgs4)
    anchors = inverted_anchors(model, config, corners, cfgs4, shape, (width, height)) if inverted else None
    noise4 = anchors.noise if anchors is not None else seed_noise([k.seed for k in corners], shape)[0]
    noise = bilinear(noise4, u, v)
    cond = lerp_conditioning(lerp_conditioning(cond4.select([0] * n), cond4.select([1] * n), u),
                             lerp_conditioning(cond4.select([2] * n), cond4.select([3] * n), u), v)
    uncond = uncond4.select([0] * n) if uncond4 is not None else None
    cfgs = [((1 - a) * cfgs4[0] + a * cfgs4[1]) * (1 - b) + ((1 - a) * cfgs4[2] + a * cfgs4[3]) * b for a, b in uv]
    nearest = [int(round(b)) * 2 + int(round(a)) for a, b in uv]
    _, generators = seed_noise([corners[i].seed for i in nearest], shape)

    if not images or anchors is not None:
        mode = "inverted" if anchors is not None else "noise"
        weights = torch.stack([(1 - u) * (1 - v), u * (1 - v), (1 - u) * v, u * v], dim=1)  # (n, 4) bilinear
        step_noise = weighted_step_noise(anchors.streams, weights) if anchors is not None else None
        latents = render(model, config, noise, cond, uncond, cfgs, generators, step_noise=step_noise, callback=callback)
    else:
        mode = "latent"
        corner_latents = anchor_latents(model, config, corners, cond4, uncond4, cfgs4, shape, (width, height), callback)
        grid_latents = bilinear(corner_latents, u, v, fn=lerp)
        if config.strength == 0:
            latents = grid_latents
        else:
            latents = render(model, config, noise, cond, uncond, cfgs, generators, init_latents=grid_latents,
                             strength=config.strength, callback=callback)
    cells = decode_images(model, latents)

    resolved = dataclasses.replace(config, corners=tuple(corners), seed=seed, grid=grid_text(cols, rows), width=width, height=height)
    labels = [k.label() or "(empty)" for k in corners]
    col_labels = [f"u={a:.2f}" for a, _ in uv[:cols]]
    row_labels = [f"v={b:.2f}" for _, b in uv[::cols]]
    title = f"map: {labels[0]} | {labels[1]} / {labels[2]} | {labels[3]}"
    image = sheet(cells, cols, row_labels, col_labels, title)
    seeds = [corners[i].seed for i in nearest]
    # each cell's infotext names its nearest corner's prompt and seed (a corner cell is exactly that corner's
    # image; in between, the nearest standalone image) and its own interpolated CFG and (u, v)
    corner_seeds = " | ".join(str(k.seed) for k in corners)
    extras = [{"Map": f"u {a:.3f} v {b:.3f}", "CFG scale": round(c, 6), "Map corner seeds": corner_seeds}
              for (a, b), c in zip(uv, cfgs)]
    if mode == "latent":
        extras = [{**e, "Denoising strength": config.strength} for e in extras]
    elif mode == "inverted":
        extras = [{**e, "Image mode": "invert"} for e in extras]
    meta = [{"u": a, "v": b, "row": i // cols, "col": i % cols, "cfg": c} for i, ((a, b), c) in enumerate(zip(uv, cfgs))]
    info = {"mode": mode, "grid": (cols, rows), "corners": labels, "cells_meta": meta, "width": width, "height": height, "seed": seed}
    return finish(model, "map", resolved, cells, latents, seeds, image, cell_extras=extras,
                  sheet_extra={"Map": f"{cols}x{rows} grid"}, inputs=image_inputs(images), info=info,
                  cell_prompts=[corners[i].prompt or "" for i in nearest])


# --- PCA of a folder --------------------------------------------------------------------------------
def folder_images(folder: str) -> list[str]:
    path = Path(folder)
    require(path.is_dir(), f"--images got '{folder}', which is not a folder; accepted: a folder of image files.")
    files = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    require(2 <= len(files) <= MAX_CELLS,
            f"--images folder '{folder}' has {len(files)} images; accepted: 2 to {MAX_CELLS} files ending in {', '.join(IMAGE_EXTENSIONS)}.")
    return files


def pca_2d(x: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """Coordinates (N, 2) of the items of ``x`` (N, ...) on their first two principal components, and the
    fraction of the variance each explains. Signs are fixed: each component's largest loading is positive."""
    flat = x.reshape(x.shape[0], -1).double()
    centred = flat - flat.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    k = min(2, vh.shape[0])
    comps = vh[:k]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    comps = comps * torch.where(signs == 0, torch.ones_like(signs), signs)
    coords = centred @ comps.T
    if k < 2:
        coords = torch.cat([coords, torch.zeros(coords.shape[0], 2 - k, dtype=coords.dtype)], dim=1)
    var = s.pow(2)
    explained = (var[:2] / var.sum().clamp_min(1e-30)).tolist() + [0.0] * (2 - k)
    return coords.float(), [float(e) for e in explained]


def scatter(images: list[Image.Image], coords: torch.Tensor, labels: list[str], explained: list[float], title: str) -> Image.Image:
    """The images placed at their (x, y) coordinates (y up) on a square canvas with axis captions."""
    scale = max(1, 64 // max(images[0].width, 1))
    thumbs = [im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST) for im in images]
    tw, th = thumbs[0].size
    side = max(6, int(round(len(images) ** 0.5 * 2))) * max(tw, th) // 2 + max(tw, th)
    margin = 24
    caption = contact_sheet([Image.new("RGB", (side, 1), (255, 255, 255))], 1, title=title, pad=0)
    canvas = Image.new("RGB", (side + 2 * margin, caption.height + side + 2 * margin), (255, 255, 255))
    canvas.paste(caption, (margin, 0))
    top = caption.height + margin
    lo, hi = coords.min(dim=0).values, coords.max(dim=0).values
    span = torch.where(hi - lo > 0, hi - lo, torch.ones_like(hi))
    draw, font = ImageDraw.Draw(canvas), _font(12)
    draw.rectangle([margin - 1, top - 1, margin + side, top + side], outline=(200, 200, 200))
    draw.text((margin, top + side + 4), f"PC1 ({explained[0] * 100:.0f}% of the variance) ->", font=font, fill=(0, 0, 0))
    draw.text((margin, top - 16), f"PC2 ({explained[1] * 100:.0f}%), up", font=font, fill=(0, 0, 0))
    for thumb, (x, y) in zip(thumbs, coords.tolist()):
        px = margin + int(round((x - float(lo[0])) / float(span[0]) * (side - tw)))
        py = top + int(round((1 - (y - float(lo[1])) / float(span[1])) * (side - th)))
        canvas.paste(thumb, (px, py))
    return canvas


def _pca_map(model: Family, config: MapConfig) -> Output:
    files = list(config.images) or folder_images(config.images_dir)  # a replay maps the files the recipe lists
    require(2 <= len(files) <= MAX_CELLS, f"map got {len(files)} image files; accepted: 2 to {MAX_CELLS}.")
    width, height = job_size(model, config, files)
    latents = image_latents(model, files, (width, height))
    coords, explained = pca_2d(latents)
    from latentscape.io.images import load_image

    pictures = [load_image(f).resize((width, height), Image.Resampling.LANCZOS) for f in files]
    labels = [Path(f).name for f in files]
    title = f"map: PCA of {len(files)} latents of {config.images_dir}"
    canvas = scatter(pictures, coords, labels, explained, title)
    resolved = dataclasses.replace(config, images=tuple(files), width=width, height=height, returns="sheet")
    recipe = make_recipe("map", model, config_dict(resolved), 0, inputs=image_inputs(files),
                         infotext_extra={"Map": f"PCA of {len(files)} images"})
    meta = [{"file": f, "pc1": float(x), "pc2": float(y)} for f, (x, y) in zip(files, coords.tolist())]
    info = {"mode": "pca", "coords": coords, "explained_variance": explained, "files": files, "cells_meta": meta,
            "cells": pictures, "sheet": canvas, "sheet_recipe": recipe, "width": width, "height": height}
    return Output(images=[canvas], latents=latents, recipes=[recipe], info=info)
