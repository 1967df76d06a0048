"""The sampling fields every workflow config shares, declared once.

:class:`GenerateConfig`, :class:`MorphConfig` and :class:`SamplingOptions` (the exploration workflows' base)
inherit :class:`SamplingFields`; the configs that render in chunks inherit :class:`BatchedSampling`. The
fields are keyword-only, so a config's own leading fields (``prompt``, ``keyframes``) stay positional.
A recipe's ``params`` hold every field by name, so the order in which they are declared changes nothing
stored or replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


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
