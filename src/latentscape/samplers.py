"""Sampler and schedule names -> diffusers schedulers, each built from the model's own scheduler config.

One table for both vocabularies. latentscape's names (``euler_a``, ``dpmpp_2m``) and AUTOMATIC1111's
(``Euler a``, ``DPM++ 2M``, any case) name the same :class:`SamplerSpec`; a schedule (A1111's *Schedule
type*: ``Karras``, ``Exponential``, ...) is part of the name: ``dpmpp_2m_karras``, ``euler_sgm_uniform``, or
A1111's ``DPM++ 2M Karras`` and ``Sampler: DPM++ 2M`` + ``Schedule type: Karras`` (:func:`canonical_sampler`).

Schedules latentscape honours map to diffusers' documented equivalents (its scheduler overview's
A1111/k-diffusion table): Karras -> ``use_karras_sigmas``, Exponential -> ``use_exponential_sigmas``,
SGM Uniform and Simple -> ``timestep_spacing="trailing"``, Uniform (timesteps
evenly spread over the whole range) -> ``timestep_spacing="linspace"``, DDIM (timesteps 1, 1 + 1000//n, ...)
-> ``timestep_spacing="leading"`` with ``steps_offset=1``. Automatic is the sampler's own default. These are
the labels the infotext writer (:func:`latentscape.workflows.common.schedule_label`) uses, so what it writes
reads back to the same scheduler. The others A1111 lists (Polyexponential, KL Optimal, Align Your Steps,
Normal, and Beta, whose diffusers version needs SciPy) are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from latentscape.errors import LatentscapeError


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler (with its schedule). ``a1111`` is its A1111 sampler name, ``a1111_schedule`` the schedule
    A1111 (>= 1.9) uses for that name when the infotext has no ``Schedule type``; ``schedule`` is the
    schedule key this spec runs (``automatic``: the model's scheduler config, as diffusers sets it)."""

    name: str
    scheduler: str  # diffusers class name
    a1111: str  # sampler name in A1111 infotext
    overrides: dict[str, Any] = field(default_factory=dict)
    flow: bool = False  # for flow-matching families (SD3, FLUX)
    stochastic: bool = False  # draws fresh noise at each step
    a1111_schedule: str = "Uniform"
    schedule: str = "automatic"


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule: its key (in latentscape names), A1111's label, and the diffusers config it sets."""

    key: str
    label: str
    overrides: dict[str, Any]
    aliases: tuple[str, ...] = ()


SCHEDULES: dict[str, ScheduleSpec] = {
    s.key: s
    for s in (
        ScheduleSpec("automatic", "Automatic", {}),
        ScheduleSpec("karras", "Karras", {"use_karras_sigmas": True}),
        ScheduleSpec("exponential", "Exponential", {"use_exponential_sigmas": True}),
        ScheduleSpec("sgm_uniform", "SGM Uniform", {"timestep_spacing": "trailing"}, aliases=("simple",)),
        ScheduleSpec("uniform", "Uniform", {"timestep_spacing": "linspace"}),
        ScheduleSpec("ddim", "DDIM", {"timestep_spacing": "leading", "steps_offset": 1}),
    )
}
# A1111 schedule types latentscape has no diffusers equivalent for (refused by name, never approximated).
REFUSED_SCHEDULES = ("Polyexponential", "KL Optimal", "Align Your Steps", "Normal", "Beta")
# diffusers classes that take the sigma-schedule flags; the timestep-spacing ones work on every discrete class
_SIGMA_FLAGS = ("EulerDiscreteScheduler", "HeunDiscreteScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler")

_KARRAS_2M = {"algorithm_type": "dpmsolver++", "solver_order": 2}
SAMPLERS: dict[str, SamplerSpec] = {
    s.name: s
    for s in (
        SamplerSpec("euler", "EulerDiscreteScheduler", "Euler"),
        SamplerSpec("euler_a", "EulerAncestralDiscreteScheduler", "Euler a", stochastic=True),
        SamplerSpec("heun", "HeunDiscreteScheduler", "Heun"),
        SamplerSpec("ddim", "DDIMScheduler", "DDIM", a1111_schedule="Automatic"),
        SamplerSpec("dpmpp_2m", "DPMSolverMultistepScheduler", "DPM++ 2M", {**_KARRAS_2M, "use_karras_sigmas": False}, a1111_schedule="Karras"),
        SamplerSpec("dpmpp_2m_karras", "DPMSolverMultistepScheduler", "DPM++ 2M", {**_KARRAS_2M, "use_karras_sigmas": True},
                    a1111_schedule="Karras", schedule="karras"),
        SamplerSpec("unipc", "UniPCMultistepScheduler", "UniPC", a1111_schedule="Automatic"),
        SamplerSpec("lcm", "LCMScheduler", "LCM", stochastic=True, a1111_schedule="Automatic"),
        SamplerSpec("flow_euler", "FlowMatchEulerDiscreteScheduler", "Euler", flow=True, a1111_schedule="Simple"),
        SamplerSpec("flow_heun", "FlowMatchHeunDiscreteScheduler", "Heun", flow=True, a1111_schedule="Simple"),
    )
}
# On flow-matching families the usual names mean their flow counterparts.
FLOW_ALIASES = {"euler": "flow_euler", "heun": "flow_heun"}
# A1111's sampler names (and its older k_ aliases), lower-cased -> latentscape's; "euler"/"heun" then follow FLOW_ALIASES
A1111_SAMPLERS = {"euler a": "euler_a", "euler": "euler", "heun": "heun", "ddim": "ddim", "dpm++ 2m": "dpmpp_2m",
                  "unipc": "unipc", "lcm": "lcm", "k_euler_a": "euler_a", "k_euler": "euler", "k_heun": "heun",
                  "k_dpmpp_2m": "dpmpp_2m", "dpm++ 2m karras": "dpmpp_2m_karras", "k_dpmpp_2m_ka": "dpmpp_2m_karras"}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).strip().lower())


def _schedule_key(text: str | None) -> str | None:
    """The schedule key for a latentscape or A1111 schedule name (any case), None for an unknown one."""
    t = _norm(text or "automatic").replace("-", " ")
    for s in SCHEDULES.values():
        if t in (s.key, s.key.replace("_", " "), s.label.lower(), *s.aliases):
            return s.key
    return None


def schedule_names() -> list[str]:
    """A1111 labels of the schedules latentscape honours."""
    return [s.label for s in SCHEDULES.values()] + ["Simple"]


def accepted_names(flow: bool) -> str:
    """Every sampler name ``flow`` families take, latentscape's and A1111's, for error messages."""
    ours = sampler_names(flow)
    theirs = sorted({s.a1111 for s in SAMPLERS.values() if s.flow == flow} | ({"DPM++ 2M Karras"} if not flow else set()))
    return f"{', '.join(ours)} (A1111: {', '.join(theirs)})"


def _split(name: str) -> tuple[str, str | None]:
    """A sampler name -> (latentscape base name, schedule key or None); one sentence for an unknown name."""
    text = _norm(name)
    base, key = None, None
    for candidate in (text, text.replace(" ", "_")):
        if candidate in SAMPLERS:
            base = candidate
            break
    else:
        if text in A1111_SAMPLERS:
            base = A1111_SAMPLERS[text]
        else:  # a base name and a schedule: dpmpp_2m_exponential, euler_sgm_uniform, "DPM++ 2M Exponential", "Euler Karras"
            for prefix in sorted({*SAMPLERS, *A1111_SAMPLERS}, key=len, reverse=True):
                rest = text[len(prefix) + 1:] if text.startswith((prefix + "_", prefix + " ")) else None
                if rest and (key := _schedule_key(rest.replace("_", " "))) is not None:
                    base = A1111_SAMPLERS.get(prefix, prefix)
                    break
    if base is None:
        raise LatentscapeError(f"sampler got '{name}', which latentscape does not know; accepted: {accepted_names(False)}, "
                               f"and {', '.join(sampler_names(True))} for flow-matching models (SD3, FLUX).", field="sampler")
    if SAMPLERS[base].schedule != "automatic":  # dpmpp_2m_karras is dpmpp_2m with the Karras schedule
        base, key = "dpmpp_2m", key or SAMPLERS[base].schedule
    return base, None if key == "automatic" else key


def _join(base: str, key: str | None) -> str:
    return base if key is None else f"{base}_{key}"


def canonical_sampler(name: str, schedule: str | None = None) -> str:
    """latentscape's name for a sampler (latentscape's or A1111's name, any case) with an optional schedule
    (``Karras``, ``sgm_uniform``, ...): ``("Euler a", None)`` -> ``euler_a``, ``("DPM++ 2M", "Karras")`` ->
    ``dpmpp_2m_karras``. ``Automatic`` (or no schedule) keeps latentscape's default for the sampler: the
    schedule the model's scheduler config sets (A1111 reads a bare ``DPM++ 2M`` as Karras instead: see
    :func:`from_a1111`). The same on every family (flow aliases apply once the model is known); one sentence
    naming the accepted names otherwise."""
    base, key = _split(name)
    if schedule is not None and _norm(schedule) != "automatic":
        given = _schedule_key(schedule)
        if given is None:
            refused = _norm(schedule) in {r.lower() for r in REFUSED_SCHEDULES}
            why = "is an A1111 schedule latentscape cannot reproduce" if refused else "is not a schedule latentscape knows"
            raise LatentscapeError(f"schedule got '{schedule}', which {why}; accepted: {', '.join(schedule_names())}.", field="schedule")
        if key is not None and key != given:
            raise LatentscapeError(f"sampler '{name}' already names the {SCHEDULES[key].label} schedule but schedule got "
                                   f"'{schedule}'; give one of them.")
        key = given
    return _join(base, key)


def from_a1111(sampler: str, schedule_type: str | None = None) -> str:
    """latentscape's sampler name for an A1111 infotext's ``Sampler`` and ``Schedule type`` (None: the field is
    absent), read as A1111 >= 1.9 reads them: ``Automatic`` or no field is the sampler's A1111 default
    (``DPM++ 2M`` -> Karras, ``Euler`` -> Uniform)."""
    base, key = _split(sampler)
    if key is None and (schedule_type is None or _norm(schedule_type) == "automatic"):
        default = SAMPLERS[base].a1111_schedule
        schedule_type = None if default == "Automatic" else default
    return canonical_sampler(_join(base, key), schedule_type)


def sampler_names(flow: bool) -> list[str]:
    """Sampler names accepted by a family (flow matching or not)."""
    names = [n for n, s in SAMPLERS.items() if s.flow == flow]
    return names + (list(FLOW_ALIASES) if flow else [])


def resolve_sampler(name: str, flow: bool) -> SamplerSpec:
    """The spec for ``name`` (see :func:`canonical_sampler`) on a flow-matching or eps/v family, or a
    one-sentence error naming the accepted names. On flow-matching families Simple / SGM Uniform is their
    own schedule (what Forge writes for FLUX)."""
    base, key = _split(name)
    base = FLOW_ALIASES.get(base, base) if flow else base
    spec = SAMPLERS[base]
    if spec.flow != flow:
        kind = "flow-matching models (SD3, FLUX)" if flow else "this model"
        raise LatentscapeError(f"sampler got '{name}', which is not available for {kind}; accepted: {accepted_names(flow)}.", field="sampler")
    if flow and key == "sgm_uniform":
        key = None
    if _join(base, key) in SAMPLERS:
        return SAMPLERS[_join(base, key)]
    schedule = SCHEDULES[key]
    if flow or (key in ("karras", "exponential") and spec.scheduler not in _SIGMA_FLAGS):
        takes = dict.fromkeys(s.a1111 for s in SAMPLERS.values() if s.scheduler in _SIGMA_FLAGS and not s.flow)
        why = ("flow-matching models take only their own schedule (Automatic or Simple)" if flow else
               f"it works with {', '.join(takes)}")
        raise LatentscapeError(f"sampler got '{name}': the {schedule.label} schedule is not available with {spec.a1111}; {why}.", field="sampler")
    return replace(spec, name=_join(base, key), overrides={**spec.overrides, **schedule.overrides}, schedule=key)


def make_scheduler(name: str, base_config: dict, flow: bool):
    """A fresh scheduler for sampler ``name``, built with ``from_config`` from the model's scheduler config."""
    import diffusers

    spec = resolve_sampler(name, flow)
    cls = getattr(diffusers, spec.scheduler)
    config = {k: v for k, v in base_config.items()}
    config.update(spec.overrides)
    return cls.from_config(config)
