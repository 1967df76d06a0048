"""What a denoiser needs from the prompts, batched on dim 0, and the ways to combine it."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class Conditioning:
    """Encoded prompts for a batch.

    ``embeds`` (B, L, D) are the token embeddings every family cross-attends to (SD3/FLUX: CLIP and T5 tokens
    already joined as the family expects); ``pooled`` (B, P) is the pooled text vector of SDXL, SD3 and
    FLUX (None for SD1.x/2.x).
    """

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.embeds.shape[0]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Conditioning":
        """Apply ``fn`` to every tensor field."""
        return replace(self, **{f.name: fn(v) for f in fields(self) if (v := getattr(self, f.name)) is not None})

    def zip_map(self, other: "Conditioning", fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> "Conditioning":
        """Apply ``fn(mine, theirs)`` field by field (e.g. an interpolation between two conditionings)."""
        out = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if (a is None) != (b is None):
                raise ValueError(f"cannot combine conditionings: '{f.name}' is set on one side only")
            if a is not None:
                out[f.name] = fn(a, b)
        return replace(self, **out)

    def to(self, device=None, dtype=None) -> "Conditioning":
        return self.map(lambda t: t.to(device=device, dtype=dtype))

    def select(self, index: int | Sequence[int] | torch.Tensor) -> "Conditioning":
        """Items at ``index`` (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = [index]
        idx = torch.as_tensor(index, dtype=torch.long)
        return self.map(lambda t: t.index_select(0, idx.to(t.device)))

    def repeat(self, n: int) -> "Conditioning":
        """Each item repeated ``n`` times in place: [a, b] -> [a, a, b, b] for n = 2."""
        return self.map(lambda t: t.repeat_interleave(n, dim=0))

    @staticmethod
    def cat(items: Sequence["Conditioning"]) -> "Conditioning":
        """Concatenate along the batch."""
        first = items[0]
        out = {}
        for f in fields(first):
            values = [getattr(c, f.name) for c in items]
            if any(v is None for v in values):
                if not all(v is None for v in values):
                    raise ValueError(f"cannot concatenate conditionings: '{f.name}' is set on some only")
                continue
            out[f.name] = torch.cat(values, dim=0)
        return replace(first, **out)

    @staticmethod
    def weighted_sum(items: Sequence["Conditioning"], weights: Sequence[float]) -> "Conditioning":
        """Σ wᵢ·condᵢ field by field (weights as given, not normalised)."""
        total = items[0].map(lambda t: t * float(weights[0]))
        for c, w in zip(items[1:], weights[1:]):
            total = total.zip_map(c, lambda a, b, w=w: a + float(w) * b)
        return total
