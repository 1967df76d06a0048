"""Variations of an image (Midjourney "Vary", A1111 variation seeds).

A generated source (a prompt and seed, or a PNG whose recipe is a txt2img ``generate``) varies in noise
space: variation i starts from A1111's ``slerp(strength, noise(seed), noise(variation_seed + i))`` with the
source's prompt, CFG, sampler and size, so strength 0 is the source image itself and strength 1 is the
variation seed's own image. A stochastic sampler's step noise keeps following the source seed (A1111),
except at strength 1, where it follows the variation seed so that the image is exactly that seed's.

An external image, ``image_mode="invert"`` (the default), is inverted (:mod:`latentscape.workflows.plan`)
and then varies as a generated source does: variation i starts from ``slerp(strength, inversion noise,
noise(variation_seed + i))`` with the image's per-step noise stream scaled by ``1 − strength``, under the
image's caption (``prompt``, else empty) at its CFG (``cfg``, else 1); strength 0 is the image's VAE round
trip, and the presets are the generated source's. With ``image_mode="noise"`` it varies by img2img:
variation i repaints it at denoising ``strength`` with seed s + i.

Presets (``strength`` may be a name or a number in [0, 1]):

=========  ==============================  ==================================
preset     generated source (variation)    external image (denoising strength)
=========  ==============================  ==================================
subtle     0.2                             0.35
strong     0.6                             0.65
=========  ==============================  ==================================
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from latentscape.core.interpolate import slerp_a1111
from latentscape.core.noise import batch_seeds, resolve_seed
from latentscape.errors import LatentscapeError
from latentscape.io.recipe import Recipe, file_sha256, read_recipe
from latentscape.models.family import Family
from latentscape.sampling import StepCallback, StepNoise
from latentscape.workflows.common import MAX_BATCH, Output, config_dict, decode_images, make_recipe, require, resolve_size
from latentscape.workflows.keyframes import IMAGE_EXTENSIONS, Keyframe, parse_keyframe
from latentscape.workflows.plan import check_image_mode
from latentscape.workflows.prompt_editing import encode_job_edited
from latentscape.workflows.render import (
    SamplingOptions, cfg_of, check_options, image_latents, inverted_anchors, job_size, render, seed_noise,
)

log = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, float]] = {
    "subtle": {"seed": 0.2, "image": 0.35},
    "strong": {"seed": 0.6, "image": 0.65},
}
SOURCE_HELP = "a PNG made by `latentscape generate`, another image file, PROMPT@SEED, a prompt (with --seed) or seed:N"
# recipe params a generated source hands on to its variations
_INHERITED = ("prompt", "negative", "steps", "sampler", "cfg", "true_cfg", "guidance_rescale", "width", "height")


@dataclass(frozen=True, kw_only=True)
class VaryConfig(SamplingOptions):
    """``n`` variations of ``prompt`` at ``seed`` (or of ``init_image``) at ``strength``.

    ``variation_seed`` -1 draws a random one (reported); variation i uses ``variation_seed + i`` (generated
    sources) or seed ``seed + i`` (external images). Build it from a source string with :func:`vary_config`.
    """

    prompt: str = ""
    seed: int = -1
    n: int = 4
    strength: float | str = "subtle"
    variation_seed: int = -1
    init_image: str | None = None
    image_mode: str = "invert"  # an external image: invert (vary its inversion) or noise (img2img)

    PROMPT_EDITING: ClassVar[bool] = True  # the prompt may use A1111 prompt editing [from:to:when]


def resolve_strength(strength: float | str, mode: str) -> float:
    """A preset name or a number -> the number for ``mode`` ("seed" or "image"), validated."""
    if isinstance(strength, str):
        key = strength.strip().lower()
        if key in PRESETS:
            return PRESETS[key][mode]
        try:
            strength = float(key)
        except ValueError:
            raise LatentscapeError(
                f"--strength got '{strength}'; accepted: subtle, strong or a number from 0 to 1."
            ) from None
    value = float(strength)
    if mode == "image":
        require(0 < value <= 1, f"--strength got {value} for an external image; accepted: subtle, strong or a number in (0, 1] (img2img denoising strength).")
    else:
        require(0 <= value <= 1, f"--strength got {value}; accepted: subtle, strong or a number from 0 to 1.")
    return value


def _generated_recipe(path: Path) -> Recipe | None:
    """The txt2img recipe in ``path`` when it is a latentscape PNG made by ``generate``; else None."""
    from latentscape.io.recipe_schema import validate_params
    from latentscape.workflows.generate import GenerateConfig

    try:
        recipe = read_recipe(path)
        validate_params(GenerateConfig, recipe.params)  # untrusted: params of the wrong type make it a plain image
    except LatentscapeError:
        return None
    return recipe if recipe.workflow == "generate" and not recipe.params.get("init_image") and not recipe.params.get("from_latents") else None


def vary_config(source: str, **overrides: Any) -> tuple[VaryConfig, Recipe | None]:
    """A :class:`VaryConfig` for ``source`` (see ``SOURCE_HELP``) and the generated source's recipe (or None);
    the recipe is untrusted, so the model it names is for the caller to use only when the user asks.

    ``overrides`` (None values are ignored) replace what the source gives, e.g. ``steps`` or ``n``.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    text = source.strip() if isinstance(source, str) else ""
    path = Path(text[len("image:"):] if text.lower().startswith("image:") else text)
    is_file = bool(text) and (text.lower().startswith("image:") or text.lower().endswith(IMAGE_EXTENSIONS) or path.is_file())
    if is_file:
        if not path.is_file():
            raise LatentscapeError(f"vary source '{source}' is not an existing file; accepted: {SOURCE_HELP}.")
        recipe = _generated_recipe(path)
        if recipe is not None:
            base = {k: recipe.params[k] for k in _INHERITED if k in recipe.params}
            base["seed"] = recipe.seed
            return VaryConfig(**{**base, **given}), recipe
        return VaryConfig(**{**given, "init_image": str(path)}), None
    keyframe = parse_keyframe(text)
    if keyframe.image is not None:  # unreachable: image keyframes are files, handled above
        raise LatentscapeError(f"vary source '{source}' is not an existing file; accepted: {SOURCE_HELP}.")
    base: dict[str, Any] = {}
    if keyframe.prompt is not None:
        base["prompt"] = keyframe.prompt
    if keyframe.seed is not None:
        base["seed"] = keyframe.seed
    if keyframe.cfg is not None:
        base["cfg"] = keyframe.cfg
    return VaryConfig(**{**given, **base}), None


def vary(model: Family, config: VaryConfig, *, callback: StepCallback | None = None) -> Output:
    """``config.n`` variations of the source: images, latents and one recipe each."""
    check_options(model, config)
    n = config.n
    require(isinstance(n, int) and 1 <= n <= MAX_BATCH, f"-n got {n}; expected a whole number of variations from 1 to {MAX_BATCH}.")
    check_image_mode(config.image_mode)
    inverted = config.init_image is not None and config.image_mode == "invert"
    mode = "inverted" if inverted else "image" if config.init_image is not None else "seed"
    strength = resolve_strength(config.strength, "seed" if inverted else mode)
    seed = resolve_seed(config.seed)
    cfg = cfg_of(model, config, config.cfg, inverted_image=inverted)
    step_noise = None
    extra: dict[str, Any] = {}
    if isinstance(config.strength, str) and config.strength.strip().lower() in PRESETS:
        extra["Vary"] = config.strength.strip().lower()

    if mode == "inverted":
        width, height = job_size(model, config, [config.init_image])
        init, shape = None, model.latent_format.latent_shape(width, height)
        anchor = inverted_anchors(model, config, [Keyframe(image=config.init_image, prompt=config.prompt, seed=seed)],
                                  [cfg], shape, (width, height))
        variation_seed = resolve_seed(config.variation_seed)
        variation_seeds = batch_seeds(variation_seed, n)
        other, other_gens = seed_noise(variation_seeds, shape)
        _, source_gens = seed_noise([seed] * n, shape)
        noise = slerp_a1111(anchor.noise.repeat(n, 1, 1, 1), other, strength)
        generators = other_gens if strength == 1 else source_gens
        stream = anchor.streams[0]
        step_noise = StepNoise(stream.noise.repeat(1, n, 1, 1, 1) * (1 - strength), stream.scales)  # type: ignore[union-attr]
        inputs = {"init_image": {"path": str(config.init_image), "sha256": file_sha256(config.init_image)}}
        extras = [{**extra, "Variation seed": v, "Variation seed strength": strength, "Image mode": "invert"} for v in variation_seeds]
        workflow_seeds = [seed] * n
    elif mode == "image":
        width, height = job_size(model, config, [config.init_image])
        init = image_latents(model, [config.init_image], (width, height)).repeat(n, 1, 1, 1)
        seeds = batch_seeds(seed, n)
        noise, generators = seed_noise(seeds, model.latent_format.latent_shape(width, height))
        variation_seed = config.variation_seed
        inputs = {"init_image": {"path": str(config.init_image), "sha256": file_sha256(config.init_image)}}
        extras = [{**extra, "Denoising strength": strength} for _ in range(n)]
        workflow_seeds = seeds
    else:
        width, height = resolve_size(model, config.width, config.height)
        init, inputs = None, {}
        shape = model.latent_format.latent_shape(width, height)
        variation_seed = resolve_seed(config.variation_seed)
        variation_seeds = batch_seeds(variation_seed, n)
        source, source_gens = seed_noise([seed] * n, shape)
        other, other_gens = seed_noise(variation_seeds, shape)
        noise = slerp_a1111(source, other, strength)  # A1111's own slerp, so the infotext reproduces there
        generators = other_gens if strength == 1 else source_gens
        extras = [{**extra, "Variation seed": v, "Variation seed strength": strength} for v in variation_seeds]
        workflow_seeds = [seed] * n

    cond, uncond, cond_schedule = encode_job_edited(model, config, config.prompt, cfg, n)  # [from:to:when] too
    latents = render(model, config, noise, cond, uncond, [cfg] * n, generators, cond_schedule=cond_schedule,
                     init_latents=init, strength=strength if init is not None else 1.0, step_noise=step_noise,
                     callback=callback)
    images = decode_images(model, latents)
    params = config_dict(dataclasses.replace(config, seed=seed, variation_seed=variation_seed, strength=strength,
                                             cfg=cfg, width=width, height=height))
    recipes = [make_recipe("vary", model, params, s, batch_index=i, inputs=inputs, infotext_extra=e)
               for i, (s, e) in enumerate(zip(workflow_seeds, extras))]
    info = {"mode": mode, "seed": seed, "strength": strength, "width": width, "height": height}
    if mode in ("seed", "inverted"):
        info["variation_seeds"] = batch_seeds(variation_seed, n)
    return Output(images=images, latents=latents, recipes=recipes, info=info)
