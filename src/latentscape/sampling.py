"""The one denoising loop, written once for every family and workflow.

It takes initial noise and conditioning from the caller (so morphs, blends and variations reuse it),
builds any diffusers scheduler from the model's own config, runs cond and uncond in one batched forward,
applies CFG and guidance rescale as pure functions, and reports every step to a callback. Stochastic
samplers can have their per-step noise interpolated between two generator streams (:class:`NoisePath`).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from latentscape.core.guidance import cfg, rescale_guidance
from latentscape.core.interpolate import slerp
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


@dataclass(frozen=True)
class NoisePath:
    """Per-step noise of stochastic samplers (ancestral, LCM), interpolated per item between two streams.

    ``sources`` are CPU generators positioned where a standalone run's generator is after its initial
    noise (e.g. one per keyframe of a morph); item i's step noise is ``slerp(n[a[i]], n[b[i]], t[i])`` with
    n[k] the draw source k makes at this step. t = 0 is exactly source a's own draw (t = 1: source b's), so
    an item on a keyframe reproduces that keyframe's standalone run. The callers' generators are not advanced.
    """

    sources: Sequence[torch.Generator]
    a: Sequence[int]
    b: Sequence[int]
    t: Sequence[float]


@dataclass(frozen=True)
class StepNoise:
    """Stored per-step noise (an ``exact`` inversion's): after scheduler step i, item b's latents get
    ``scales[i]·noise[i, b]`` added, so a deterministic sampler retraces a recorded trajectory exactly.

    ``noise`` (steps, B, C, h, w) float32, ``scales`` (steps,) float32: the noise level each step starts
    from, so the stored maps are O(1) like Gaussian noise and two streams can be slerped step by step.
    """

    noise: torch.Tensor
    scales: torch.Tensor

    def __call__(self, step: int, latents: torch.Tensor) -> torch.Tensor:
        return add_step_noise(latents, self.scales[step], self.noise[step])

    def items(self, index: Sequence[int]) -> "StepNoise":
        """The streams of the given items, in that order."""
        return StepNoise(self.noise[:, list(index)], self.scales)


def add_step_noise(latents: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``latents + scale·noise`` in the latents' dtype: the one expression recording and replay share."""
    return latents + (scale.to(latents.device, torch.float32) * noise.to(latents.device, torch.float32)).to(latents.dtype)


def _per_item(value: float | torch.Tensor, batch: int) -> torch.Tensor:
    """A float or (B,) tensor as a float32 (B,) tensor."""
    value = torch.as_tensor(value, dtype=torch.float32)
    return value.expand(batch) if value.ndim == 0 else value


def _same_or_per_item(values: torch.Tensor) -> float | torch.Tensor:
    """One float when every item shares the value (bit-identical to diffusers' scalar path), else the tensor."""
    return float(values[0]) if bool((values == values[0]).all()) else values


@dataclass(frozen=True)
class _Guidance:
    """What CFG needs at every step, decided once before the loop: no host sync (``float``/``bool`` of a
    device tensor) happens per step. ``scale``/``rescale`` are one float when every item shares the value
    (bit-identical to diffusers' scalar path), else a (B,) tensor; ``guided``: which items have a scale > 1."""

    scale: float | torch.Tensor
    rescale: float | torch.Tensor | None  # None: no item rescales
    guided: torch.Tensor | None  # (B,) bool, None when every item is guided

    @classmethod
    def of(cls, scale: torch.Tensor, rescale: torch.Tensor) -> "_Guidance":
        guided_items = scale > 1
        return cls(_same_or_per_item(scale), _same_or_per_item(rescale) if bool((rescale > 0).any()) else None,
                   None if bool(guided_items.all()) else guided_items)


def _guide(uncond: torch.Tensor, cond: torch.Tensor, guidance: _Guidance) -> torch.Tensor:
    """CFG and guidance rescale per item; items with a scale <= 1 get the plain conditional prediction,
    as they would in a batch of their own (diffusers runs no CFG there)."""
    out = cfg(uncond, cond, guidance.scale)
    if guidance.rescale is not None:
        out = rescale_guidance(out, cond, guidance.rescale)
    if guidance.guided is not None:
        out = torch.where(guidance.guided.view(-1, *([1] * (cond.ndim - 1))), out, cond)
    return out


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
    cond_schedule: Callable[[int, int], Conditioning] | None = None,
    noise_path: NoisePath | None = None,
    start_step: int = 0,
    step_noise: "StepNoise | Callable[[int, torch.Tensor], torch.Tensor] | None" = None,
) -> torch.Tensor:
    """Denoise ``noise`` (B, C, h, w) into model-space latents.

    - ``cond``/``uncond``: B items each (``uncond`` is needed only when some ``guidance_scale`` > 1).
    - ``guidance_scale``, ``guidance_rescale``, ``embedded_guidance``: a float, or a (B,) tensor per item.
    - ``init_latents`` + ``strength`` < 1: img2img, starting part-way through the schedule.
    - ``generators``: one CPU generator per item for stochastic samplers (ancestral, LCM).
    - ``noise_path``: instead of ``generators``, step noise interpolated between streams (morphs).
    - ``start_step`` k > 0: ``noise`` is the latents at step k of a run with these settings (what that run
      holds after its first k steps): the schedule begins there, and the step noise of stochastic samplers
      (``generators`` or ``noise_path``) is advanced past the k skipped steps' draws, so starting from a
      run's own latents at step k reproduces that run. Multistep samplers (dpmpp_2m, unipc) restart their
      order at step k (no history), as diffusers' img2img does: close to, not equal to, the full run.
    - ``callback(StepState)`` after every model evaluation; returning False cancels (:class:`Cancelled`).
    - ``cond_schedule(step, total)``: conditioning (B items) for each step instead of ``cond`` (prompt
      editing, A1111 ``[a:b:step]``); it is re-batched only when it returns a different object.
    - ``step_noise(step, latents)``: applied after every scheduler step (:class:`StepNoise`: an ``exact``
      inversion's stored per-step noise, one stream per item); ``step`` counts from the start of the full
      schedule, so a run started at ``start_step`` (or part-way by ``strength``) takes the stream from there.
    """
    batch, _, h, w = noise.shape
    height, width = h * model.latent_format.downscale, w * model.latent_format.downscale
    if len(cond) != batch:
        raise ValueError(f"cond has {len(cond)} items for a batch of {batch}")
    scheduler = make_scheduler(sampler, model.scheduler_config, model.is_flow)
    timesteps = model.set_timesteps(scheduler, steps, height, width)

    latents = noise.to(model.device, model.dtype)
    begin = 0  # index of the first timestep run, in the full schedule
    if start_step:
        begin = start_step * scheduler.order  # a step boundary: second-order (heun) state is clean there
        if init_latents is not None or not 0 < begin < len(timesteps):
            raise ValueError(f"start_step {start_step} needs no init_latents and 0 < start_step < steps ({steps})")
        timesteps = timesteps[begin:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(begin)
    elif init_latents is not None:
        begin = start_index(steps, strength, scheduler.order)
        timesteps = timesteps[begin:]
        if len(timesteps) == 0:
            raise LatentscapeError(
                f"strength {strength} with {steps} steps leaves no denoising step; use a strength of at least {1 / steps:.3g}.",
                field="strength",
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

    def batched(c: Conditioning) -> Conditioning:
        if not use_cfg:
            return c.to(model.device, model.dtype)
        # a chunked (long) prompt and a short negative: pad to one token count, as A1111 does
        u, c = model.match_lengths([uncond, c])
        return Conditioning.cat([u, c]).to(model.device, model.dtype)

    current = cond
    cond_in = batched(cond)
    emb = None
    if embedded_guidance is not None:
        emb = _per_item(embedded_guidance, batch).to(model.device)  # moved once, not at every step
        emb = torch.cat([emb, emb]) if use_cfg else emb
    rescale = _per_item(guidance_rescale, batch).to(model.device)
    guidance = _Guidance.of(scale, rescale) if use_cfg else None

    step_params = inspect.signature(scheduler.step).parameters
    step_kwargs = {}
    streams = None
    if "generator" in step_params and noise_path is not None:
        if not (len(noise_path.a) == len(noise_path.b) == len(noise_path.t) == batch):
            raise ValueError(f"noise_path needs a, b and t for each of the {batch} items")
        streams = [_advanced(g.get_state(), start_step, (1, *noise.shape[1:]), model.dtype) for g in noise_path.sources]
    elif "generator" in step_params and generators is not None:
        step_kwargs["generator"] = list(generators) if len(generators) > 1 else generators[0]
        for g in generators if start_step else ():  # past what the skipped steps drew (one generator: all items)
            g.set_state(_advanced(g.get_state(), start_step, (1 if len(generators) > 1 else batch, *noise.shape[1:]), model.dtype))
    if "eta" in step_params:
        step_kwargs["eta"] = 0.0

    total = len(timesteps)
    for i, t in enumerate(timesteps):
        if cond_schedule is not None and (step_cond := cond_schedule(i, total)) is not current:
            current, cond_in = step_cond, batched(step_cond)
        x_in = torch.cat([latents, latents]) if use_cfg else latents
        if hasattr(scheduler, "scale_model_input"):  # flow-matching schedulers have none
            x_in = scheduler.scale_model_input(x_in, t)
        out = model.predict(x_in, t, cond_in, emb)
        if use_cfg:
            out_uncond, out_cond = out.chunk(2)
            out = _guide(out_uncond, out_cond, guidance)
        if streams is not None:
            result, latents = _path_step(scheduler, out, t, latents, noise_path, streams, step_kwargs)
        else:
            result = scheduler.step(out, t, latents, **step_kwargs, return_dict=True)
            latents = result.prev_sample
        if step_noise is not None:
            latents = step_noise(begin + i, latents)
        if callback is not None:
            denoised = getattr(result, "pred_original_sample", None)
            if denoised is None:
                denoised = getattr(result, "denoised", None)
            if callback(StepState(i, total, t, latents, denoised)) is False:
                raise Cancelled(f"cancelled at step {i + 1} of {total}")
    return latents


def invert(model: Family, latents: torch.Tensor, cond: Conditioning, uncond: Conditioning | None = None, **options):
    """Model-space latents (B, C, h, w) -> the :class:`~latentscape.inversion.Inversion` that :func:`denoise`
    turns back into them: ``method`` ``ddim`` (eps/v models), ``flow`` (SD3/FLUX) or ``exact`` (any family).
    Options and the methods' maths: :func:`latentscape.inversion.invert_latents`."""
    from latentscape.inversion import invert_latents

    return invert_latents(model, latents, cond, uncond, **options)


def _generator(state: torch.Tensor) -> torch.Generator:
    g = torch.Generator("cpu")
    g.set_state(state.clone())
    return g


def _advanced(state: torch.Tensor, draws: int, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """A CPU generator state after ``draws`` standard-normal draws of ``shape`` (a stochastic sampler's steps)."""
    if draws == 0:
        return state
    g = _generator(state)
    for _ in range(draws):
        torch.randn(tuple(shape), generator=g, dtype=dtype)
    return g.get_state()


def _path_step(scheduler, out, t, latents, path: NoisePath, streams: list[torch.Tensor], step_kwargs: dict):
    """One scheduler step whose noise is ``slerp(n_a, n_b, t)`` per item; advances ``streams`` in place.

    Without touching the scheduler's internals: a stochastic step is affine in its noise draw,
    ``prev = D + S·n``. Run it with every item on stream a (draws n1: these items are exact) and, on a deep
    copy of the scheduler, on stream b (draws n2); the per-item scale is the least-squares fit
    ``S = <p1 − p2, n1 − n2> / |n1 − n2|²`` over all elements, and ``prev = p1 + S·(slerp(n1, n2, t) − n1)``
    (t = 1 takes p2 as is). The draws are regenerated from the streams' states; the states after the step
    prove that the scheduler drew exactly that (one standard normal per item, of the model output's shape
    and dtype), and the fit's residual proves the step is affine with a per-item scalar.
    """
    a, b = list(path.a), list(path.b)
    tt = [float(x) for x in path.t]
    mixed = [i for i in range(len(a)) if tt[i] > 0 and a[i] != b[i]]  # items that need stream b
    shape = (1, *out.shape[1:])
    before = list(streams)
    draws, after = {}, {}
    for k in sorted(set(a) | {b[i] for i in mixed}):
        g = _generator(before[k])
        draws[k] = torch.randn(shape, generator=g, dtype=out.dtype)
        after[k] = g.get_state()
    twin = copy.deepcopy(scheduler) if mixed else None

    def run(sched, sources):
        gens = [_generator(before[k]) for k in sources]
        res = sched.step(out, t, latents, **step_kwargs, generator=gens if len(gens) > 1 else gens[0], return_dict=True)
        return res, [g.get_state() for g in gens]

    result, states = run(scheduler, a)
    p1 = result.prev_sample
    if all(torch.equal(s, before[k]) for s, k in zip(states, a)):
        return result, p1  # no noise at this step (e.g. LCM's last step): nothing to interpolate
    if not all(torch.equal(s, after[k]) for s, k in zip(states, a)):
        raise LatentscapeError("this sampler draws its step noise in a way latentscape cannot interpolate; use a deterministic sampler such as euler.")
    for k, state in after.items():
        streams[k] = state
    if not mixed:
        return result, p1

    p2 = run(twin, b)[0].prev_sample
    idx = torch.as_tensor(mixed)
    n1 = torch.cat([draws[a[i]] for i in mixed]).to(p1.device, torch.float64)
    n2 = torch.cat([draws[b[i]] for i in mixed]).to(p1.device, torch.float64)
    q1, q2 = p1[idx].double(), p2[idx].double()
    dims = tuple(range(1, p1.ndim))
    dn, dp = n1 - n2, q1 - q2
    scale = (dp * dn).sum(dims, keepdim=True) / (dn * dn).sum(dims, keepdim=True).clamp_min(1e-30)
    residual = torch.linalg.vector_norm(dp - scale * dn, dim=dims)
    tolerance = 1e-3 * torch.linalg.vector_norm(dp, dim=dims) + 10 * torch.finfo(p1.dtype).eps * torch.linalg.vector_norm(q1, dim=dims)
    if bool((residual > tolerance).any()):
        raise LatentscapeError("this sampler's step is not affine in its noise, so its noise cannot be interpolated; use a deterministic sampler such as euler.")
    t_mixed = torch.tensor([tt[i] for i in mixed], dtype=torch.float64)
    prev = p1.clone()
    prev[idx] = (q1 + scale * (slerp(n1, n2, t_mixed) - n1)).to(p1.dtype)
    ends = idx[t_mixed >= 1]
    prev[ends] = p2[ends]
    return result, prev
