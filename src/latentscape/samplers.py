"""Sampler names -> diffusers schedulers, each built from the model's own scheduler config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from latentscape.errors import LatentscapeError


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    scheduler: str  # diffusers class name
    a1111: str  # name in A1111 infotext
    overrides: dict[str, Any] = field(default_factory=dict)
    flow: bool = False  # for flow-matching families (SD3, FLUX)
    stochastic: bool = False  # draws fresh noise at each step


SAMPLERS: dict[str, SamplerSpec] = {
    s.name: s
    for s in (
        SamplerSpec("euler", "EulerDiscreteScheduler", "Euler"),
        SamplerSpec("euler_a", "EulerAncestralDiscreteScheduler", "Euler a", stochastic=True),
        SamplerSpec("heun", "HeunDiscreteScheduler", "Heun"),
        SamplerSpec("ddim", "DDIMScheduler", "DDIM"),
        SamplerSpec("dpmpp_2m", "DPMSolverMultistepScheduler", "DPM++ 2M", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False}),
        SamplerSpec("dpmpp_2m_karras", "DPMSolverMultistepScheduler", "DPM++ 2M Karras", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
        SamplerSpec("unipc", "UniPCMultistepScheduler", "UniPC"),
        SamplerSpec("lcm", "LCMScheduler", "LCM", stochastic=True),
        SamplerSpec("flow_euler", "FlowMatchEulerDiscreteScheduler", "Euler", flow=True),
        SamplerSpec("flow_heun", "FlowMatchHeunDiscreteScheduler", "Heun", flow=True),
    )
}
# On flow-matching families the usual names mean their flow counterparts.
FLOW_ALIASES = {"euler": "flow_euler", "heun": "flow_heun"}


def sampler_names(flow: bool) -> list[str]:
    """Sampler names accepted by a family (flow matching or not)."""
    names = [n for n, s in SAMPLERS.items() if s.flow == flow]
    return names + (list(FLOW_ALIASES) if flow else [])


def resolve_sampler(name: str, flow: bool) -> SamplerSpec:
    """The spec for ``name`` on a flow-matching or eps/v family, or a one-sentence error."""
    key = FLOW_ALIASES.get(name, name) if flow else name
    spec = SAMPLERS.get(key)
    if spec is None or spec.flow != flow:
        kind = "flow-matching models (SD3, FLUX)" if flow else "this model"
        raise LatentscapeError(
            f"--sampler got '{name}', which is not available for {kind}; accepted: {', '.join(sampler_names(flow))}."
        )
    return spec


def make_scheduler(name: str, base_config: dict, flow: bool):
    """A fresh scheduler for sampler ``name``, built with ``from_config`` from the model's scheduler config."""
    import diffusers

    spec = resolve_sampler(name, flow)
    cls = getattr(diffusers, spec.scheduler)
    config = {k: v for k, v in base_config.items()}
    config.update(spec.overrides)
    return cls.from_config(config)
