"""Latent and conditioning arithmetic: ``"king face" - "man" + "woman"``, rendered through the loop.

The expression (grammar in :mod:`latentscape.core.expr`) is a linear combination of operands:

- prompts combine into the conditioning: ``Σ cᵢ·encode(promptᵢ)`` on the embeddings and the pooled vector
  (no prompt: the empty prompt's conditioning);
- seeds combine into the initial noise: ``Σ cⱼ·noise(seedⱼ)`` rescaled to the norm ``Σ|cⱼ|·‖noiseⱼ‖/Σ|cⱼ|``,
  so the result has the norm of a unit Gaussian draw (no seed: the noise of ``seed``);
- images, ``image_mode="invert"`` (the default): each image is inverted (:mod:`latentscape.workflows.plan`)
  and its inversion's noise joins the seeds' in the rescaled sum, its per-step noise stream is combined the
  same way step by step; the images' caption is the empty prompt and the CFG the job's ``cfg`` (1 when it is
  not given and no prompt term steers), which the inversions are recorded at. So ``image:a.png`` alone is
  the image's VAE round trip, and ``image:a.png + "snow"`` steers it;
- images, ``image_mode="noise"``: they combine into a latent ``Σ cₖ·latentₖ`` (VAE posterior means, no
  rescaling), which img2img repaints at ``strength`` with that noise and conditioning (0: decode it as is).

A single prompt (coefficient 1) with ``seed`` reproduces ``generate`` with that prompt and seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from latentscape.core.expr import Term, format_terms, parse
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.sampling import StepCallback, StepNoise
from latentscape.workflows.common import Output, config_dict, decode_images, make_recipe, require
from latentscape.workflows.job import prepare_job
from latentscape.workflows.keyframes import Keyframe
from latentscape.workflows.render import (
    SamplingOptions, cfg_of, check_options, encode_job, image_inputs, image_latents, inverted_anchors, render, seed_noise,
)

MAX_OPERANDS = 16


@dataclass(frozen=True, kw_only=True)
class MathConfig(SamplingOptions):
    """Render ``expression``; ``seed`` gives the noise when no seed operand does (-1: random, reported)."""

    expression: str = ""
    seed: int = -1
    strength: float = 0.6  # image_mode noise only
    image_mode: str = "invert"


def combine_noise(noises: torch.Tensor, coefficients: list[float]) -> torch.Tensor:
    """``Σ cⱼ·noiseⱼ`` (noises (J, ...)) rescaled to ``Σ|cⱼ|·‖noiseⱼ‖/Σ|cⱼ|`` (a single term with c = 1 is exact)."""
    if len(coefficients) == 1 and coefficients[0] == 1:
        return noises[:1].clone()
    c = torch.tensor(coefficients, dtype=torch.float64).reshape(-1, *([1] * (noises.ndim - 1)))
    x = noises.double()
    total = (c * x).sum(dim=0, keepdim=True)
    norms = x.flatten(1).norm(dim=1)
    target = (c.flatten().abs() * norms).sum() / c.abs().sum()
    norm = total.norm()
    require(float(norm) > 1e-12, "the seed terms of the math expression cancel out to zero noise; change their coefficients.")
    return (total / norm * target).to(noises.dtype)


def latent_math(model: Family, config: MathConfig, *, callback: StepCallback | None = None) -> Output:
    """One image for ``config.expression``; its recipe replays it."""
    check_options(model, config)
    terms = parse(config.expression)
    require(len(terms) <= MAX_OPERANDS, f"math expression has {len(terms)} operands; accepted: at most {MAX_OPERANDS}.")
    require(any(t.coefficient != 0 for t in terms), "every term of the math expression has coefficient 0; nothing is left to render.")
    prompts = [t for t in terms if t.operand.kind == "prompt"]
    seeds = [t for t in terms if t.operand.kind == "seed"]
    images = [t for t in terms if t.operand.kind == "image"]
    job = prepare_job(model, config, images=[str(t.operand.value) for t in images])
    paths, inverted, seed, shape = job.images, job.inverted, job.seed, job.shape
    width, height = job.size
    cfg = cfg_of(model, config, config.cfg, inverted_image=inverted and not prompts)

    cond = _conditioning(model, config, prompts, cfg)
    _, uncond = encode_job(model, config, [""], [cfg])  # the negative prompt, when CFG needs it
    cond, uncond = model.match_lengths([cond, uncond])  # a chunked (long or BREAK) prompt or negative: one length
    seed_terms = seeds or [Term(1.0, dataclasses.replace(terms[0].operand, kind="seed", value=seed))]
    noises, generators = seed_noise([int(t.operand.value) for t in seed_terms], shape)
    noise = combine_noise(noises, [t.coefficient for t in seed_terms])
    main = max(range(len(seed_terms)), key=lambda i: abs(seed_terms[i].coefficient))
    step_gens = [generators[main]]

    if not images:
        latents = render(model, config, noise, cond, uncond, [cfg], step_gens, callback=callback)
    elif inverted:
        keyframes = [Keyframe(image=p, prompt="", seed=int(seed_terms[main].operand.value)) for p in paths]
        anchors = inverted_anchors(model, config, keyframes, [cfg] * len(paths), shape, (width, height))
        # the images' inversions join the seeds' noise (no seed term: the images' noise alone); their step-noise
        # streams combine the same way step by step, scaled by the images' share of the coefficients
        noise = combine_noise(torch.cat([anchors.noise, noises[:len(seeds)]]), [t.coefficient for t in images + seeds])
        streams = torch.stack([z.noise[:, 0] for z in anchors.streams])  # type: ignore[union-attr]  # (I, evaluations, C, h, w)
        c_images = [t.coefficient for t in images]
        share = sum(abs(c) for c in c_images) / sum(abs(t.coefficient) for t in images + seeds)
        per_step = [combine_noise(streams[:, i], c_images) for i in range(streams.shape[1])]
        per_step = [z if share == 1 else z * share for z in per_step]
        step_noise = StepNoise(torch.cat(per_step)[:, None], anchors.streams[0].scales)  # type: ignore[union-attr]
        latents = render(model, config, noise, cond, uncond, [cfg], step_gens, step_noise=step_noise, callback=callback)
    else:
        encoded = image_latents(model, paths, (width, height))
        c = torch.tensor([t.coefficient for t in images]).reshape(-1, 1, 1, 1)
        combined = (c * encoded).sum(dim=0, keepdim=True)
        if config.strength == 0:
            latents = combined
        else:
            latents = render(model, config, noise, cond, uncond, [cfg], step_gens, init_latents=combined,
                             strength=config.strength, callback=callback)
    image = decode_images(model, latents)
    canonical = format_terms(terms)
    params = config_dict(dataclasses.replace(config, seed=seed, cfg=cfg, width=width, height=height))
    math_extra = {"Math": canonical, **({"Image mode": "invert"} if inverted else {"Denoising strength": config.strength} if images else {})}
    recipe = make_recipe("math", model, params, int(seed_terms[main].operand.value), inputs=image_inputs(paths),
                         infotext_extra=math_extra, prompt_line=math_prompt(prompts))
    info = {"terms": [(t.coefficient, t.operand.kind, t.operand.value) for t in terms], "expression": canonical,
            "seed": seed, "width": width, "height": height}
    return Output(images=image, latents=latents, recipes=[recipe], info=info)


def math_prompt(prompts: list[Term]) -> str:
    """The infotext's prompt: the prompt term with the largest positive coefficient (the first on ties; ""
    when none). A single prompt with coefficient 1 is exactly ``generate``'s; for a combination it is the
    dominant term, since A1111 would read the expression as literal text. ``Math`` holds the expression."""
    positive = [t for t in prompts if t.coefficient > 0]
    return str(max(positive, key=lambda t: t.coefficient).operand.value) if positive else ""


def _conditioning(model: Family, config: MathConfig, prompts: list[Term], cfg: float) -> Conditioning:
    """``Σ cᵢ·encode(promptᵢ)`` (the empty prompt's conditioning when there is no prompt term)."""
    if not prompts:
        return model.encode_prompts([""])
    encoded = model.encode_prompts([str(t.operand.value) for t in prompts])
    if len(prompts) == 1 and prompts[0].coefficient == 1:
        return encoded
    return Conditioning.weighted_sum([encoded.select(i) for i in range(len(prompts))], [t.coefficient for t in prompts])
