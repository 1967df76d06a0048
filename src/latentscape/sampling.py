"""The one denoising loop, written once for every family and workflow.

It takes initial noise and conditioning from the caller (so morphs, blends and variations reuse it),
builds any diffusers scheduler from the model's own config, runs cond and uncond in one batched forward,
applies CFG and guidance rescale as pure functions, and reports every step to a callback.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from latentscape.core.guidance import cfg, rescale_guidance
from latentscape.errors import LatentscapeError
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.samplers import make_scheduler


class Cancelled(Exception):
    """Raised when a step callback returns False."""


@dataclass
class StepState:
    step: int  # 0-based index of the model evaluation
    total: int
    timestep: torch.Tensor
    latents: torch.Tensor  # (B, C, h, w) after this step
    denoised: torch.Tensor | None  # the scheduler's x0 prediction, when it gives one


StepCallback = Callable[[StepState], "bool | None"]


def _per_item(value: float | torch.Tensor, batch: int) -> torch.Tensor:
    """A float or (B,) tensor as a float32 (B,) tensor."""
    value = torch.as_tensor(value, dtype=torch.float32)
    return value.expand(batch) if value.ndim == 0 else value


def start_index(steps: int, strength: float, order: int = 1) -> int:
    """Index of the first timestep used at denoising ``strength`` (img2img): diffusers' rule."""
    init = min(int(steps * strength), steps)
    return max(steps - init, 0) * order


@torch.no_grad()
def denoise(
    model: Family,
    noise: torch.Tensor,
    cond: Conditioning,
    uncond: Conditioning | None = None,
    *,
    sampler: str = "euler",
    steps: int = 25,
    guidance_scale: float | torch.Tensor = 7.5,
    guidance_rescale: float | torch.Tensor = 0.0,
    embedded_guidance: float | torch.Tensor | None = None,
    init_latents: torch.Tensor | None = None,
    strength: float = 1.0,
    generators: Sequence[torch.Generator] | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Denoise ``noise`` (B, C, h, w) into model-space latents.

    - ``cond``/``uncond``: B items each (``uncond`` is needed only when some ``guidance_scale`` > 1).
    - ``guidance_scale``, ``guidance_rescale``, ``embedded_guidance``: a float, or a (B,) tensor per item.
    - ``init_latents`` + ``strength`` < 1: img2img, starting part-way through the schedule.
    - ``generators``: one CPU generator per item for stochastic samplers (ancestral, LCM).
    - ``callback(StepState)`` after every model evaluation; returning False cancels (:class:`Cancelled`).
    """
    batch, _, h, w = noise.shape
    height, width = h * model.latent_format.downscale, w * model.latent_format.downscale
    if len(cond) != batch:
        raise ValueError(f"cond has {len(cond)} items for a batch of {batch}")
    scheduler = make_scheduler(sampler, model.scheduler_config, model.is_flow)
    timesteps = model.set_timesteps(scheduler, steps, height, width)

    latents = noise.to(model.device, model.dtype)
    if init_latents is not None:
        begin = start_index(steps, strength, scheduler.order)
        timesteps = timesteps[begin:]
        if len(timesteps) == 0:
            raise LatentscapeError(
                f"--strength {strength} with {steps} steps leaves no denoising step; use a strength of at least {1 / steps:.3g}."
            )
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(begin)
        init = init_latents.to(model.device, model.dtype)
        t0 = timesteps[:1].repeat(batch)
        latents = scheduler.scale_noise(init, t0, latents) if model.is_flow else scheduler.add_noise(init, latents, t0)
    elif not model.is_flow:  # flow matching starts from unit-variance noise as is
        latents = latents * scheduler.init_noise_sigma

    scale = _per_item(guidance_scale, batch).to(model.device)
    use_cfg = model.uses_cfg(scale)
    if use_cfg and uncond is None:
        raise ValueError("guidance_scale > 1 needs an unconditional conditioning")
    cond_in = Conditioning.cat([uncond, cond]) if use_cfg else cond
    cond_in = cond_in.to(model.device, model.dtype)
    emb = None
    if embedded_guidance is not None:
        emb = _per_item(embedded_guidance, batch)
        emb = torch.cat([emb, emb]) if use_cfg else emb
    rescale = _per_item(guidance_rescale, batch).to(model.device)

    step_params = inspect.signature(scheduler.step).parameters
    step_kwargs = {}
    if "generator" in step_params and generators is not None:
        step_kwargs["generator"] = list(generators) if len(generators) > 1 else generators[0]
    if "eta" in step_params:
        step_kwargs["eta"] = 0.0

    total = len(timesteps)
    for i, t in enumerate(timesteps):
        x_in = torch.cat([latents, latents]) if use_cfg else latents
        if hasattr(scheduler, "scale_model_input"):  # flow-matching schedulers have none
            x_in = scheduler.scale_model_input(x_in, t)
        out = model.predict(x_in, t, cond_in, emb)
        if use_cfg:
            out_uncond, out_cond = out.chunk(2)
            out = cfg(out_uncond, out_cond, scale if scale.unique().numel() > 1 else float(scale[0]))
            if bool((rescale > 0).any()):
                out = rescale_guidance(out, out_cond, rescale if rescale.unique().numel() > 1 else float(rescale[0]))
        result = scheduler.step(out, t, latents, **step_kwargs, return_dict=True)
        latents = result.prev_sample
        if callback is not None:
            denoised = getattr(result, "pred_original_sample", None)
            if denoised is None:
                denoised = getattr(result, "denoised", None)
            if callback(StepState(i, total, t, latents, denoised)) is False:
                raise Cancelled(f"cancelled at step {i + 1} of {total}")
    return latents
