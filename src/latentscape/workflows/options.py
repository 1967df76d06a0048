"""The sampling fields every workflow config shares, declared once.

:class:`GenerateConfig`, :class:`MorphConfig` and :class:`SamplingOptions` (the exploration workflows' base)
inherit :class:`SamplingFields`; the configs that render in chunks inherit :class:`BatchedSampling`. The
fields are keyword-only, so a config's own leading fields (``prompt``, ``keyframes``) stay positional.
A recipe's ``params`` hold every field by name, so the order in which they are declared changes nothing
stored or replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from latentscape.models.family import Family
from latentscape.workflows.common import check_sampling, require


@dataclass(frozen=True, kw_only=True)
class SamplingFields:
    """How an image is sampled. ``negative``: the negative prompt. ``cfg`` None uses the family's default;
    ``true_cfg`` > 1 adds real CFG on guidance-distilled models (FLUX dev), whose ``cfg`` is an input to the
    model; ``guidance_rescale`` is phi, 0..1. ``width``/``height`` None use the model's size (or an input
    image's). ``resize``: what to do with an input image whose sides are not a multiple of the model's grid
    (``none`` refuses, ``stretch``, ``crop``)."""

    negative: str = ""
    steps: int = 25
    sampler: str = "euler"
    cfg: float | None = None
    true_cfg: float = 1.0
    guidance_rescale: float = 0.0
    width: int | None = None
    height: int | None = None
    resize: str = "none"


@dataclass(frozen=True, kw_only=True)
class BatchedSampling(SamplingFields):
    """``batch_size`` bounds how many items run through the model at once (results do not depend on it beyond
    float rounding; replay uses the same value)."""

    batch_size: int = 8


SAMPLING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(BatchedSampling))


def check_sampling_fields(model: Family, opts: SamplingFields, *, batch: int = 1) -> None:
    """Validate the shared fields against ``model`` (one sentence naming the field, before anything runs)."""
    check_sampling(model, steps=opts.steps, sampler=opts.sampler, cfg=opts.cfg, batch=batch)
    require(0 <= opts.guidance_rescale <= 1, f"guidance_rescale got {opts.guidance_rescale}; expected a number from 0 to 1.", "guidance_rescale")
    require(opts.true_cfg >= 1 or opts.true_cfg == 0, f"true_cfg got {opts.true_cfg}; expected a number >= 1 (1 = off).", "true_cfg")
