"""The job plan: anchors (keyframes, blend inputs, map corners, math operands, vary/explore centres) become
per-item noise, conditioning, CFG, image latents and per-step noise, and one chunked renderer runs them.

**Where an image anchor becomes a latent** (:func:`image_anchors`, :func:`start_latents`), by ``image_mode``:

- ``"invert"`` (the default): the image is inverted with the project's ``exact`` inversion
  (:mod:`latentscape.inversion`), recorded over the job's own sampler and steps, so the loop turns the
  anchor's noise and per-step noise stream back into the image latent to float error: the image's own item
  (a keyframe's frame, a one-hot blend corner) decodes to the image's VAE round trip. The whole job is then
  a full txt2img-style render; no ``strength`` is involved. Items between anchors interpolate the starting
  noise (slerp), the per-step noise streams (slerp step by step, :func:`point_step_noise`; towards an anchor
  without a stream, e.g. a prompt keyframe, the stream fades linearly to none) and the conditioning.
  Stochastic samplers (``euler_a``, ``lcm``) record with the anchor's seed as their step-noise seed, the same
  stream a morph interpolates the step noise from, so the anchor stays exact under them too.
- ``"noise"``: today's img2img: the image's VAE posterior mean (:func:`encode_images`), noised to the job's
  ``strength``; prompt anchors start from their own standalone render (:func:`start_latents`).

Caption and CFG of an image anchor: the inversion is conditioned on the anchor's own prompt, or the empty
prompt, and recorded at the CFG its item renders with. That CFG is the anchor's own ``cfg`` when it gives
one, else 1 (no guidance: the inversion default, whose maps stay closest to Gaussian noise; the job's
``--cfg`` applies to prompt anchors), and for guidance-distilled models (FLUX dev) the family's default
embedded guidance. At CFG > 1 the ``exact`` maps absorb the guided trajectory's difference (still exact, but
larger than Gaussian noise, so in-betweens move further from both ends). Items between an image at CFG 1
and a prompt at CFG 7.5 interpolate the CFG as any two keyframes do.

Inversions go through :func:`latentscape.workflows.invert.invert_image`'s cache, keyed by the image's
pixels, the model, method, steps, sampler (and a stochastic sampler's step seed), prompt, negative and CFG:
a path through one image twice, ``--resume`` and ``replay`` invert each image once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io.images import pil_to_tensor
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.sampling import NoisePath, StepCallback, StepNoise, denoise

IMAGE_MODES = ("invert", "noise")


def check_image_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`IMAGE_MODES`, else one sentence naming the field and the choices."""
    if mode not in IMAGE_MODES:
        raise LatentscapeError(f"image_mode got '{mode}'; accepted: invert (start and end on the images, the default) "
                               "or noise (img2img at the job's strength).")
    return mode


def image_cfg(model: Family, cfg: float | None) -> float:
    """The user-facing CFG an image anchor renders (and is inverted) at: its own, else 1 (no guidance), and
    for models whose guidance is an input (FLUX dev) the family's default."""
    if cfg is not None:
        return float(cfg)
    return float(model.default_guidance()) if model.embedded_guidance else 1.0


@dataclass(frozen=True)
class ImageAnchor:
    """An image anchor in ``invert`` mode: what the loop turns back into the image latent."""

    noise: torch.Tensor  # (1, C, h, w)
    step_noise: StepNoise  # (evaluations, 1, C, h, w)
    latents: torch.Tensor  # (1, C, h, w): the image's VAE posterior mean
    cached: bool
    seconds: float


@torch.no_grad()
def image_anchors(
    model: Family,
    images: Sequence[Image.Image],
    *,
    prompts: Sequence[str],
    seeds: Sequence[int],
    cfgs: Sequence[float],
    negative: str,
    sampler: str,
    steps: int,
    true_cfg: float = 1.0,
    cache=True,
    progress: Callable[[int, int], None] | None = None,
) -> list[ImageAnchor]:
    """The ``invert``-mode anchor of each image (at the job's size already): an ``exact`` inversion over the
    job's sampler and steps, under the anchor's prompt and the CFG ``cfgs[i]`` (user-facing, see
    :func:`image_cfg`) it renders with; ``seeds[i]`` is the step-noise seed of stochastic samplers."""
    from latentscape.samplers import resolve_sampler
    from latentscape.workflows.common import guidance
    from latentscape.workflows.invert import InvertConfig, invert_image

    stochastic = resolve_sampler(sampler, model.is_flow).stochastic
    out = []
    for image, prompt, seed, cfg in zip(images, prompts, seeds, cfgs):
        _, loop_cfg, embedded = guidance(model, cfg, true_cfg)
        config = InvertConfig(image="<image>", prompt=prompt, negative=negative, method="exact", steps=steps,
                              cfg=float(loop_cfg), sampler=sampler, step_seed=int(seed) if stochastic else None,
                              embedded_guidance=embedded)
        result = invert_image(model, image, config, cache=cache, progress=progress)
        inv = result.inversion
        out.append(ImageAnchor(inv.noise, inv.step_noise, result.image_latents, result.cached, result.seconds))
    return out


def encode_images(model: Family, images: Sequence[Image.Image]) -> torch.Tensor:
    """VAE posterior means (N, C, h, w), float32 on the CPU, each image encoded alone as ``generate`` encodes
    an init image (a batched encode is not bit-identical), so an image anchor's latent is ``generate``'s."""
    return torch.cat([model.encode_images(pil_to_tensor([im])).float().cpu() for im in images])


def start_latents(model: Family, count: int, images: Mapping[int, Image.Image],
                  render_prompts: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
    """``image_mode="noise"`` starting latents of ``count`` anchors (N, C, h, w): image anchors (``images``:
    anchor index -> the image at the job's size) VAE-encoded (:func:`encode_images`), every other anchor as
    its standalone ``generate`` renders it (``render_prompts(indices)``: their latents, in that order)."""
    out: list[torch.Tensor | None] = [None] * count
    order = sorted(images)
    others = [i for i in range(count) if i not in images]
    for i, z in zip(order, encode_images(model, [images[i] for i in order]) if order else ()):
        out[i] = z[None]
    for i, z in zip(others, render_prompts(others) if others else ()):
        out[i] = z[None]
    return torch.cat(out)  # type: ignore[arg-type]


def point_step_noise(streams: Sequence[StepNoise | None], a: Sequence[int], b: Sequence[int],
                     t: Sequence[float] | torch.Tensor) -> StepNoise | None:
    """Per-item step noise of items between anchors ``a[i]`` and ``b[i]`` at ``t[i]``: both streams slerped
    step by step (as :func:`latentscape.inversion.interpolate_step_noise`); one stream scaled by its weight
    ((1 − t) or t) where the other anchor has none; zero where neither has. t = 0 is ``a``'s stream bit for
    bit (t = 1: ``b``'s). None when no anchor involved has a stream (the loop then adds nothing)."""
    from latentscape.core.interpolate import slerp

    tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    if all(streams[i] is None for i in (*a, *b)):
        return None
    ref = next(s for s in streams if s is not None)
    evaluations, _, *shape = ref.noise.shape
    out = torch.zeros((evaluations, len(tt), *shape), dtype=torch.float32)
    for i, (ia, ib) in enumerate(zip(a, b)):
        za, zb, w = streams[ia], streams[ib], float(tt[i])
        if w == 0 or ia == ib:
            row = za.noise[:, 0] if za is not None else None
        elif w == 1:
            row = zb.noise[:, 0] if zb is not None else None
        elif za is not None and zb is not None:
            row = slerp(za.noise[:, 0], zb.noise[:, 0], torch.full((evaluations,), w, dtype=torch.float64)).float()
        elif za is not None:
            row = (1 - w) * za.noise[:, 0]
        elif zb is not None:
            row = w * zb.noise[:, 0]
        else:  # a segment between two prompt anchors, batched with items that touch an image
            row = None
        if row is not None:
            out[:, i] = row
    return StepNoise(noise=out, scales=ref.scales)


@dataclass
class AnchorNoise:
    """Per-anchor starting noise, step generators and (inverted images) per-step noise streams."""

    noise: torch.Tensor  # (N, C, h, w)
    generators: list[torch.Generator]  # per anchor, after its initial noise (stochastic samplers' step noise)
    streams: list[StepNoise | None]  # per anchor: an inverted image's stream, else None
    inverted: list[ImageAnchor | None]


def anchor_noise(model: Family, seeds: Sequence[int], shape: Sequence[int], *, images: dict[int, Image.Image] | None = None,
                 prompts: Sequence[str] = (), cfgs: Sequence[float] = (), negative: str = "", sampler: str = "euler",
                 steps: int = 25, true_cfg: float = 1.0) -> AnchorNoise:
    """Each anchor's noise drawn from its seed as ``generate`` draws it; anchors in ``images`` (index -> the
    image at the job's size, ``invert`` mode) take their inversion's noise and step-noise stream instead."""
    from latentscape.core.noise import draw_noise, seeded_generators

    generators = seeded_generators(seeds)
    noise = draw_noise(generators, shape)
    streams: list[StepNoise | None] = [None] * len(seeds)
    inverted: list[ImageAnchor | None] = [None] * len(seeds)
    order = sorted(images or {})
    if order:
        made = image_anchors(model, [images[i] for i in order], prompts=[prompts[i] for i in order],  # type: ignore[index]
                             seeds=[seeds[i] for i in order], cfgs=[cfgs[i] for i in order], negative=negative,
                             sampler=sampler, steps=steps, true_cfg=true_cfg)
        for i, anchor in zip(order, made):
            noise[i] = anchor.noise[0].to(noise.dtype)
            streams[i], inverted[i] = anchor.step_noise, anchor
    return AnchorNoise(noise, generators, streams, inverted)


def weighted_step_noise(streams: Sequence[StepNoise | None], weights: torch.Tensor) -> StepNoise | None:
    """Step noise of items that weigh N anchors (``weights`` (B, N), rows summing to 1): the spherical
    barycentre of the present streams step by step, scaled by their total weight (so it fades towards
    anchors without a stream, as :func:`point_step_noise` does); a one-hot row is that anchor's stream bit for
    bit. None when no anchor has a stream."""
    from latentscape.core.blend import spherical_barycentre

    present = [i for i, s in enumerate(streams) if s is not None]
    if not present:
        return None
    ref = streams[present[0]]
    evaluations, _, *shape = ref.noise.shape  # type: ignore[union-attr]
    w = torch.as_tensor(weights, dtype=torch.float64)
    out = torch.zeros((evaluations, w.shape[0], *shape), dtype=torch.float32)
    for row in range(w.shape[0]):
        mass = float(w[row, present].sum())
        if mass == 0:
            continue
        hot = [i for i in present if float(w[row, i]) == 1.0]
        if hot:
            out[:, row] = streams[hot[0]].noise[:, 0]  # type: ignore[union-attr]
            continue
        xs = torch.stack([streams[i].noise[:, 0] for i in present])  # (P, evaluations, C, h, w)  # type: ignore[union-attr]
        mean = spherical_barycentre(xs, w[row, present] / mass)
        out[:, row] = (mass * mean.double()).float()
    return StepNoise(noise=out, scales=ref.scales)  # type: ignore[union-attr]


@dataclass
class Items:
    """B items for :func:`render`: each with its own noise, conditioning, loop CFG (and embedded guidance),
    guidance rescale and step noise. Stochastic samplers' step noise comes from ``generators`` (one per item)
    or ``noise_path`` (interpolated between anchors' streams); ``step_noise`` is an inversion's stored
    per-step noise (slerped for items between anchors). ``init_latents`` + ``strength`` < 1 is img2img;
    ``start_step`` k > 0 starts every item at step k from ``noise`` (its latents there)."""

    noise: torch.Tensor  # (B, C, h, w)
    cond: Conditioning  # B items
    uncond: Conditioning | None  # B items, or None when no item needs CFG
    guidance_scale: torch.Tensor  # (B,) the loop's CFG scale
    embedded_guidance: torch.Tensor | None = None  # (B,) FLUX-style guidance input
    guidance_rescale: float | torch.Tensor = 0.0
    generators: Sequence[torch.Generator] | None = None
    noise_path: NoisePath | None = None
    step_noise: StepNoise | None = None
    init_latents: torch.Tensor | None = None
    strength: float = 1.0
    start_step: int = 0
    cond_schedule: Callable[[int, int], Conditioning] | None = None


@torch.no_grad()
def render(model: Family, items: Items, *, sampler: str, steps: int, batch_size: int | None = None,
           callback: StepCallback | None = None) -> torch.Tensor:
    """The one chunked renderer: every workflow's items go through ``sampling.denoise`` here, in chunks of
    ``batch_size`` (None: all at once); returns model-space latents (B, C, h, w) on the CPU."""
    batch = items.noise.shape[0]
    size = batch if batch_size is None else batch_size
    out = []
    for start in range(0, batch, size):
        idx = list(range(start, min(start + size, batch)))
        whole = len(idx) == batch
        pick = (lambda x: x) if whole else (lambda x: x[idx])
        rescale = items.guidance_rescale
        path = items.noise_path
        if path is not None and not whole:
            path = NoisePath(path.sources, [path.a[i] for i in idx], [path.b[i] for i in idx], [path.t[i] for i in idx])
        latents = denoise(
            model, pick(items.noise), items.cond if whole else items.cond.select(idx),
            None if items.uncond is None else items.uncond if whole else items.uncond.select(idx),
            sampler=sampler, steps=steps, guidance_scale=_scalar_or(pick(items.guidance_scale)),
            guidance_rescale=rescale if not torch.is_tensor(rescale) else _scalar_or(pick(rescale)),
            embedded_guidance=None if items.embedded_guidance is None else _scalar_or(pick(items.embedded_guidance)),
            init_latents=None if items.init_latents is None else pick(items.init_latents), strength=items.strength,
            generators=None if items.generators is None else [items.generators[i] for i in idx],
            noise_path=path, start_step=items.start_step,
            step_noise=None if items.step_noise is None else items.step_noise if whole else items.step_noise.items(idx),
            cond_schedule=None if items.cond_schedule is None else items.cond_schedule if whole else _chunk_schedule(items.cond_schedule, idx),
            callback=callback,
        )
        out.append(latents.float().cpu())
    return torch.cat(out)


def _scalar_or(values: torch.Tensor) -> float | torch.Tensor:
    """A float when all items agree (the exact code path ``generate`` takes), else the (B,) tensor."""
    return float(values[0]) if bool((values == values[0]).all()) else values


def _chunk_schedule(full: Callable[[int, int], Conditioning], idx: list[int]) -> Callable[[int, int], Conditioning]:
    """The chunk's part of a whole-batch schedule, returning the same object while the full one does."""
    memo: dict = {"full": None, "part": None}

    def part(step: int, total: int) -> Conditioning:
        c = full(step, total)
        if c is not memo["full"]:
            memo["full"], memo["part"] = c, c.select(idx)
        return memo["part"]

    return part
