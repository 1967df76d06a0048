"""Style mixing: the content of one prompt with the style of another.

- ``embed``: the conditioning is ``lerp(content, style, ratio)`` for the whole run.
- ``schedule``: the content prompt conditions the first ``1 − ratio`` of the model evaluations and the
  style prompt the rest: A1111's prompt editing ``[CONTENT:STYLE:when]`` with ``when = 1 − ratio`` (the
  early steps fix the layout, the late ones the rendering).

Both use the content's seed and CFG; ratio 0 is the content's own image in either mode, ratio 1 is the
style prompt's image from the content's noise. Several ratios give one image each (one batch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch

from latentscape.core.noise import resolve_seed
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.sampling import StepCallback
from latentscape.workflows.common import MAX_BATCH, Output, config_dict, decode_images, make_recipe, require, resolve_size
from latentscape.workflows.keyframes import Keyframe
from latentscape.workflows.render import (
    SamplingOptions, as_keyframe, cfg_of, check_keyframe_cfgs, check_options, encode_job, lerp_conditioning,
    render, seed_noise,
)

MODES = ("embed", "schedule")


@dataclass(frozen=True, kw_only=True)
class MixConfig(SamplingOptions):
    """Mix ``content`` and ``style`` (prompts, or ``PROMPT@SEED``) at each of ``ratio`` (0 = content only)."""

    content: Keyframe | str = ""
    style: Keyframe | str = ""
    ratio: float | tuple[float, ...] = 0.5
    mode: str = "embed"
    seed: int = -1

    KEYFRAME_FIELDS: ClassVar[tuple[str, ...]] = ("content", "style")


def switch_step(ratio: float, total: int) -> int:
    """The first model evaluation that uses the style prompt in ``schedule`` mode (``total``: never)."""
    return int(round((1.0 - ratio) * total))


def schedule(content: Conditioning, style: Conditioning, ratios: Sequence[float]):
    """A ``cond_schedule`` for ``sampling.denoise``: item i switches from content to style at
    :func:`switch_step` (one Conditioning object per distinct switch pattern, so it is re-batched rarely)."""
    cache: dict[tuple[bool, ...], Conditioning] = {}

    def at(step: int, total: int) -> Conditioning:
        use_style = tuple(step >= switch_step(r, total) for r in ratios)
        if use_style not in cache:
            mask = torch.tensor(use_style)
            cache[use_style] = content.zip_map(
                style, lambda c, s: torch.where(mask.reshape(-1, *([1] * (c.ndim - 1))).to(c.device), s, c))
        return cache[use_style]

    return at


def mix_prompt(content: str, style: str, ratio: float, mode: str, steps: int) -> str:
    """The infotext's prompt for one ratio.

    ``schedule`` is A1111's own prompt editing ``[CONTENT:STYLE:N]``: A1111 reads a whole number N as "the
    step after which to switch" (a number below 1 would be a fraction of the steps), and this image uses
    CONTENT for its first :func:`switch_step` steps, so N is that step count (0 and ``steps`` are written as
    the plain style and content prompts). ``embed`` mixes conditionings, which no A1111 prompt does: the
    prompt is the one with the larger share (ratio 0 and 1 are exactly that prompt's images).
    """
    if mode == "schedule":
        n = switch_step(ratio, steps)
        return content if n >= steps else style if n <= 0 else f"[{content}:{style}:{n}]"
    return style if ratio > 0.5 else content


def _ratios(ratio: float | Sequence[float]) -> list[float]:
    values = [float(ratio)] if isinstance(ratio, (int, float)) else [float(r) for r in ratio]
    require(1 <= len(values) <= MAX_BATCH, f"--ratio got {len(values)} values; accepted: 1 to {MAX_BATCH} numbers from 0 to 1.")
    for r in values:
        require(0 <= r <= 1, f"--ratio got {r:g}; accepted: numbers from 0 (content only) to 1 (style only).")
    return values


def mix(model: Family, config: MixConfig, *, callback: StepCallback | None = None) -> Output:
    """One image per ratio mixing ``config.content`` with ``config.style``."""
    check_options(model, config)
    require(config.mode in MODES, f"--mode got '{config.mode}'; accepted: {', '.join(MODES)}.")
    content = as_keyframe(config.content, "CONTENT")
    style = as_keyframe(config.style, "STYLE")
    for name, k in (("CONTENT", content), ("STYLE", style)):
        require(k.image is None and bool(k.prompt), f"{name} got '{k.label()}'; accepted: a prompt or PROMPT@SEED (mix works on text).")
    check_keyframe_cfgs([content, style])
    ratios = _ratios(config.ratio)
    n = len(ratios)
    seed = resolve_seed(content.seed if content.seed is not None else config.seed)
    content = dataclasses.replace(content, seed=seed)
    width, height = resolve_size(model, config.width, config.height)
    cfg = cfg_of(model, config, content.cfg)

    cond, uncond = encode_job(model, config, [content.prompt, style.prompt], [cfg, cfg])
    content_c, style_c = cond.select([0] * n), cond.select([1] * n)
    uncond = uncond.select([0] * n) if uncond is not None else None
    noise, generators = seed_noise([seed] * n, model.latent_format.latent_shape(width, height))
    if config.mode == "embed":
        latents = render(model, config, noise, lerp_conditioning(content_c, style_c, torch.tensor(ratios)), uncond,
                         [cfg] * n, generators, callback=callback)
    else:
        latents = render(model, config, noise, content_c, uncond, [cfg] * n, generators,
                         cond_schedule=schedule(content_c, style_c, ratios), callback=callback)
    images = decode_images(model, latents)
    params = config_dict(dataclasses.replace(config, content=content, style=style, ratio=tuple(ratios), seed=seed,
                                             cfg=cfg, width=width, height=height))
    recipes = [
        make_recipe("mix", model, params, seed, batch_index=i,
                    infotext_extra={"Mix": f"{config.mode} {r:g}", "Content": content.prompt, "Style": style.prompt},
                    prompt_line=mix_prompt(content.prompt, style.prompt, r, config.mode, config.steps))
        for i, r in enumerate(ratios)
    ]
    return Output(images=images, latents=latents, recipes=recipes,
                  info={"seed": seed, "ratios": ratios, "mode": config.mode, "width": width, "height": height})
