"""Inversion: from an image's latent back to the noise that the sampler turns into it, for every family.

Three methods, each replayed by :func:`latentscape.sampling.denoise` (the one loop) with its own sampler:

- ``ddim`` (epsilon / v-prediction models, replayed by the ``ddim`` sampler): deterministic DDIM inversion
  (Song et al. 2021; Mokady et al. 2023 §3). Step i of the sampler maps ``x_i`` at noise level ``ᾱ_t`` to
  ``x_{i+1} = √ᾱ_prev·x̂0 + √(1−ᾱ_prev)·ε̂``; inverting it needs ε̂ at the unknown ``x_i``. The classic
  inversion takes ε̂ at ``x_{i+1}``; ``refine`` > 0 then iterates the fixed point ``x_i ← √ᾱ_t·x̂0(ε̂(x_i))
  + √(1−ᾱ_t)·ε̂(x_i)`` (AIDI, Pan et al. 2023; ReNoise, Garibi et al. 2024), whose solution is the exact
  inverse of the sampler's step, so the replay error shrinks with each iteration.
- ``flow`` (SD3 / FLUX, replayed by ``flow_euler``): Euler inversion of the flow ODE ``dx/dσ = v``,
  ``x_i = x_{i+1} − (σ_{i+1} − σ_i)·v``, with the same fixed-point refinement of ``v(x_i, t_i)``
  (the first-order solve of RF-Solver/FireFlow's implicit step).
- ``exact`` (any family, replayed by ``ddim`` or ``flow_euler``): edit-friendly inversion (Huberman-
  Spiegelglas et al. 2024). Each sampler level gets its own independently noised copy of the image
  (``√ᾱ·z0 + √(1−ᾱ)·ε_i``, or ``(1−σ)·z0 + σ·ε_i`` for flow), the last level is the image latent itself, and
  the per-step noise map is what the deterministic step misses: ``z_i = (x_{i+1} − step(x_i)) / s_i`` with
  ``s_i`` the noise level the step starts from. The maps are recorded by running the loop itself, so a
  replay with them (:class:`~latentscape.sampling.StepNoise`) retraces the recording operation for
  operation and ends on the image latent to float error. On flow models it works the same way: the last
  flow step has ``σ = 0`` (no noise of its own), and the stored map added after it is what makes the end exact.
  It records over any sampler of the loop (``sampler``): the replay repeats the recording's operations, so
  it is exact whatever the step rule (first or second order, multistep history); only the levels the steps
  are steered to depend on the sampler, and each scheduler's own ``add_noise`` / ``scale_noise`` gives them
  in its latent space (VP for DDIM/DPM++/UniPC, ``z0 + σ·ε`` for Euler/Heun, ``(1−σ)·z0 + σ·ε`` for flow).
  Stochastic samplers (``euler_a``, ``lcm``) draw their step noise from a CPU generator seeded with
  ``step_seed`` (positioned after one draw of initial noise, as a ``generate`` of that seed is): the maps
  absorb what those draws add, and a replay with the same seed retraces the recording.

Caption and CFG: the inversion is conditioned on a prompt (empty by default) at CFG 1. The replay must use
the same prompt and CFG. With CFG > 1 the guided ODE's trajectory no longer passes near the image, so the
``ddim``/``flow`` round trip gets worse as CFG grows (what null-text inversion was made to fix); ``exact``
stays exact at any CFG (its maps absorb the difference) but the maps grow larger than Gaussian noise.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from latentscape.core.guidance import cfg as apply_cfg
from latentscape.errors import LatentscapeError
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.samplers import make_scheduler
from latentscape.sampling import StepNoise, add_step_noise, denoise

log = logging.getLogger(__name__)

METHODS = ("ddim", "flow", "exact")
MAX_REFINE = 10


@dataclass(frozen=True)
class Inversion:
    """What :func:`replay` needs to turn the inversion back into the latents it came from."""

    noise: torch.Tensor  # (B, C, h, w): the ``noise`` argument of denoise
    method: str
    sampler: str
    steps: int
    guidance_scale: float = 1.0
    embedded_guidance: float | None = None
    refine: int = 0
    seed: int = 0  # exact: seed of the forward-noise draws
    step_noise: StepNoise | None = None  # exact only
    step_seed: int | None = None  # exact with a stochastic sampler: the seed of its step-noise generator

    def items(self, index: Sequence[int]) -> "Inversion":
        """The inversion of the given items, in that order."""
        from dataclasses import replace

        idx = list(index)
        return replace(self, noise=self.noise[idx], step_noise=self.step_noise.items(idx) if self.step_noise is not None else None)


def replay_sampler(model: Family, method: str) -> str:
    """The sampler whose steps the method inverts by default (``exact`` also records over any other)."""
    return "flow_euler" if model.is_flow else "ddim"


def step_generators(sampler: str, model: Family, step_seed: int | None, shape) -> list[torch.Generator] | None:
    """The step-noise generator of a stochastic sampler's recording or replay: seeded with ``step_seed`` and
    advanced past one draw of initial noise (where a ``generate`` of that seed holds it); None otherwise."""
    from latentscape.core.noise import draw_noise, seeded_generators
    from latentscape.samplers import resolve_sampler

    if not resolve_sampler(sampler, model.is_flow).stochastic:
        return None
    if step_seed is None:
        raise ValueError(f"sampler {sampler} draws step noise: an exact inversion over it needs a step_seed")
    gens = seeded_generators([step_seed])
    draw_noise(gens, tuple(shape))
    return gens


def check_method(model: Family, method: str, steps: int, refine: int = 0) -> None:
    """One sentence naming the field when the method does not fit the model or the numbers are out of range."""
    if method not in METHODS:
        raise LatentscapeError(f"method got '{method}'; accepted: {', '.join(METHODS)}.", field="method")
    if method == "flow" and not model.is_flow:
        raise LatentscapeError(
            f"method 'flow' inverts flow-matching models (SD3, FLUX), but '{model.model_id}' is a {model.name} "
            f"{model.prediction_type} model; use method 'ddim' or 'exact'."
        )
    if method == "ddim" and model.is_flow:
        raise LatentscapeError(
            f"method 'ddim' inverts epsilon/v-prediction models, but '{model.model_id}' is a flow-matching "
            f"{model.name} model; use method 'flow' or 'exact'."
        )
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 1000:
        raise LatentscapeError(f"steps got {steps}; expected a whole number from 1 to 1000.", field="steps")
    if not isinstance(refine, int) or isinstance(refine, bool) or not 0 <= refine <= MAX_REFINE:
        raise LatentscapeError(f"refine got {refine}; expected a whole number from 0 to {MAX_REFINE}.", field="refine")


def _sizes(model: Family, latents: torch.Tensor) -> tuple[int, int]:
    d = model.latent_format.downscale
    return latents.shape[-2] * d, latents.shape[-1] * d


def _vp_levels(scheduler, timesteps: torch.Tensor, steps: int) -> tuple[list[float], list[float]]:
    """ᾱ at each DDIM step's timestep and at the level it steps to (DDIMScheduler's own rule)."""
    ac = scheduler.alphas_cumprod
    final = float(scheduler.final_alpha_cumprod)
    stride = scheduler.config.num_train_timesteps // steps
    at = [float(ac[int(t)]) for t in timesteps]
    prev = [float(ac[int(t) - stride]) if int(t) - stride >= 0 else final for t in timesteps]
    return at, prev


def _to_eps(out: torch.Tensor, x: torch.Tensor, alpha: float, prediction: str) -> torch.Tensor:
    """The denoiser output at ``x`` (level ᾱ) as the noise it predicts."""
    a, s = alpha**0.5, (1 - alpha) ** 0.5
    if prediction == "epsilon":
        return out
    if prediction == "v_prediction":
        return a * out + s * x
    if prediction == "sample":
        return (x - a * out) / s
    raise LatentscapeError(f"the model's prediction type '{prediction}' cannot be inverted; expected epsilon, v_prediction or sample.")


@torch.no_grad()
def invert_latents(
    model: Family,
    latents: torch.Tensor,
    cond: Conditioning,
    uncond: Conditioning | None = None,
    *,
    method: str = "exact",
    steps: int = 50,
    guidance_scale: float = 1.0,
    embedded_guidance: float | None = None,
    refine: int = 0,
    seed: int = 0,
    sampler: str | None = None,
    step_seed: int | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> Inversion:
    """Invert model-space ``latents`` (B, C, h, w) under ``cond`` (B items; ``uncond`` when CFG > 1).

    ``refine``: fixed-point iterations per step for ``ddim``/``flow`` (each costs one model evaluation per
    step). ``seed``: the forward-noise draws of ``exact`` (one CPU generator per item). ``sampler``: the
    sampler an ``exact`` inversion is recorded over and replays with (None: ``ddim`` / ``flow_euler``, the
    only ones ``ddim``/``flow`` invert); ``step_seed``: a stochastic sampler's step-noise seed (single items
    only). ``callback(done, total)`` after every model evaluation.
    """
    check_method(model, method, steps, refine)
    if len(cond) != latents.shape[0]:
        raise ValueError(f"cond has {len(cond)} items for a batch of {latents.shape[0]}")
    native = replay_sampler(model, method)
    if sampler is not None and sampler != native and method != "exact":
        raise LatentscapeError(f"method '{method}' inverts the {native} sampler's steps, not {sampler}'s; use method 'exact', "
                               f"which records over any sampler, or sampler {native}.")
    sampler = sampler or native
    common = dict(method=method, sampler=sampler, steps=steps, guidance_scale=float(guidance_scale),
                  embedded_guidance=embedded_guidance)
    if method == "exact":
        generators = step_generators(sampler, model, step_seed, latents.shape[1:])
        if generators is not None and latents.shape[0] != 1:
            raise ValueError("an exact inversion over a stochastic sampler takes one item at a time")
        noise, step_noise = _exact(model, latents, cond, uncond, sampler, steps, guidance_scale, embedded_guidance, seed,
                                   callback, native=sampler == native, generators=generators)
        return Inversion(noise=noise, seed=seed, step_noise=step_noise, step_seed=step_seed if generators else None, **common)
    noise = _ode(model, latents, cond, uncond, sampler, steps, guidance_scale, embedded_guidance, refine, callback)
    return Inversion(noise=noise, refine=refine, **common)


def replay(model: Family, inversion: Inversion, cond: Conditioning, uncond: Conditioning | None = None, **options) -> torch.Tensor:
    """The latents an inversion comes back to: the one loop, from its noise, with its sampler and step noise."""
    if "generators" not in options and "noise_path" not in options:
        options["generators"] = step_generators(inversion.sampler, model, inversion.step_seed, inversion.noise.shape[1:])
    return denoise(model, inversion.noise, cond, uncond, sampler=inversion.sampler, steps=inversion.steps,
                   guidance_scale=inversion.guidance_scale, embedded_guidance=inversion.embedded_guidance,
                   step_noise=inversion.step_noise, **options)


def _predictor(model: Family, scheduler, cond: Conditioning, uncond: Conditioning | None, guidance_scale: float, embedded_guidance):
    """The guided denoiser output as the loop computes it (cond and uncond in one batched forward)."""
    use_cfg = model.uses_cfg(guidance_scale)
    if use_cfg and uncond is None:
        raise ValueError("guidance_scale > 1 needs an unconditional conditioning")
    cond_in = (Conditioning.cat([uncond, cond]) if use_cfg else cond).to(model.device, model.dtype)
    batch = len(cond)
    emb = None
    if embedded_guidance is not None:
        emb = torch.full((2 * batch if use_cfg else batch,), float(embedded_guidance))

    def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x_in = torch.cat([x, x]) if use_cfg else x
        if hasattr(scheduler, "scale_model_input"):
            x_in = scheduler.scale_model_input(x_in, t)
        out = model.predict(x_in, t, cond_in, emb)
        if use_cfg:
            out_uncond, out_cond = out.chunk(2)
            out = apply_cfg(out_uncond, out_cond, float(guidance_scale))
        return out

    return predict


def _ode(model, latents, cond, uncond, sampler, steps, guidance_scale, embedded_guidance, refine, callback) -> torch.Tensor:
    """Deterministic inversion of the ``ddim`` / ``flow_euler`` sampler's steps, last step first."""
    scheduler = make_scheduler(sampler, model.scheduler_config, model.is_flow)
    height, width = _sizes(model, latents)
    timesteps = model.set_timesteps(scheduler, steps, height, width)
    predict = _predictor(model, scheduler, cond, uncond, guidance_scale, embedded_guidance)
    x = latents.to(model.device, model.dtype)
    total, done = len(timesteps) * (1 + refine), 0
    if model.is_flow:
        sigmas = [float(s) for s in scheduler.sigmas]
    else:
        at, prev = _vp_levels(scheduler, timesteps, steps)
        prediction = scheduler.config.get("prediction_type", "epsilon")
        if scheduler.config.get("clip_sample") or scheduler.config.get("thresholding"):
            log.warning("this model's scheduler config makes DDIM clip its x0 prediction (clip_sample/thresholding, "
                        "diffusers' default where the config does not say); the ddim inversion cannot undo a clip, "
                        "so its round trip stays coarse. Use method 'exact', or set clip_sample false in the config.")
    for i in reversed(range(len(timesteps))):
        t = timesteps[i]
        guess = x
        for _ in range(1 + refine):
            out = predict(guess, t)
            if model.is_flow:  # x_{i+1} = x_i + (σ_{i+1} − σ_i)·v(x_i)
                guess = (x.float() - (sigmas[i + 1] - sigmas[i]) * out.float()).to(x.dtype)
            else:  # x_{i+1} = √ᾱ_prev·x̂0 + √(1−ᾱ_prev)·ε̂, with x̂0 and ε̂ both read off ε̂(x_i)
                eps = _to_eps(out.float(), guess.float(), at[i], prediction)
                x0 = (x.float() - (1 - prev[i]) ** 0.5 * eps) / prev[i] ** 0.5
                guess = (at[i] ** 0.5 * x0 + (1 - at[i]) ** 0.5 * eps).to(x.dtype)
            done += 1
            if callback is not None:
                callback(done, total)
        x = guess
    return x.float().cpu() if model.is_flow else (x.float() / float(scheduler.init_noise_sigma)).cpu()


class _Recorder:
    """A step-noise hook for the loop that steers step i onto ``targets[i]`` and keeps the noise it took."""

    def __init__(self, targets: list[torch.Tensor], scales: torch.Tensor):
        self.targets, self.scales, self.noise = targets, scales, []

    def __call__(self, step: int, latents: torch.Tensor) -> torch.Tensor:
        scale = self.scales[step]
        z = (self.targets[step].to(latents.device, torch.float32) - latents.float()) / scale
        self.noise.append(z.cpu())
        return add_step_noise(latents, scale, z)


def _exact(model, latents, cond, uncond, sampler, steps, guidance_scale, embedded_guidance, seed, callback, *, native=True,
           generators=None):
    """Edit-friendly inversion: independent noisy copies per level, per-step maps recorded by the loop itself."""
    scheduler = make_scheduler(sampler, model.scheduler_config, model.is_flow)
    height, width = _sizes(model, latents)
    timesteps = model.set_timesteps(scheduler, steps, height, width)
    z0 = latents.float().cpu()
    if model.is_flow and native:
        sigmas = [float(s) for s in scheduler.sigmas][: len(timesteps)]
        keep, noise_std = [1 - s for s in sigmas], sigmas
    elif native:
        at, _ = _vp_levels(scheduler, timesteps, steps)
        keep, noise_std = [a**0.5 for a in at], [(1 - a) ** 0.5 for a in at]
    else:
        keep, noise_std = _scheduler_levels(scheduler, timesteps, model.is_flow)
    gens = [torch.Generator("cpu").manual_seed(int(seed)) for _ in range(z0.shape[0])]
    draws = [torch.cat([torch.randn((1, *z0.shape[1:]), generator=g) for g in gens]) for _ in timesteps]
    levels = [k * z0 + s * e for k, s, e in zip(keep, noise_std, draws)]  # x_i at each step's level
    targets = levels[1:] + [z0]
    scales = torch.tensor(noise_std, dtype=torch.float32)
    start = levels[0] if model.is_flow else levels[0] / float(scheduler.init_noise_sigma)
    recorder = _Recorder(targets, scales)
    hook = None if callback is None else (lambda state: callback(state.step + 1, state.total))
    denoise(model, start, cond, uncond, sampler=sampler, steps=steps, guidance_scale=guidance_scale,
            embedded_guidance=embedded_guidance, step_noise=recorder, callback=hook, generators=generators)
    return start, StepNoise(noise=torch.stack(recorder.noise), scales=scales)


def _scheduler_levels(scheduler, timesteps: torch.Tensor, flow: bool) -> tuple[list[float], list[float]]:
    """(image share, noise std) of the latents each loop step starts from, read off a copy of the sampler's
    own scheduler (``add_noise``, or ``scale_noise`` for flow) at each step index: its latent space, whatever
    it is (VP for DPM++/UniPC, ``z0 + σ·ε`` for Euler/Heun, ``(1−σ)·z0 + σ·ε`` for flow)."""
    probe = copy.deepcopy(scheduler)
    one, zero = torch.ones(1), torch.zeros(1)
    keep, std = [], []
    for i, t in enumerate(timesteps):
        if hasattr(probe, "set_begin_index"):
            probe.set_begin_index(i)
        t = t.reshape(1).cpu()
        mix = (lambda x, n: probe.scale_noise(x, t, n)) if flow else (lambda x, n: probe.add_noise(x, n, t))
        keep.append(float(mix(one, zero)))
        std.append(float(mix(zero, one)))
    return keep, std


def interpolate_step_noise(a: StepNoise, b: StepNoise, t: Sequence[float]) -> StepNoise:
    """Item k's stream slerped step by step from ``a``'s single item to ``b``'s at ``t[k]`` (0 gives ``a``
    exactly, 1 gives ``b``): the per-step counterpart of slerping two inversions' starting noise."""
    from latentscape.core.interpolate import slerp

    if a.noise.shape != b.noise.shape or a.noise.shape[1] != 1 or not torch.equal(a.scales, b.scales):
        raise ValueError("step noise streams to interpolate must be single items of the same shape and schedule")
    tt = torch.as_tensor(list(t), dtype=torch.float64)
    steps = [slerp(a.noise[i].expand(len(tt), *a.noise.shape[2:]), b.noise[i].expand(len(tt), *b.noise.shape[2:]), tt)
             for i in range(a.noise.shape[0])]
    return StepNoise(noise=torch.stack(steps), scales=a.scales)


def interpolate_inversions(a: Inversion, b: Inversion, t: Sequence[float]) -> Inversion:
    """A path between two single-item inversions of the same method, steps and CFG: item k slerps the starting
    noise and (``exact``) every step's noise map at ``t[k]``. t = 0 replays ``a`` exactly (its image), t = 1 ``b``."""
    from dataclasses import replace

    from latentscape.core.interpolate import slerp

    same = (a.method, a.sampler, a.steps, a.guidance_scale, a.embedded_guidance) == (b.method, b.sampler, b.steps, b.guidance_scale, b.embedded_guidance)
    if not same or a.noise.shape != b.noise.shape or a.noise.shape[0] != 1:
        raise ValueError("inversions to interpolate must be single items with the same method, steps, CFG and shape")
    tt = torch.as_tensor(list(t), dtype=torch.float64)
    n = len(tt)
    noise = slerp(a.noise.expand(n, *a.noise.shape[1:]), b.noise.expand(n, *b.noise.shape[1:]), tt)
    step_noise = interpolate_step_noise(a.step_noise, b.step_noise, t) if a.step_noise is not None else None
    return replace(a, noise=noise, step_noise=step_noise)
