"""A1111 prompt editing (``[from:to:when]``) for a job that samples one prompt: each distinct text of the
prompt's schedule is encoded once, and ``sampling.denoise``'s ``cond_schedule`` switches between them.

Step numbers count the sampler's steps from 0 as A1111 does (step i uses ``from`` while i <= when); on
samplers with two model evaluations per step (heun) both evaluations of a step use that step's text; img2img
counts the steps it actually runs, as A1111's img2img does.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from latentscape.core.prompt_syntax import PromptSyntaxError, has_editing, prompt_schedule
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.workflows.common import encode, guidance

CondSchedule = Callable[[int, int], Conditioning]


def step_of(i: int, total: int, steps: int) -> int:
    """The sampler step of model evaluation ``i`` of ``total`` in a run configured for ``steps`` steps."""
    return i * steps // total if total > steps else i


def stage_schedule(stages: Sequence[tuple[int, Conditioning]], steps: int) -> CondSchedule:
    """A ``cond_schedule`` returning the conditioning of the first stage whose last step is >= the current
    step (the same object for every step of a stage, so ``denoise`` re-batches only at a switch)."""

    def at(i: int, total: int) -> Conditioning:
        step = step_of(i, total, steps)
        for last, cond in stages:
            if step <= last:
                return cond
        return stages[-1][1]

    return at


def encode_edited(
    model: Family, prompt: str, negative: str, need_uncond: bool, *, steps: int, batch: int
) -> tuple[Conditioning, Conditioning | None, CondSchedule | None]:
    """(cond at step 0, uncond, cond_schedule or None), each with ``batch`` items. A prompt without editing
    is encoded exactly as :func:`~latentscape.workflows.common.encode` encodes it and gets no schedule."""
    if has_editing(negative):
        raise PromptSyntaxError(
            f"negative {negative!r} uses prompt editing [from:to:when]; it is read in the prompt only.")
    schedule = prompt_schedule(prompt, steps)
    texts = [text for _, text in schedule]
    cond, uncond = encode(model, texts, [negative] * len(texts), need_uncond)
    uncond = uncond.select([0]).repeat(batch) if uncond is not None else None
    if len(schedule) == 1:
        return cond.repeat(batch), uncond, None
    stages = [(last, cond.select([k]).repeat(batch)) for k, (last, _) in enumerate(schedule)]
    return stages[0][1], uncond, stage_schedule(stages, steps)


def encode_job_edited(
    model: Family, opts: Any, prompt: str, cfg: float, batch: int
) -> tuple[Conditioning, Conditioning | None, CondSchedule | None]:
    """:func:`encode_edited` for a workflow's sampling options (``negative``, ``steps``, ``true_cfg``): the
    prompt repeated ``batch`` times at guidance ``cfg``, as ``render.encode_job`` encodes it when unedited."""
    need_uncond = model.uses_cfg(torch.tensor([guidance(model, cfg, opts.true_cfg)[1]]))
    return encode_edited(model, prompt, opts.negative, need_uncond, steps=opts.steps, batch=batch)
