"""txt2img and img2img: prompts + seeds -> images, each with its recipe."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, ClassVar

from latentscape.core.noise import batch_seeds, draw_noise, resolve_seed, seeded_generators
from latentscape.io.images import fit_size, load_image, pil_to_tensor
from latentscape.io.recipe import file_sha256
from latentscape.models.family import Family
from latentscape.sampling import StepCallback, denoise
from latentscape.workflows.common import (
    Output,
    config_dict,
    decode_images,
    guidance,
    make_recipe,
    require,
    resolve_size,
)
from latentscape.workflows.options import SamplingFields, check_sampling_fields
from latentscape.workflows.prompt_editing import encode_edited


@dataclass(frozen=True)
class GenerateConfig(SamplingFields):
    """One txt2img (or, with ``init_image``, img2img) job; the sampling fields are :class:`SamplingFields`'.

    ``seed`` -1 draws a random seed (reported in the output); a batch of N uses seeds s..s+N-1.
    ``width``/``height`` None use the model's size (img2img: the input image's size).
    """

    prompt: str
    seed: int = -1
    batch: int = 1
    init_image: str | None = None
    strength: float = 0.75

    PROMPT_EDITING: ClassVar[bool] = True  # the prompt may use A1111 prompt editing [from:to:when]


def generate(model: Family, config: GenerateConfig, *, callback: StepCallback | None = None) -> Output:
    """Run ``config`` on ``model``: returns images, latents and one recipe per image."""
    check_sampling_fields(model, config, batch=config.batch)
    seed = resolve_seed(config.seed)
    seeds = batch_seeds(seed, config.batch)

    init_latents, inputs, workflow = None, {}, "generate"
    if config.init_image is not None:
        require(0 <= config.strength <= 1, f"strength got {config.strength}; expected a number from 0 (keep the image: its VAE round trip) to 1 (ignore it).", "strength")
        size = (config.width, config.height) if config.width and config.height else None
        image = fit_size(load_image(config.init_image), model.latent_format.size_multiple, config.resize, size=size,
                         name=f"input image '{config.init_image}'")
        width, height = image.size
        init_latents = model.encode_images(pil_to_tensor([image])).repeat(config.batch, 1, 1, 1)
        inputs = {"init_image": {"path": str(config.init_image), "sha256": file_sha256(config.init_image)}}
        workflow = "img2img"
    else:
        width, height = resolve_size(model, config.width, config.height)

    cfg_used, loop_scale, embedded = guidance(model, config.cfg, config.true_cfg)
    need_uncond = model.uses_cfg(loop_scale)
    cond, uncond, cond_schedule = encode_edited(  # A1111 prompt editing [from:to:when]: a cond per stage
        model, config.prompt, config.negative, need_uncond, steps=config.steps, batch=config.batch)

    shape = model.latent_format.latent_shape(width, height)
    generators = seeded_generators(seeds)
    noise = draw_noise(generators, shape)  # the generators continue into stochastic samplers' step noise
    if init_latents is not None and config.strength == 0:  # nothing to repaint: the image's VAE round trip
        latents = init_latents
    else:
        latents = denoise(
            model, noise, cond, uncond,
            sampler=config.sampler, steps=config.steps, guidance_scale=loop_scale,
            guidance_rescale=config.guidance_rescale, embedded_guidance=embedded,
            init_latents=init_latents, strength=config.strength if init_latents is not None else 1.0,
            generators=generators, callback=callback, cond_schedule=cond_schedule,
        )
    images = decode_images(model, latents)
    params = config_dict(dataclasses.replace(config, seed=seed, cfg=cfg_used, width=width, height=height))
    extra = {}
    if init_latents is not None:
        extra["Denoising strength"] = config.strength
    if config.guidance_rescale:
        extra["CFG Rescale phi"] = config.guidance_rescale
    recipes = [make_recipe(workflow, model, params, s, batch_index=i, inputs=inputs, infotext_extra=extra) for i, s in enumerate(seeds)]
    return Output(images=images, latents=latents, recipes=recipes, info={"seed": seed, "width": width, "height": height})

