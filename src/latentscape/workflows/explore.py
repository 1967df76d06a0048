"""A neighbourhood grid around one point (a prompt and seed) in noise space.

Two directions orthogonal to the point's noise ``c`` are drawn from ``axis_seeds`` (Gram-Schmidt, each
scaled to ``‖c‖``). The cell at grid offset (u, v) ∈ [−1, 1]² (centre (0, 0), right +u, up +v) starts from

    noise = slerp(c, d, t),  d = (u·e₁ + v·e₂)/ρ,  ρ = √(u² + v²),  t = min(radius·ρ, 1)

so ``radius`` is the A1111 variation strength at the middle of each edge (corners: √2·radius): distance
grows from the centre, and the centre cell is the point's own image. ``cond_jitter`` > 0 also moves the
conditioning: each cell adds ``cond_jitter·ρ·std·z`` (z a fixed Gaussian per cell and field, std the
field's standard deviation) to the embeddings and pooled vector.

An image point (``image:PATH`` or a path), by ``image_mode`` (:mod:`latentscape.workflows.plan`):

- ``"invert"`` (the default): the image is inverted over the job's sampler and steps, under its caption
  (the point's prompt, else empty) at its CFG (its own, else 1); ``c`` is the inversion's noise, so the
  centre cell is the image's VAE round trip. Each cell keeps the inversion's per-step noise stream scaled
  by ``1 − t`` (as ``vary`` of an image does): all of it at the centre, so the centre stays exact; less
  further out, so a cell moves away from the image as its starting noise does, and ``t = 1`` (radius 1 at
  the edges) is a plain txt2img of that noise. Stochastic samplers' step noise follows the point's seed,
  the seed the inversion is recorded with.
- ``"noise"``: img2img of the image (VAE posterior mean) at ``strength`` from each cell's noise around
  ``noise(seed)``: the centre is the img2img of the point's seed, the cells the same repaint from
  neighbouring noise.

The grid takes the image's size (fitted by ``resize``); ``width``/``height`` of another size need
``resize`` stretch or crop, so the centre is never a silently rescaled image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch

from latentscape.core.interpolate import slerp
from latentscape.core.noise import resolve_seed, seeded_noise
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.sampling import StepCallback, StepNoise, start_index
from latentscape.workflows.common import Output, decode_images, require, resolve_size
from latentscape.workflows.grids import GridOptions, check_returns, finish, grid_text, parse_grid, sheet
from latentscape.workflows.keyframes import Keyframe
from latentscape.workflows.plan import anchor_noise, check_image_mode, encode_images
from latentscape.workflows.render import (
    as_keyframe, cfg_of, check_keyframe_cfgs, check_options, encode_job, image_inputs, render, seed_noise,
)


@dataclass(frozen=True, kw_only=True)
class ExploreConfig(GridOptions):
    """A ``grid`` (odd COLUMNSxROWS) around ``point`` (a prompt, PROMPT@SEED or an image; ``seed`` if it names none).

    ``axis_seeds`` None uses (seed + 1, seed + 2). An image point: ``image_mode`` "invert" (the default) or
    "noise" (img2img at ``strength``, 0 < strength <= 1); recipes made before the field read as "noise".
    """

    point: Keyframe | str = ""
    seed: int = -1
    grid: str = "5x5"
    radius: float = 0.3
    cond_jitter: float = 0.0
    axis_seeds: tuple[int, int] | None = None
    strength: float = 0.5  # image point, image_mode noise only
    image_mode: str = "invert"

    KEYFRAME_FIELDS: ClassVar[tuple[str, ...]] = ("point",)


def offsets(cols: int, rows: int) -> list[tuple[float, float]]:
    """(u, v) per cell, row-major from the top-left: u from −1 (left) to 1, v from 1 (top) to −1."""
    def axis(i: int, n: int) -> float:
        return 0.0 if n == 1 else (i - (n - 1) / 2) / ((n - 1) / 2)

    return [(axis(c, cols), -axis(r, rows)) for r in range(rows) for c in range(cols)]


def _orthogonal_axes(centre: torch.Tensor, seeds: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two directions (1, ...) orthogonal to ``centre`` and to each other, each of norm ‖centre‖."""
    c = centre.double().flatten()
    norm = c.norm()
    axes: list[torch.Tensor] = []
    for s in seeds:
        x = seeded_noise([s], centre.shape[1:]).double().flatten()
        for basis in [c, *axes]:
            x = x - (x @ basis) / (basis @ basis) * basis
        axes.append(x / x.norm() * norm)
    return tuple(a.reshape(centre.shape).float() for a in axes)  # type: ignore[return-value]


def neighbourhood_noise(centre: torch.Tensor, uv: list[tuple[float, float]], radius: float, axis_seeds: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(noise (N, ...), t (N,)): the cells' noises around ``centre`` (1, ...) as in the module docstring."""
    e1, e2 = _orthogonal_axes(centre, axis_seeds)
    uv_t = torch.tensor(uv, dtype=torch.float64)
    rho = uv_t.norm(dim=1)
    t = (radius * rho).clamp(max=1.0)
    safe = torch.where(rho > 0, rho, torch.ones_like(rho))
    u = (uv_t[:, 0] / safe).reshape(-1, *([1] * (centre.ndim - 1)))
    v = (uv_t[:, 1] / safe).reshape(-1, *([1] * (centre.ndim - 1)))
    direction = torch.where(rho.reshape(u.shape) > 0, u * e1.double() + v * e2.double(), e1.double()).float()
    n = len(uv)
    return slerp(centre.expand(n, *centre.shape[1:]).contiguous(), direction, t), t


def jitter(cond: Conditioning, rho: torch.Tensor, amount: float, seed: int) -> Conditioning:
    """``cond`` (N items) moved by ``amount·ρ·std·z`` per item (z seeded per item from ``seed``)."""
    if amount == 0:
        return cond
    gens = [torch.Generator("cpu").manual_seed(seed + i) for i in range(len(cond))]

    def move(x: torch.Tensor) -> torch.Tensor:
        z = torch.cat([torch.randn((1, *x.shape[1:]), generator=g) for g in gens]).to(x.device, x.dtype)
        scale = (amount * rho).to(x.device, x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return x + scale * x.std() * z

    return cond.map(move)


def point_image(model: Family, config: ExploreConfig, path: str):
    """The point's image at the grid's size, and that size: the image's own (fitted to the model's multiple
    by ``config.resize``), or ``width`` x ``height``, which an image of another size only meets by
    ``resize`` stretch or crop."""
    from latentscape.io.images import load_image
    from latentscape.workflows.morph_images import RESIZE_HINT, load_keyframe_images

    if config.width and config.height and config.resize == "none":
        w, h = load_image(path).size
        require((w, h) == (config.width, config.height),
                f"POINT image '{path}' is {w}x{h} but --size asks for {config.width}x{config.height}; accepted: an image of "
                f"that size, no --size (the grid takes the image's), or {RESIZE_HINT}.")
    images, size = load_keyframe_images([Keyframe(image=path)], config.width, config.height, config.resize,
                                        model.latent_format.size_multiple)
    return images[0], size


def explore(model: Family, config: ExploreConfig, *, callback: StepCallback | None = None) -> Output:
    """The neighbourhood grid of ``config.point``: cells (or the sheet) with recipes."""
    check_options(model, config)
    check_returns(config)
    cols, rows = parse_grid(config.grid, odd=True)
    require(0 <= config.radius <= 1, f"--radius got {config.radius}; accepted: a number from 0 to 1 (the variation strength at the edges).")
    require(0 <= config.cond_jitter <= 10, f"--cond-jitter got {config.cond_jitter}; accepted: a number from 0 (off) to 10.")
    check_image_mode(config.image_mode)
    point = as_keyframe(config.point, "POINT")
    check_keyframe_cfgs([point])
    path = point.image
    inverted = path is not None and config.image_mode == "invert"
    if path is not None and not inverted:
        require(0 < config.strength <= 1 and start_index(config.steps, config.strength) < config.steps,
                f"--strength got {config.strength} with {config.steps} steps; accepted with --image-mode noise: a number in "
                f"(0, 1] of at least {1 / config.steps:.3g} (the img2img denoising strength).")
    seed = resolve_seed(point.seed if point.seed is not None else config.seed)
    axis_seeds = tuple(config.axis_seeds) if config.axis_seeds is not None else (seed + 1, seed + 2)
    require(len(axis_seeds) == 2, f"axis_seeds got {axis_seeds}; accepted: two seeds.")
    point = dataclasses.replace(point, seed=seed, prompt=point.prompt or "")
    picture, (width, height) = point_image(model, config, path) if path is not None else (
        None, resolve_size(model, config.width, config.height))
    shape = model.latent_format.latent_shape(width, height)

    uv = offsets(cols, rows)
    n = len(uv)
    cfg = cfg_of(model, config, point.cfg, inverted_image=inverted)
    step_noise, init, inversion = None, None, None
    if inverted:
        anchor = anchor_noise(model, [seed], shape, images={0: picture}, prompts=[point.prompt], cfgs=[cfg],
                              negative=config.negative, sampler=config.sampler, steps=config.steps, true_cfg=config.true_cfg)
        centre, made = anchor.noise, anchor.inverted[0]
        inversion = {"cached": made.cached, "seconds": round(made.seconds, 3)}  # type: ignore[union-attr]
    else:
        centre, _ = seed_noise([seed], shape)
    noise, t = neighbourhood_noise(centre, uv, config.radius, axis_seeds)
    if inverted:
        stream = anchor.streams[0]
        keep = (1 - t).float().reshape(1, n, *([1] * (stream.noise.ndim - 2)))  # type: ignore[union-attr]
        step_noise = StepNoise(stream.noise.expand(-1, n, *stream.noise.shape[2:]) * keep, stream.scales)  # type: ignore[union-attr]
    elif picture is not None:
        init = encode_images(model, [picture]).expand(n, *shape).contiguous()
    _, generators = seed_noise([seed] * n, shape)  # step noise of stochastic samplers follows the point's seed
    cond, uncond = encode_job(model, config, [point.prompt], [cfg])
    rho = torch.tensor(uv, dtype=torch.float64).norm(dim=1).float()
    cells_cond = jitter(cond.select([0] * n), rho, config.cond_jitter, seed + 1_000_003)
    latents = render(model, config, noise, cells_cond, uncond.select([0] * n) if uncond is not None else None,
                     [cfg] * n, generators, init_latents=init, strength=config.strength if init is not None else 1.0,
                     step_noise=step_noise, callback=callback)
    cells = decode_images(model, latents)

    resolved = dataclasses.replace(config, point=point, seed=seed, grid=grid_text(cols, rows), axis_seeds=axis_seeds,
                                   cfg=cfg, width=width, height=height)
    col_labels = [f"{u * config.radius:+.2f}" for u, _ in uv[:cols]]
    row_labels = [f"{v * config.radius:+.2f}" for _, v in uv[::cols]]
    what = f"{point.prompt or '(no prompt)'} @ seed {seed}" if path is None else (
        f"{point.label()} ({'inverted' if inverted else f'img2img {config.strength:g}, seed {seed}'})")
    title = f"explore: {what}, radius {config.radius:g}" + (f", cond jitter {config.cond_jitter:g}" if config.cond_jitter else "")
    image = sheet(cells, cols, row_labels, col_labels, title)
    # Not A1111's "Variation seed strength": a cell's noise is slerped towards a mix of two orthogonalised
    # directions, not towards one seed's noise, so no A1111 variation seed makes it. The fields say what it is.
    mode_extra = {} if path is None else {"Image mode": "invert"} if inverted else {"Denoising strength": config.strength}
    extras = [{"Explore": f"u {u:+.2f} v {v:+.2f}", "Explore strength": round(float(ti), 6),
               "Explore axis seeds": f"{axis_seeds[0]} {axis_seeds[1]}", **mode_extra} for (u, v), ti in zip(uv, t)]
    mode = "prompt" if path is None else "inverted" if inverted else "img2img"
    info = {"mode": mode, "seed": seed, "grid": (cols, rows), "offsets": uv, "strengths": [float(x) for x in t],
            "width": width, "height": height, "inversion": inversion}
    return finish(model, "explore", resolved, cells, latents, [seed] * n, image, cell_extras=extras,
                  sheet_extra={"Explore": f"{cols}x{rows} grid; radius {config.radius:g}"},
                  inputs=image_inputs([path] if path is not None else []), info=info, cell_prompts=[point.prompt] * n)
