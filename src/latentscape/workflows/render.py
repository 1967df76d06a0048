"""What the exploration workflows share: sampling options, points (prompt / seed / image) turned into
noise, conditioning and latents, and one batched render over the denoising loop.

Every workflow here builds per-item noise, conditioning and CFG, then calls :func:`render`, which hands
them to the one chunked renderer (:func:`latentscape.workflows.plan.render`, which morphs use too) in chunks
of ``batch_size`` items. Image anchors become latents in :mod:`latentscape.workflows.plan` (``invert``) or
:func:`anchor_latents` (``noise``). The noise of a seed is drawn exactly as
``generate`` draws it (one CPU generator per item, which then continues into a stochastic sampler's step
noise), so a cell that lands on a keyframe reproduces that keyframe's standalone image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from PIL import Image

from latentscape.core.noise import draw_noise, seeded_generators
from latentscape.errors import LatentscapeError
from latentscape.io.images import RESIZE_MODES, fit_size, load_image
from latentscape.io.recipe import file_sha256
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.sampling import StepCallback, StepNoise
from latentscape.workflows.common import MAX_BATCH, check_sampling, encode, guidance, require, resolve_size
from latentscape.workflows.keyframes import Keyframe, keyframe_from_dict, parse_keyframe
from latentscape.workflows.options import BatchedSampling
from latentscape.workflows.plan import AnchorNoise, Items, anchor_noise, encode_images, image_cfg, start_latents
from latentscape.workflows.plan import render as render_items

MAX_CELLS = 256


@dataclass(frozen=True, kw_only=True)
class SamplingOptions(BatchedSampling):
    """Sampling parameters every exploration workflow takes (as in :class:`GenerateConfig`).

    ``cfg`` None uses the family's default; ``batch_size`` bounds how many items run through the model at
    once (results do not depend on it beyond float rounding; replay uses the same value).
    """

    KEYFRAME_FIELDS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]):
        """The config a recipe's ``params`` describe (lists back to tuples, keyframe objects to :class:`Keyframe`)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise LatentscapeError(
                f"the recipe has parameters this latentscape does not know ({', '.join(unknown)}); it was made by a newer version."
            )
        values = {}
        if "image_mode" in known and "image_mode" not in params:  # made before the field: images were img2img
            values["image_mode"] = "noise"
        for key, value in params.items():
            if key in cls.KEYFRAME_FIELDS and isinstance(value, (list, tuple)):
                value = tuple(as_keyframe(v, f"{key} item {i + 1}") for i, v in enumerate(value))
            elif key in cls.KEYFRAME_FIELDS and value is not None:
                value = as_keyframe(value, key)
            elif isinstance(value, list):
                value = tuple(value)
            values[key] = value
        return cls(**values)


def as_keyframe(item: Keyframe | str | Mapping[str, Any], where: str = "keyframe") -> Keyframe:
    """A keyframe from its command-line text, a JSON-like dict or a :class:`Keyframe`."""
    if isinstance(item, Keyframe):
        return item
    if isinstance(item, str):
        return parse_keyframe(item)
    return keyframe_from_dict(dict(item), where)


def check_options(model: Family, opts: SamplingOptions) -> None:
    """Validate the shared options (one sentence each, before anything runs)."""
    cfg = opts.cfg
    check_sampling(model, steps=opts.steps, sampler=opts.sampler, cfg=cfg)
    require(0 <= opts.guidance_rescale <= 1, f"--guidance-rescale got {opts.guidance_rescale}; expected a number from 0 to 1.")
    require(opts.true_cfg >= 1 or opts.true_cfg == 0, f"--true-cfg got {opts.true_cfg}; expected a number >= 1.")
    require(isinstance(opts.batch_size, int) and 1 <= opts.batch_size <= MAX_BATCH,
            f"--batch-size got {opts.batch_size}; expected a whole number from 1 to {MAX_BATCH}.")
    require(opts.resize in RESIZE_MODES, f"--resize got '{opts.resize}'; accepted values are {', '.join(RESIZE_MODES)}.")


def check_keyframe_cfgs(keyframes: Sequence[Keyframe]) -> None:
    for k in keyframes:
        require(k.cfg is None or k.cfg >= 0, f"keyframe '{k.label()}' has cfg {k.cfg}; expected a number >= 0.")
        require(k.seed is None or k.seed >= -1, f"keyframe '{k.label()}' has seed {k.seed}; expected a whole number >= 0 (or -1 for random).")


def job_size(model: Family, opts: SamplingOptions, images: Sequence[str] = ()) -> tuple[int, int]:
    """(width, height): as given; else the first image's size (fitted to the model's multiple); else the model's."""
    if (opts.width is None or opts.height is None) and images:
        first = fit_size(load_image(images[0]), model.latent_format.size_multiple, opts.resize, name=f"image '{images[0]}'")
        return first.size
    return resolve_size(model, opts.width, opts.height)


def images_at_size(model: Family, paths: Sequence[str], size: tuple[int, int]) -> list[Image.Image]:
    """The images, each stretched to ``size`` when it differs."""
    return [fit_size(load_image(p), model.latent_format.size_multiple, "stretch", size=size, name=f"image '{p}'") for p in paths]


def image_latents(model: Family, paths: Sequence[str], size: tuple[int, int]) -> torch.Tensor:
    """VAE-encoded images (N, C, h, w) (posterior mean, :func:`~latentscape.workflows.plan.encode_images`),
    each stretched to ``size`` when it differs."""
    return encode_images(model, images_at_size(model, paths, size))


def inverted_anchors(model: Family, opts: SamplingOptions, keyframes: Sequence[Keyframe], cfgs: Sequence[float],
                     shape: Sequence[int], size: tuple[int, int]) -> AnchorNoise:
    """Anchor noise of ``keyframes`` (seeds resolved) with the image keyframes inverted (``invert`` mode; see
    :mod:`latentscape.workflows.plan`), at the job's sampler, steps and size."""
    idx = [i for i, k in enumerate(keyframes) if k.image is not None]
    pictures = dict(zip(idx, images_at_size(model, [keyframes[i].image for i in idx], size)))  # type: ignore[misc]
    return anchor_noise(model, [k.seed for k in keyframes], shape, images=pictures, prompts=[k.prompt or "" for k in keyframes],
                        cfgs=cfgs, negative=opts.negative, sampler=opts.sampler, steps=opts.steps, true_cfg=opts.true_cfg)


def anchor_latents(model: Family, opts: SamplingOptions, keyframes: Sequence[Keyframe], cond: Conditioning,
                   uncond: Conditioning | None, cfgs: Sequence[float], shape: Sequence[int], size: tuple[int, int],
                   callback: StepCallback | None = None) -> torch.Tensor:
    """``image_mode="noise"`` starting latents of anchors (N, C, h, w) (:func:`~latentscape.workflows.plan.start_latents`):
    images VAE-encoded, prompt anchors rendered as ``generate`` would (``cond``/``uncond``/``cfgs``: one item each)."""
    image_idx = [i for i, k in enumerate(keyframes) if k.image is not None]
    pictures = dict(zip(image_idx, images_at_size(model, [keyframes[i].image for i in image_idx], size)))  # type: ignore[misc]

    def standalone(idx: list[int]) -> torch.Tensor:
        noise, generators = seed_noise([keyframes[i].seed for i in idx], shape)
        return render(model, opts, noise, cond.select(idx), uncond.select(idx) if uncond is not None else None,
                      [cfgs[i] for i in idx], generators, callback=callback)

    return start_latents(model, len(keyframes), pictures, standalone)


def image_inputs(paths: Sequence[str]) -> dict[str, Any]:
    """The recipe's ``inputs`` entry for the image files a job read (path + SHA-256 each)."""
    unique = list(dict.fromkeys(paths))
    return {"images": [{"path": str(p), "sha256": file_sha256(p)} for p in unique]} if unique else {}


def seed_noise(seeds: Sequence[int], shape: Sequence[int]) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Noise (N, *shape) drawn as ``generate`` draws it, and the generators, advanced past the draw."""
    generators = seeded_generators(seeds)
    return draw_noise(generators, shape), generators


def cfg_of(model: Family, opts: SamplingOptions, keyframe_cfg: float | None = None, *, inverted_image: bool = False) -> float:
    """The user-facing CFG of an item: its keyframe's, else the job's, else the family's default; an image
    anchor in ``invert`` mode: its own, else 1 (:func:`latentscape.workflows.plan.image_cfg`)."""
    if inverted_image:
        return image_cfg(model, keyframe_cfg)
    if keyframe_cfg is not None:
        return float(keyframe_cfg)
    return model.default_guidance() if opts.cfg is None else float(opts.cfg)


def encode_job(model: Family, opts: SamplingOptions, prompts: Sequence[str], cfgs: Sequence[float]) -> tuple[Conditioning, Conditioning | None]:
    """Conditioning for ``prompts`` and, when any item's CFG needs it, the negative prompt (one item each)."""
    scales = [guidance(model, c, opts.true_cfg)[1] for c in cfgs]
    need_uncond = model.uses_cfg(torch.tensor(scales))
    cond, uncond = encode(model, list(prompts), [opts.negative] * len(prompts), need_uncond)
    return cond, uncond


def lerp_conditioning(a: Conditioning, b: Conditioning, t: float | torch.Tensor) -> Conditioning:
    """Per-item linear interpolation of conditionings (exact at t = 0 and t = 1)."""
    from latentscape.core.interpolate import lerp

    return a.zip_map(b, lambda x, y: lerp(x, y, t))


@torch.no_grad()
def render(
    model: Family,
    opts: SamplingOptions,
    noise: torch.Tensor,
    cond: Conditioning,
    uncond: Conditioning | None,
    cfgs: Sequence[float],
    generators: Sequence[torch.Generator],
    *,
    init_latents: torch.Tensor | None = None,
    strength: float = 1.0,
    cond_schedule: Callable[[int, int], Conditioning] | None = None,
    callback: StepCallback | None = None,
    step_noise: StepNoise | None = None,
) -> torch.Tensor:
    """Denoise B items, each with its own noise (B, C, h, w), conditioning, user-facing CFG and step
    generator, through the one renderer (:func:`latentscape.workflows.plan.render`) in chunks of
    ``opts.batch_size``; returns model-space latents (B, C, h, w) on the CPU.

    ``init_latents`` (B, C, h, w) with ``strength`` < 1 is img2img; ``cond_schedule(step, total)`` gives the
    conditioning of all B items at a step (see ``sampling.denoise``); ``step_noise``: per-item stored step
    noise (inverted image anchors, :mod:`latentscape.workflows.plan`).
    """
    batch = noise.shape[0]
    assert len(cond) == batch and len(cfgs) == batch and len(generators) == batch
    split = [guidance(model, c, opts.true_cfg) for c in cfgs]
    loop = torch.tensor([s[1] for s in split], dtype=torch.float32)
    embedded = None if split[0][2] is None else torch.tensor([s[2] for s in split], dtype=torch.float32)
    items = Items(noise=noise, cond=cond, uncond=uncond, guidance_scale=loop, embedded_guidance=embedded,
                  guidance_rescale=opts.guidance_rescale, generators=generators, step_noise=step_noise,
                  init_latents=init_latents, strength=strength, cond_schedule=cond_schedule)
    return render_items(model, items, sampler=opts.sampler, steps=opts.steps, batch_size=opts.batch_size, callback=callback)
