"""txt2img, img2img and ``generate --from``: prompts + seeds (or an image, or a latent/inversion file) -> images, each
with its recipe."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from latentscape.core.noise import batch_seeds, draw_noise, resolve_seed, seeded_generators
from latentscape.io.images import fit_size, load_image, pil_to_tensor
from latentscape.io.recipe import file_sha256
from latentscape.inversion import Inversion
from latentscape.models.family import Family
from latentscape.samplers import resolve_sampler
from latentscape.sampling import StepCallback
from latentscape.workflows.common import (
    Output,
    config_dict,
    decode_images,
    guidance,
    make_recipe,
    require,
    resolve_size,
)
from latentscape.workflows.latent_start import check_model, load_start, read_start_header
from latentscape.workflows.options import SamplingFields, check_sampling_fields
from latentscape.workflows.plan import Items, render
from latentscape.workflows.prompt_editing import encode_edited


@dataclass(frozen=True)
class GenerateConfig(SamplingFields):
    """One txt2img (or, with ``init_image``, img2img) job; the sampling fields are :class:`SamplingFields`'.

    ``seed`` -1 draws a random seed (reported in the output); a batch of N uses seeds s..s+N-1.
    ``width``/``height`` None use the model's size (img2img: the input image's size).

    ``from_latents``: start from a latent file instead of seeded noise (:mod:`latentscape.workflows.latent_start`).
    An inversion file (``invert``) replays its stored noise with its own sampler and steps (``steps`` and
    ``sampler`` must be those), and its caption and CFG where ``prompt``/``cfg`` are None: the image again;
    another prompt or CFG edits it. A plain latent file (``encode``) is img2img in latent space at ``strength``.
    """

    prompt: str | None
    seed: int = -1
    batch: int = 1
    init_image: str | None = None
    strength: float = 0.75
    from_latents: str | None = field(default=None, metadata={"omit_when_unset": True})

    PROMPT_EDITING: ClassVar[bool] = True  # the prompt may use A1111 prompt editing [from:to:when]
    # None (from_latents: the inversion's caption) is resolved before the recipe is written, so a recipe's is text
    RECIPE_TEXT_FIELDS: ClassVar[tuple[str, ...]] = ("prompt",)


@dataclass
class _Start:
    """Where the denoise starts when it does not start from seeded noise."""

    init_latents: torch.Tensor | None = None  # (B, C, h, w) model space: img2img
    inversion: Inversion | None = None  # replayed from its own noise
    inputs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # infotext fields


def generate(model: Family, config: GenerateConfig, *, callback: StepCallback | None = None) -> Output:
    """Run ``config`` on ``model``: returns images, latents and one recipe per image."""
    start = _Start()
    if config.from_latents is not None:
        config, start = _from_file(model, config)
    require(isinstance(config.prompt, str), f"prompt got {config.prompt!r}; expected text (None only with from_latents an "
            "inversion file: its caption).", "prompt")
    check_sampling_fields(model, config, batch=config.batch)
    seed = resolve_seed(config.seed)
    seeds = batch_seeds(seed, config.batch) if start.inversion is None else [seed] * config.batch

    workflow = "generate"
    if config.init_image is not None:
        require(0 <= config.strength <= 1, f"strength got {config.strength}; expected a number from 0 (keep the image: its VAE round trip) to 1 (ignore it).", "strength")
        size = (config.width, config.height) if config.width and config.height else None
        image = fit_size(load_image(config.init_image), model.latent_format.size_multiple, config.resize, size=size,
                         name=f"input image '{config.init_image}'")
        width, height = image.size
        start.init_latents = model.encode_images(pil_to_tensor([image])).repeat(config.batch, 1, 1, 1)
        start.inputs = {"init_image": {"path": str(config.init_image), "sha256": file_sha256(config.init_image)}}
        workflow = "img2img"
    else:
        width, height = resolve_size(model, config.width, config.height)
    init_latents = start.init_latents

    cfg_used, loop_scale, embedded = guidance(model, config.cfg, config.true_cfg)
    need_uncond = model.uses_cfg(loop_scale)
    cond, uncond, cond_schedule = encode_edited(  # A1111 prompt editing [from:to:when]: a cond per stage
        model, config.prompt, config.negative, need_uncond, steps=config.steps, batch=config.batch)

    shape = model.latent_format.latent_shape(width, height)
    generators = seeded_generators(seeds) if start.inversion is None else None
    noise = draw_noise(generators, shape) if generators is not None else start.inversion.noise
    if init_latents is not None and config.strength == 0:  # nothing to repaint: the image's VAE round trip
        latents = init_latents
    else:  # generators continue into stochastic samplers' step noise; an inversion brings its own step noise
        def per_item(value: float) -> torch.Tensor:
            return torch.full((config.batch,), float(value), dtype=torch.float64)  # one value: the float path

        items = Items(noise, cond, uncond, per_item(loop_scale), None if embedded is None else per_item(embedded),
                      guidance_rescale=config.guidance_rescale, generators=generators,
                      step_noise=start.inversion.step_noise if start.inversion is not None else None,
                      init_latents=init_latents, strength=config.strength if init_latents is not None else 1.0,
                      cond_schedule=cond_schedule)
        latents = render(model, items, sampler=config.sampler, steps=config.steps, callback=callback)
    images = decode_images(model, latents)
    params = config_dict(dataclasses.replace(config, seed=seed, cfg=cfg_used, width=width, height=height))
    extra = dict(start.extra)
    if init_latents is not None:
        extra["Denoising strength"] = config.strength
    if config.guidance_rescale:
        extra["CFG Rescale phi"] = config.guidance_rescale
    recipes = [make_recipe(workflow, model, params, s, batch_index=i, inputs=start.inputs, infotext_extra=extra) for i, s in enumerate(seeds)]
    return Output(images=images, latents=latents, recipes=recipes, info={"seed": seed, "width": width, "height": height})


def _from_file(model: Family, config: GenerateConfig) -> tuple[GenerateConfig, _Start]:
    """Check a ``from_latents`` file against the model and ``config``; the config with the file's caption,
    CFG, size and item count filled in, and where the denoise starts."""
    head = read_start_header(config.from_latents)
    check_model(head, model)
    path = config.from_latents
    require(config.init_image is None, f"from_latents '{path}' and init_image '{config.init_image}' are two starting "
            "points; give one of them.", "from_latents")
    given = (config.width, config.height)
    require(given in ((None, None), (head.width, head.height)), f"size {given[0]}x{given[1]} differs from the "
            f"{head.width}x{head.height} of the file '{path}'; leave the size out (it is the file's).", "width")
    items = head.items  # one output each; a single latent item may be repainted with a batch of seeds
    require(config.batch in (1, items) or (head.kind == "latents" and items == 1), f"batch got {config.batch}; the file "
            f"'{path}' holds {items} item(s), one output each: leave batch out.", "batch")
    sha = file_sha256(path)
    start = _Start(inputs={"from_latents": {"path": str(path), "sha256": sha}})
    fill: dict[str, Any] = {"width": head.width, "height": head.height}
    if head.kind == "latents":
        require(0 <= config.strength <= 1, f"strength got {config.strength}; expected a number from 0 (keep the latents: "
                "their VAE decode) to 1 (ignore them).", "strength")
        latents = load_start(head)
        batch = max(items, config.batch)
        start.init_latents = latents if items == batch else latents.repeat(batch, 1, 1, 1)
        start.extra = {"Start latents": sha[:10]}
        return dataclasses.replace(config, batch=batch, **fill), start
    record = head.record
    made = head.made_with()
    require(config.steps == record["steps"], f"steps got {config.steps}, but '{path}' is {made}, which "
            f"replays only with those: pass steps={record['steps']} (or leave it out).", "steps")
    require(resolve_sampler(config.sampler, model.is_flow).name == record["sampler"], f"sampler got '{config.sampler}', "
            f"but '{path}' is {made}, which replays only with those: pass sampler='{record['sampler']}' "
            "(or leave it out).", "sampler")
    inv_seed = int(record.get("seed", 0))
    require(config.seed in (-1, inv_seed), f"seed got {config.seed}, which plays no part with the inversion '{path}' (its "
            "noise is stored); leave it out.", "seed")
    start.inversion = load_start(head)
    start.extra = {"Start latents": f"{record['method']} inversion {sha[:10]}"}
    cfg = config.cfg
    if cfg is None:  # the CFG it was inverted with (on guidance-distilled models: its guidance input)
        cfg = record.get("embedded_guidance") if model.embedded_guidance else record["cfg"]
    prompt = record["prompt"] if config.prompt is None else config.prompt
    return dataclasses.replace(config, prompt=prompt, cfg=cfg, seed=inv_seed, batch=items, strength=1.0, **fill), start
