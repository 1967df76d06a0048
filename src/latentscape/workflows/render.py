"""What the exploration workflows share: sampling options, points (prompt / seed / image) turned into
noise, conditioning and latents, and one batched render over the denoising loop.

Every workflow here builds per-item noise, conditioning and CFG, then calls :func:`render`, which runs
``sampling.denoise`` in chunks of ``batch_size`` items. The noise of a seed is drawn exactly as
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
from latentscape.io.images import RESIZE_MODES, fit_size, load_image, pil_to_tensor
from latentscape.io.recipe import file_sha256
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.sampling import StepCallback, denoise
from latentscape.workflows.common import MAX_BATCH, check_sampling, encode, guidance, require, resolve_size
from latentscape.workflows.keyframes import Keyframe, keyframe_from_dict, parse_keyframe
from latentscape.workflows.options import BatchedSampling

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


def image_latents(model: Family, paths: Sequence[str], size: tuple[int, int]) -> torch.Tensor:
    """VAE-encoded images (N, C, h, w) (posterior mean), each stretched to ``size`` when it differs."""
    images: list[Image.Image] = [
        fit_size(load_image(p), model.latent_format.size_multiple, "stretch", size=size, name=f"image '{p}'") for p in paths
    ]
    return model.encode_images(pil_to_tensor(images)).float().cpu()


def image_inputs(paths: Sequence[str]) -> dict[str, Any]:
    """The recipe's ``inputs`` entry for the image files a job read (path + SHA-256 each)."""
    unique = list(dict.fromkeys(paths))
    return {"images": [{"path": str(p), "sha256": file_sha256(p)} for p in unique]} if unique else {}


def seed_noise(seeds: Sequence[int], shape: Sequence[int]) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Noise (N, *shape) drawn as ``generate`` draws it, and the generators, advanced past the draw."""
    generators = seeded_generators(seeds)
    return draw_noise(generators, shape), generators


def cfg_of(model: Family, opts: SamplingOptions, keyframe_cfg: float | None = None) -> float:
    """The user-facing CFG of an item: its keyframe's, else the job's, else the family's default."""
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
) -> torch.Tensor:
    """Denoise B items, each with its own noise (B, C, h, w), conditioning, CFG and step generator, in chunks
    of ``opts.batch_size``; returns model-space latents (B, C, h, w) on the CPU.

    ``init_latents`` (B, C, h, w) with ``strength`` < 1 is img2img; ``cond_schedule(step, total)`` gives the
    conditioning of all B items at a step (see ``sampling.denoise``).
    """
    batch = noise.shape[0]
    assert len(cond) == batch and len(cfgs) == batch and len(generators) == batch
    split = [guidance(model, c, opts.true_cfg) for c in cfgs]
    loop = torch.tensor([s[1] for s in split], dtype=torch.float32)
    embedded = None if split[0][2] is None else torch.tensor([s[2] for s in split], dtype=torch.float32)
    out = []
    for start in range(0, batch, opts.batch_size):
        idx = list(range(start, min(start + opts.batch_size, batch)))
        schedule = _chunk_schedule(cond_schedule, idx) if cond_schedule is not None else None
        latents = denoise(
            model, noise[idx], cond.select(idx), uncond.select(idx) if uncond is not None else None,
            sampler=opts.sampler, steps=opts.steps, guidance_scale=_scalar_or(loop[idx]),
            guidance_rescale=opts.guidance_rescale,
            embedded_guidance=None if embedded is None else _scalar_or(embedded[idx]),
            init_latents=None if init_latents is None else init_latents[idx], strength=strength,
            generators=[generators[i] for i in idx], callback=callback, cond_schedule=schedule,
        )
        out.append(latents.float().cpu())
    return torch.cat(out)


def _scalar_or(values: torch.Tensor) -> float | torch.Tensor:
    """A float when all items agree (the exact code path ``generate`` takes), else the (B,) tensor."""
    return float(values[0]) if bool((values == values[0]).all()) else values


def _chunk_schedule(full: Callable[[int, int], Conditioning], idx: list[int]) -> Callable[[int, int], Conditioning]:
    """The chunk's part of a whole-batch schedule, returning the same object while the full one does."""
    memo: dict[str, Any] = {"full": None, "part": None}

    def part(step: int, total: int) -> Conditioning:
        c = full(step, total)
        if c is not memo["full"]:
            memo["full"], memo["part"] = c, c.select(idx)
        return memo["part"]

    return part
