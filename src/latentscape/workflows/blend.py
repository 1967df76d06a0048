"""Blend 2 to 5 inputs into one image (Midjourney ``/blend``): prompts, seeds and images, weighted.

Inputs are keyframes (a prompt, ``seed:N``, ``PROMPT@SEED`` or an image); weights are >= 0 and are
normalised to sum 1 (default: equal).

- Prompts and seeds only ("noise" mode): the initial noise is the spherical barycentre of the inputs'
  noises (:func:`latentscape.core.blend.spherical_barycentre`), the conditioning and the CFG scale are the
  weighted sums of the inputs'. A one-hot weight gives that input's standalone ``generate`` image.
- With an image among them, ``image_mode="invert"`` (the default, "inverted" mode): each image is inverted
  (:mod:`latentscape.workflows.plan`) and blends as a prompt does: its inversion's noise joins the spherical
  barycentre, its per-step noise stream is blended with the weights (fading towards inputs without one) and
  its caption (its prompt, or empty) and CFG (its own, else 1) join the weighted sums. A one-hot weight on an
  image gives the image's VAE round trip; on a prompt, its ``generate`` image.
- With an image among them, ``image_mode="noise"`` ("latent" mode): every input becomes a latent (images VAE-encoded, prompts
  rendered standalone), the latents are averaged linearly with the weights, and the average is repainted
  by img2img at ``strength`` with the blended noise and conditioning (strength 0 decodes the average as
  is, so a one-hot weight gives that input's latent decoded: a prompt's standalone image, an image's
  VAE reconstruction). No text is needed: images alone blend with the negative prompt's conditioning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch

from latentscape.core.blend import normalise_weights, spherical_barycentre, weighted_lerp
from latentscape.errors import LatentscapeError
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.sampling import StepCallback
from latentscape.workflows.common import Output, config_dict, decode_images, hot_index, make_recipe, require
from latentscape.workflows.job import prepare_job
from latentscape.workflows.keyframes import KEYFRAME_HELP, Keyframe
from latentscape.workflows.plan import weighted_step_noise
from latentscape.workflows.render import (
    SamplingOptions, anchor_latents, as_keyframe, cfg_of, check_keyframe_cfgs, check_options, encode_job, image_inputs,
    inverted_anchors, render, seed_noise,
)

MIN_INPUTS, MAX_INPUTS = 2, 5


@dataclass(frozen=True, kw_only=True)
class BlendConfig(SamplingOptions):
    """Blend ``inputs`` (keyframes or their text) with ``weights`` (None: equal).

    ``seed`` is the seed of inputs that name none (-1: random, reported); ``strength`` is the img2img
    strength of the latent blend when an image is among the inputs (0: decode the blend as is).
    """

    inputs: tuple[Keyframe | str, ...] = ()
    weights: tuple[float, ...] | None = None
    seed: int = -1
    strength: float = 0.5  # image_mode noise only
    image_mode: str = "invert"

    KEYFRAME_FIELDS: ClassVar[tuple[str, ...]] = ("inputs",)


def check_weights(weights: Sequence[float] | None, n: int, flag: str = "--weights") -> list[float]:
    """Validated weights as floats (equal when None), summing to 1."""
    if weights is None:
        return [1.0 / n] * n
    values = list(weights)
    if len(values) != n:
        raise LatentscapeError(f"{flag} got {len(values)} weights for {n} inputs; accepted: one weight per input, e.g. {','.join(['1'] * n)}.")
    try:
        w = normalise_weights(values, n)
    except (ValueError, TypeError):
        raise LatentscapeError(
            f"{flag} got {','.join(f'{v:g}' if isinstance(v, (int, float)) else str(v) for v in values)}; "
            "accepted: numbers >= 0 that do not all equal 0."
        ) from None
    return [float(v) for v in w]


def parse_weights(text: str | None) -> tuple[float, ...] | None:
    """``"1,2,1"`` -> (1.0, 2.0, 1.0); None stays None."""
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise LatentscapeError(f"--weights got '{text}'; accepted: comma-separated numbers >= 0, e.g. 1,2,1.") from None


def check_inputs(inputs: Sequence[Any]) -> list[Keyframe]:
    require(MIN_INPUTS <= len(inputs) <= MAX_INPUTS,
            f"blend got {len(inputs)} inputs; accepted: {MIN_INPUTS} to {MAX_INPUTS} inputs, each {KEYFRAME_HELP}.")
    keyframes = [as_keyframe(item, f"blend input {i + 1}") for i, item in enumerate(inputs)]
    check_keyframe_cfgs(keyframes)
    return keyframes


def blend(model: Family, config: BlendConfig, *, callback: StepCallback | None = None) -> Output:
    """One image blending ``config.inputs``; its recipe replays it."""
    check_options(model, config)
    keyframes = check_inputs(config.inputs)
    n = len(keyframes)
    weights = check_weights(config.weights, n)
    job = prepare_job(model, config, keyframes)
    keyframes, images, inverted, seed, shape = job.keyframes, job.images, job.inverted, job.seed, job.shape
    width, height = job.size

    cfgs = [cfg_of(model, config, k.cfg, inverted_image=inverted and k.image is not None) for k in keyframes]
    cond, uncond = encode_job(model, config, [k.prompt or "" for k in keyframes], cfgs)
    w = torch.tensor(weights, dtype=torch.float64)
    hot = int(w.argmax())
    noises, generators = seed_noise([k.seed for k in keyframes], shape)
    noise = spherical_barycentre(noises[:, None], w)  # (1, C, h, w)
    blended = Conditioning.weighted_sum([cond.select(i) for i in range(n)], weights)
    blended_uncond = uncond.select(0) if uncond is not None else None
    cfg = sum(wi * ci for wi, ci in zip(weights, cfgs))

    if not images:
        mode = "noise"
        latents = render(model, config, noise, blended, blended_uncond, [cfg], [generators[hot]], callback=callback)
    elif inverted:
        mode = "inverted"
        anchors = inverted_anchors(model, config, keyframes, cfgs, shape, (width, height))
        noise = spherical_barycentre(anchors.noise[:, None], w)
        step_noise = weighted_step_noise(anchors.streams, w[None])
        latents = render(model, config, noise, blended, blended_uncond, [cfg], [anchors.generators[hot]],
                         step_noise=step_noise, callback=callback)
    else:
        mode = "latent"
        inputs_latents = anchor_latents(model, config, keyframes, cond, uncond, cfgs, shape, (width, height), callback)
        average = weighted_lerp(inputs_latents[:, None], w)  # (1, C, h, w)
        if config.strength == 0:
            latents = average
        else:
            _, fresh = seed_noise([keyframes[hot].seed], shape)
            latents = render(model, config, noise, blended, blended_uncond, [cfg], fresh,
                             init_latents=average, strength=config.strength, callback=callback)

    image = decode_images(model, latents)
    params = config_dict(dataclasses.replace(config, inputs=tuple(keyframes), weights=tuple(weights), seed=seed,
                                             width=width, height=height))
    if not images:  # the mode means nothing without images: such recipes stay as they were
        del params["image_mode"]
    label = " | ".join(f"{k.label() or '(empty)'} x{wi:.3g}" for k, wi in zip(keyframes, weights))
    extra: dict[str, Any] = {"Blend": label, "CFG scale": round(cfg, 6)}
    if mode == "latent":
        extra["Denoising strength"] = config.strength
    elif mode == "inverted":
        extra["Image mode"] = "invert"
    recipe = make_recipe("blend", model, params, keyframes[hot].seed, inputs=image_inputs(images),
                         infotext_extra=extra, prompt_line=blend_prompt(keyframes, weights))
    info = {"mode": mode, "weights": weights, "cfg": cfg, "seeds": [k.seed for k in keyframes], "width": width, "height": height}
    return Output(images=image, latents=latents, recipes=[recipe], info=info)


def blend_prompt(keyframes: Sequence[Keyframe], weights: Sequence[float]) -> str:
    """The infotext's prompt: the heaviest input that has a prompt ("" for images only).

    A weighted A1111 prompt such as ``(a:0.5) (b:0.5)`` would not reproduce a blend: A1111 scales token
    embeddings inside one sequence, latentscape averages whole conditionings. The heaviest prompt with the
    seed the infotext names (the heaviest input's) is that input's own image, which a one-hot blend equals,
    and the nearest standalone image otherwise; the ``Blend`` field lists every input and weight.
    """
    texts = [i for i, k in enumerate(keyframes) if k.prompt]
    return keyframes[hot_index([weights[i] if i in texts else -1.0 for i in range(len(keyframes))])].prompt if texts else ""
