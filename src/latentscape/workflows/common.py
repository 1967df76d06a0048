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
from latentscape.samplers import resolve_sampler

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


def require(condition: bool, message: str) -> None:
    """Raise a one-sentence :class:`LatentscapeError` unless ``condition`` holds."""
    if not condition:
        raise LatentscapeError(message)


def check_sampling(model: Family, *, steps: int, sampler: str, cfg: float | None, batch: int = 1) -> None:
    """Validate the parameters every sampling workflow takes."""
    require(isinstance(steps, int) and 1 <= steps <= MAX_STEPS, f"--steps got {steps}; expected a whole number from 1 to {MAX_STEPS}.")
    require(isinstance(batch, int) and 1 <= batch <= MAX_BATCH, f"--batch got {batch}; expected a whole number from 1 to {MAX_BATCH}.")
    require(cfg is None or cfg >= 0, f"--cfg got {cfg}; expected a number >= 0 (1 = no guidance, 7-12 typical).")
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
    cond = _encode_unique(model.encode_prompts, prompts)
    uncond = _encode_unique(model.encode_negatives, negatives) if need_uncond else None
    return cond, uncond


def _encode_unique(fn, texts: Sequence[str]) -> Conditioning:
    """Encode each distinct text once and on its own (a batch of one, as ``generate`` does: text encoders
    on GPUs are not bit-identical across batch sizes), then gather them in ``texts`` order."""
    unique = list(dict.fromkeys(texts))
    encoded = Conditioning.cat([fn([t]) for t in unique])
    return encoded.select([unique.index(t) for t in texts])


def decode_images(model: Family, latents: torch.Tensor) -> list[Image.Image]:
    """Model-space latents -> RGB images (the VAE runs ``model.vae_batch`` images at a time)."""
    return tensor_to_pil(model.decode(latents).float())


def config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def make_recipe(
    workflow: str,
    model: Family,
    params: Mapping[str, Any],
    seed: int,
    *,
    batch_index: int = 0,
    inputs: Mapping[str, Any] | None = None,
    infotext_extra: Mapping[str, Any] | None = None,
) -> Recipe:
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
        infotext_extra=dict(infotext_extra or {}),
        sampler_label=label,
        versions=versions(),
        load=dict(model.load_options),
    )
