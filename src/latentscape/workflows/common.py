"""Pieces every workflow shares: sizes, guidance, conditioning, decoding, recipes, validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io.images import check_size, tensor_to_pil
from latentscape.io.recipe import Recipe, versions
from latentscape.limits import check_render_size
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.samplers import SCHEDULES, resolve_sampler

MAX_BATCH = 64
MAX_STEPS = 1000


@dataclass
class Output:
    """What a workflow returns: images, their model-space latents (B, C, h, w) and one recipe each."""

    images: list[Image.Image]
    latents: torch.Tensor
    recipes: list[Recipe]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.recipes]


def require(condition: bool, message: str, field: str | None = None) -> None:
    """Raise a one-sentence :class:`LatentscapeError` (about config ``field``) unless ``condition`` holds."""
    if not condition:
        raise LatentscapeError(message, field=field)


def check_sampling(model: Family, *, steps: int, sampler: str, cfg: float | None, batch: int = 1) -> None:
    """Validate the parameters every sampling workflow takes."""
    require(isinstance(steps, int) and 1 <= steps <= MAX_STEPS, f"steps got {steps}; expected a whole number from 1 to {MAX_STEPS}.", "steps")
    require(isinstance(batch, int) and 1 <= batch <= MAX_BATCH, f"batch got {batch}; expected a whole number from 1 to {MAX_BATCH}.", "batch")
    require(cfg is None or cfg >= 0, f"cfg got {cfg}; expected a number >= 0 (1 = no guidance, 7-12 typical).", "cfg")
    resolve_sampler(sampler, model.is_flow)


def resolve_size(model: Family, width: int | None, height: int | None) -> tuple[int, int]:
    """Width and height in pixels: the model's default where not given; checked against the size multiple."""
    dw, dh = model.default_size()
    width, height = int(dw if width is None else width), int(dh if height is None else height)
    check_size(width, height, model.latent_format.size_multiple)
    check_render_size(width, height, family=model.name, trained=(dw, dh), model=model.model_id)
    return width, height


def guidance(model: Family, cfg: float | None, true_cfg: float = 1.0) -> tuple[float, float, float | None]:
    """(cfg actually used, loop CFG scale, embedded guidance or None)."""
    used = model.default_guidance() if cfg is None else float(cfg)
    loop_scale, embedded = model.split_guidance(used, true_cfg)
    return used, loop_scale, embedded


def encode(model: Family, prompts: Sequence[str], negatives: Sequence[str], need_uncond: bool) -> tuple[Conditioning, Conditioning | None]:
    """Conditioning for ``prompts`` and (when CFG needs it) ``negatives``, encoding each distinct text once."""
    cond = _encode_unique(model.encode_prompts, prompts, model.match_lengths)
    uncond = _encode_unique(model.encode_negatives, negatives, model.match_lengths) if need_uncond else None
    cond, uncond = model.match_lengths([cond, uncond])  # long (chunked) prompts: one token count for the batch
    return cond, uncond


def _encode_unique(fn, texts: Sequence[str], match_lengths=list) -> Conditioning:
    """Encode each distinct text once and on its own (a batch of one, as ``generate`` does: text encoders
    on GPUs are not bit-identical across batch sizes), then gather them in ``texts`` order."""
    unique = list(dict.fromkeys(texts))
    encoded = Conditioning.cat(match_lengths([fn([t]) for t in unique]))
    return encoded.select([unique.index(t) for t in texts])


def decode_images(model: Family, latents: torch.Tensor) -> list[Image.Image]:
    """Model-space latents -> RGB images (the VAE runs ``model.vae_batch`` images at a time)."""
    return tensor_to_pil(model.decode(latents).float())


def config_dict(config: Any) -> dict[str, Any]:
    """A config as a recipe's ``params``: every field, less those marked ``omit_when_unset`` that are None
    (fields added after recipes were written: the recipes of jobs that do not use them stay as they were)."""
    params = dataclasses.asdict(config)
    for f in dataclasses.fields(config):
        if f.metadata.get("omit_when_unset") and params[f.name] is None:
            del params[f.name]
    return params


# A1111's "Schedule type" (A1111 >= 1.9) for our schedules. A1111's "Automatic" means the sampler's own
# default, which for DPM++ 2M is Karras: writing nothing (or "Automatic") would make A1111 use Karras sigmas
# for our plain dpmpp_2m. So the type is always written explicitly, as the A1111 schedule that places the
# steps where diffusers' scheduler does, read from the model's scheduler config:
#   use_karras_sigmas                       -> "Karras"
#   timestep_spacing "trailing"             -> "Simple" (every (1000/n)-th trained sigma from the last one
#                                              down: timesteps 999, 999 - 1000/n, ..., what trailing gives;
#                                              "SGM Uniform" is the fractional-timestep version of the same)
#   timestep_spacing "linspace"             -> "Uniform" (k-diffusion's own get_sigmas: t_max to 0 inclusive)
#   timestep_spacing "leading" (+ offset 1) -> "DDIM" (A1111's ddim schedule: timesteps 1, 1 + 1000//n, ...)
#   flow matching (SD3, FLUX)               -> "Simple" (what Forge writes for these models)
# ("Simple" and "DDIM" are A1111 >= 1.10 and Forge names.) A1111's DDIM, UniPC and LCM samplers pick their
# own timesteps and ignore the schedule type: none is written for them.
_OWN_TIMESTEPS = ("ddim", "unipc", "lcm")
_SPACING_SCHEDULE = {"trailing": "Simple", "linspace": "Uniform", "leading": "DDIM"}


def schedule_label(model: Family, sampler: str) -> str:
    """A1111's ``Schedule type`` for ``sampler`` on ``model`` ("" where A1111 takes none; see the table above)."""
    spec = resolve_sampler(sampler, model.is_flow)
    if spec.flow:
        return "Simple"
    if spec.name in _OWN_TIMESTEPS:
        return ""
    if spec.schedule not in ("automatic", "karras"):  # a schedule named with the sampler (euler_exponential, ...)
        return SCHEDULES[spec.schedule].label
    config = {**model.scheduler_config, **spec.overrides}
    if config.get("use_karras_sigmas"):
        return "Karras"
    return _SPACING_SCHEDULE.get(str(config.get("timestep_spacing", "linspace")), "")


def a1111_guidance(model: Family, params: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The extra fields with guidance as A1111/Forge write it: on guidance-distilled models (FLUX dev) the
    guidance input is ``Distilled CFG Scale`` (Forge's key) and ``CFG scale`` is the real CFG (1: none)."""
    out = dict(extra)
    if not model.embedded_guidance:
        return out
    distilled = out.pop("CFG scale", params.get("cfg"))
    true_cfg = params.get("true_cfg") or 1.0
    return {"CFG scale": true_cfg if true_cfg > 1 else 1, "Distilled CFG Scale": distilled, **out}


def hot_index(weights: Sequence[float]) -> int:
    """The input with the largest weight (the first on ties): the one whose prompt and seed an infotext names."""
    return max(range(len(weights)), key=lambda i: (weights[i], -i))


def make_recipe(
    workflow: str,
    model: Family,
    params: Mapping[str, Any],
    seed: int,
    *,
    batch_index: int = 0,
    inputs: Mapping[str, Any] | None = None,
    infotext_extra: Mapping[str, Any] | None = None,
    prompt_line: str | None = None,
) -> Recipe:
    """The recipe of one output. ``prompt_line`` is the infotext's prompt when ``params`` has no ``prompt``
    (or another one is what the output shows); ``infotext_extra`` adds A1111 fields or replaces standard
    ones (e.g. a cell's own ``CFG scale``)."""
    sampler = params.get("sampler")
    label = resolve_sampler(sampler, model.is_flow).a1111 if sampler else ""
    return Recipe(
        workflow=workflow,
        model=model.model_id,
        family=model.name,
        params=dict(params),
        seed=int(seed),
        batch_index=batch_index,
        inputs=dict(inputs or {}),
        infotext_extra=a1111_guidance(model, params, infotext_extra or {}),
        sampler_label=label,
        versions=versions(),
        load=dict(model.load_options),
        schedule_label=schedule_label(model, sampler) if sampler else "",
        model_hash=getattr(model, "model_hash", None) or "",
        prompt_line=prompt_line,
    )
