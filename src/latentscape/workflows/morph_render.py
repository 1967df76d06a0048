"""Rendering morph frames: per-keyframe anchors, and a batch of path points through the one denoising loop.

A keyframe's anchor is exactly what a standalone ``generate`` of it starts from: its seed's CPU noise (and
the generator, positioned after that noise, whose later draws are a stochastic sampler's step noise), its
prompt's conditioning encoded on its own, its CFG, and for img2img its starting latents. A frame at
``t`` between keyframes a and b interpolates all of them; at t = 0 every interpolation returns a's values
bit for bit, so the frame on a keyframe is that keyframe's standalone image.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from PIL import Image

from latentscape.core.interpolate import INTERPOLATORS
from latentscape.core.noise import draw_noise, seeded_generators
from latentscape.core.paths import guidance_curve, locate
from latentscape.core.prompt_syntax import interpolate_weighted
from latentscape.io.frame_files import FrameFiles
from latentscape.io.images import load_image
from latentscape.io.recipe import Recipe
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.samplers import resolve_sampler
from latentscape.sampling import NoisePath, StepCallback, StepNoise
from latentscape.workflows.common import decode_images, encode
from latentscape.workflows.plan import Items, point_step_noise, render

Point = tuple[int, int, float]  # (keyframe a, keyframe b, t)


@dataclass(frozen=True)
class RenderSettings:
    """The sampling parameters every frame shares."""

    sampler: str
    steps: int
    true_cfg: float
    guidance_rescale: float
    cfg_dip: float
    strength: float  # img2img only
    interpolation: str  # noise and img2img latents
    cond_interpolation: str  # prompt conditioning (incl. pooled vectors)
    # value schedules: a point's own cfg (final, after any dip), guidance_rescale and strength where scheduled
    scheduled: Callable[[Point], Mapping[str, float]] | None = None


@dataclass
class Anchors:
    """What frames are interpolated from, one entry per keyframe."""

    noise: torch.Tensor  # (K, C, h, w)
    sources: list[torch.Generator]  # per keyframe, after its initial noise: stochastic samplers' step noise
    cond: Conditioning  # K items
    uncond: Conditioning | None  # 1 item, shared
    cfg: list[float]  # the CFG each keyframe uses
    latents: torch.Tensor | None = None  # (K, C, h, w) img2img starting latents; None for txt2img
    step_noise: list[StepNoise | None] | None = None  # per keyframe: an inverted image's per-step noise
    prompts: list[str] = field(default_factory=list)  # per keyframe: weighted prompts interpolate their weights
    weighted: dict[str, Conditioning] = field(default_factory=dict)  # in-between weighted prompts, encoded once


def build_anchors(
    model: Family,
    prompts: Sequence[str],
    seeds: Sequence[int],
    cfgs: Sequence[float],
    negative: str,
    shape: Sequence[int],
    true_cfg: float,
) -> Anchors:
    """Noise, step-noise generators and conditioning per keyframe, each made as ``generate`` makes it
    (every prompt encoded alone, as a batch of one, so its conditioning is bit-identical)."""
    noise, sources = [], []
    for seed in seeds:
        gens = seeded_generators([seed])
        noise.append(draw_noise(gens, shape))
        sources.append(gens[0])
    need_uncond = any(model.uses_cfg(model.split_guidance(c, true_cfg)[0]) for c in cfgs)
    cache: dict[str, Conditioning] = {}
    uncond = None
    for p in prompts:
        if p not in cache:
            cache[p], un = encode(model, [p], [negative], need_uncond and uncond is None)
            uncond = uncond if uncond is not None else un
    *conds, uncond = model.match_lengths([*(cache[p] for p in prompts), uncond])  # chunked prompts: one length
    cond = Conditioning.cat(conds)
    return Anchors(noise=torch.cat(noise), sources=sources, cond=cond, uncond=uncond, cfg=[float(c) for c in cfgs],
                   prompts=list(prompts))


def weighted_rows(model: Family, anchors: Anchors, points: Sequence[Point], cond: Conditioning) -> Conditioning:
    """Frames between two keyframes that are the same text with different A1111 weights (``(cat:1.0)`` ->
    ``(cat:0.0)``) get the prompt with the interpolated weights, encoded as ``generate`` would encode it,
    in place of the lerped conditioning (which A1111's mean-restoring emphasis makes only close to it).
    Keyframes themselves (t = 0 or 1) keep their own rows, so endpoints stay exact."""
    rows: list[Conditioning] | None = None
    for i, (a, b, t) in enumerate(points):
        if not model.prompt_weighting or not anchors.prompts or anchors.prompts[a] == anchors.prompts[b] or float(t) in (0.0, 1.0):
            continue
        text = interpolate_weighted(anchors.prompts[a], anchors.prompts[b], float(t))
        if text is None:
            continue
        if text not in anchors.weighted:
            anchors.weighted[text] = model.encode_prompts([text])
        rows = rows if rows is not None else [cond.select([j]) for j in range(len(points))]
        rows[i] = anchors.weighted[text]
    return cond if rows is None else Conditioning.cat(model.match_lengths(rows))


def frame_cfg(anchors: Anchors, point: Point, dip: float) -> float:
    """CFG of a frame: linear between its keyframes' CFGs, lowered towards 1 mid-segment by ``dip``."""
    a, b, t = point
    if t == 0:
        return anchors.cfg[a]
    c = (1 - t) * anchors.cfg[a] + t * anchors.cfg[b]
    return 1 + (c - 1) * guidance_curve(t, dip) if dip else c


@torch.no_grad()
def render_latents(
    model: Family,
    anchors: Anchors,
    points: Sequence[Point],
    settings: RenderSettings,
    *,
    img2img: bool,
    callback: StepCallback | None = None,
    start_step: int = 0,
    start_latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """Denoise one batch of path points (cond and uncond in one forward); returns latents (B, C, h, w).

    ``start_step`` k > 0 with ``start_latents`` (B, C, h, w): each point starts at step k from the given
    latents instead of from its noise (a frame-tree branch); conditioning, guidance and step noise (the
    stochastic samplers' interpolated draws, and inverted image keyframes' per-step noise, slerped at the
    point's t) are the point's own, as for a full render."""
    values = [settings.scheduled(p) for p in points] if settings.scheduled is not None else [{}] * len(points)
    strengths = [v.get("strength", settings.strength) for v in values]
    if img2img and not start_step and any(s != settings.strength for s in strengths):
        return _by_strength(model, anchors, points, strengths, settings, callback)
    a = [p[0] for p in points]
    b = [p[1] for p in points]
    t = torch.tensor([p[2] for p in points], dtype=torch.float64)
    interp = INTERPOLATORS[settings.interpolation]
    cond_interp = INTERPOLATORS[settings.cond_interpolation]
    noise = interp(anchors.noise[a], anchors.noise[b], t)
    cond = anchors.cond.select(a).zip_map(anchors.cond.select(b), lambda x, y: cond_interp(x, y, t))
    cond = weighted_rows(model, anchors, points, cond)
    uncond = anchors.uncond.repeat(len(points)) if anchors.uncond is not None else None

    split = [model.split_guidance(v["cfg"] if "cfg" in v else frame_cfg(anchors, p, settings.cfg_dip), settings.true_cfg)
             for p, v in zip(points, values)]
    rescale = settings.guidance_rescale
    if any("guidance_rescale" in v for v in values):
        rescale = torch.tensor([v.get("guidance_rescale", rescale) for v in values], dtype=torch.float64).float()
    scale = torch.tensor([s for s, _ in split], dtype=torch.float64)
    embedded = torch.tensor([e for _, e in split], dtype=torch.float64) if split[0][1] is not None else None
    if uncond is None and model.uses_cfg(scale):
        raise AssertionError("anchors were built without an unconditional branch")

    init = None
    if img2img and not start_step:
        assert anchors.latents is not None
        init = INTERPOLATORS["lerp"](anchors.latents[a], anchors.latents[b], t)
        if settings.strength == 0:  # strength 0 keeps the images: the interpolated latents, no steps
            return init
    stochastic = resolve_sampler(settings.sampler, model.is_flow).stochastic
    step_noise = point_step_noise(anchors.step_noise, a, b, t) if anchors.step_noise else None
    items = Items(
        noise=start_latents if start_step else noise, cond=cond, uncond=uncond, guidance_scale=scale.float(),
        embedded_guidance=embedded.float() if embedded is not None else None, guidance_rescale=rescale,
        noise_path=NoisePath(anchors.sources, a, b, t.tolist()) if stochastic else None, step_noise=step_noise,
        init_latents=init, strength=settings.strength if init is not None else 1.0, start_step=start_step,
    )
    return render(model, items, sampler=settings.sampler, steps=settings.steps, callback=callback)


def _by_strength(model: Family, anchors: Anchors, points: Sequence[Point], strengths: Sequence[float],
                 settings: RenderSettings, callback: StepCallback | None) -> torch.Tensor:
    """img2img points with scheduled strengths: one denoise per strength (each starts at its own step),
    returned in the points' order."""
    out: list[torch.Tensor | None] = [None] * len(points)
    for strength in dict.fromkeys(strengths):
        idx = [i for i, s in enumerate(strengths) if s == strength]
        part = render_latents(model, anchors, [points[i] for i in idx], dataclasses.replace(settings, strength=strength),
                              img2img=True, callback=callback)
        for j, i in enumerate(idx):
            out[i] = part[j:j + 1]
    return torch.cat(out)  # type: ignore[arg-type]


Progress = Callable[[str, int, int], None]  # (stage, frames done, frames in the stage)


class FrameRenderer:
    """Renders path positions in fixed batches of ``batch_size`` (so a resumed render batches exactly as an
    uninterrupted one), reusing frames on disk (``store``) or already rendered at the same position.

    With a ``store`` every frame goes to its PNG as its batch completes and is kept only as that path
    (``rendered`` maps positions to paths; a stage returns :class:`FrameFiles`), so memory does not grow
    with the frame count; without one, frames stay in memory."""

    def __init__(self, model: Family, anchors: Anchors, settings: RenderSettings, *, batch_size: int, closed: bool,
                 img2img: bool, store=None, callback: StepCallback | None = None, progress: Progress | None = None):
        self.model, self.anchors, self.settings = model, anchors, settings
        self.batch_size, self.closed, self.img2img = batch_size, closed, img2img
        self.store, self.callback, self.progress = store, callback, progress
        self.rendered: dict[float, Image.Image | Path] = {}

    def stage(self, name: str, positions: Sequence[float]) -> Sequence[Image.Image]:
        """The frames at ``positions``; with a store, each batch is saved (frames + manifest) as it completes."""
        points = [locate(u, len(self.anchors.cfg), self.closed) for u in positions]
        frames: list[Image.Image | Path | None] = [None] * len(positions)
        if self.store is not None:
            self.store.stage(name, positions)
        for start in range(0, len(positions), self.batch_size):
            chunk = range(start, min(start + self.batch_size, len(positions)))
            found = [self._known(name, i, positions[i]) for i in chunk]
            missing = [j for j, im in enumerate(found) if im is None]
            if missing:
                latents = render_latents(self.model, self.anchors, [points[chunk[j]] for j in missing], self.settings,
                                         img2img=self.img2img, callback=self.callback)
                for j, im in zip(missing, decode_images(self.model, latents)):
                    found[j] = im
            if self.store is not None:
                chunk_points = [points[i] for i in chunk]
                recipe_of = frame_recipes(self.store.data["recipe"], start, chunk_points,
                                          [self.frame_values(p) for p in chunk_points])
                self.store.put(name, start, found, chunk_points, recipe_of=recipe_of)
                self.store.save()
                found = [self.store.frame_path(name, i) for i in chunk]  # on disk now: keep the paths only
            for i, im in zip(chunk, found):
                frames[i] = im
                self.rendered.setdefault(positions[i], im)
            if self.progress is not None:
                self.progress(name, chunk.stop, len(positions))
        return FrameFiles(frames) if self.store is not None else frames  # type: ignore[arg-type,return-value]

    def frame_values(self, point: Point) -> dict[str, float]:
        """The CFG a point is rendered with (its schedule's, else its keyframes' with the dip), and any other
        scheduled value: what its frame's infotext reports."""
        values = dict(self.settings.scheduled(point)) if self.settings.scheduled is not None else {}
        values.setdefault("cfg", frame_cfg(self.anchors, point, self.settings.cfg_dip))
        return values

    def _known(self, stage: str, index: int, u: float) -> Image.Image | None:
        if self.store is not None and (im := self.store.load(stage, index)) is not None:
            return im
        known = self.rendered.get(u)
        return load_image(known) if isinstance(known, Path) else known


def frame_recipes(recipe_data: Mapping[str, Any], start: int, points: Sequence[Point],
                  values: Sequence[Mapping[str, float]]) -> Callable[[int], Recipe]:
    """``index -> recipe`` of the frames ``start``, ``start + 1``, ... at ``points``, for their PNGs.

    A frame's recipe is the morph's (``recipe_data``, its JSON fields) with the frame index as
    ``batch_index``; its infotext names what the frame shows: the nearer keyframe's prompt and seed (a frame
    on a keyframe is exactly that keyframe's ``generate`` image, so its infotext reproduces it), the values
    the frame was rendered with (``values``: its CFG, and where scheduled its guidance rescale and
    strength), and ``Morph frame`` / ``Morph position`` (keyframe a to b at t).
    """
    morph = Recipe.from_json(json.dumps(dict(recipe_data)), source="the morph's recipe")
    keyframes = [k if isinstance(k, dict) else {} for k in morph.params.get("keyframes") or []]
    names = {"cfg": "CFG scale", "guidance_rescale": "CFG Rescale phi", "strength": "Denoising strength"}

    def recipe_of(index: int) -> Recipe:
        a, b, t = points[index - start]
        kf = keyframes[a if t <= 0.5 else b] if max(a, b) < len(keyframes) else {}
        extra = {k: v for k, v in morph.infotext_extra.items() if k != "Seed"}  # the frame's own seed, below
        extra.update({names[k]: round(float(v), 6) for k, v in values[index - start].items() if k in names})
        extra.update({"Morph frame": index, "Morph position": f"keyframe {a + 1} to {b + 1} at {t:.4f}"})
        seed = kf.get("seed")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else morph.seed
        return dataclasses.replace(morph, batch_index=index, seed=seed, infotext_extra=extra,
                                   prompt_line=str(kf.get("prompt") or ""))

    return recipe_of
