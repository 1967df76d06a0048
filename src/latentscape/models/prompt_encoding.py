"""Weighted and long prompts through CLIP text encoders, as AUTOMATIC1111 encodes them.

A prompt is parsed (:mod:`latentscape.core.prompt_syntax`) into weighted segments and cut into chunks of
``model_max_length - 2`` tokens (75 for real CLIP; ``BREAK`` starts a new one). Each chunk is wrapped in the
start and end tokens, padded as the tokenizer pads, and encoded on its own; its token embeddings are
multiplied by their weights and then rescaled so that the chunk's mean is what it was before weighting
(A1111's documented "original" emphasis; skipped where that rescale is ill-conditioned, see :func:`emphasis`). The chunks are joined along the sequence axis; the pooled vector
(SDXL) is that of the first chunk.

A plain prompt that fits one chunk never comes here: it keeps diffusers' own ``encode_prompt`` path, so its
conditioning is exactly what it was (a test checks this path gives the same bits for such a prompt).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from latentscape.core.prompt_syntax import (
    Chunk, PromptSyntaxError, check_prompt, chunk_tokens, has_editing, is_plain, parse_weights, plain_text,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipEncoder:
    """One tokenizer + CLIP text encoder pair and which hidden state the family uses."""

    tokenizer: Any
    text_encoder: Any
    penultimate: bool = False  # SDXL: hidden_states[-2]; SD1.x/2.x: the last hidden state (final norm)

    @property
    def window(self) -> int:
        return int(self.tokenizer.model_max_length)

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids)

    @property
    def comma(self) -> int | None:
        vocab = self.tokenizer.get_vocab()
        return vocab.get(",</w>")

    def chunks(self, prompt: str, field: str = "prompt") -> list[Chunk]:
        return chunk_tokens(parse_weights(prompt, field), self.tokenize, size=self.window - 2, comma=self.comma)

    def ids(self, chunk: Chunk) -> tuple[list[int], list[int]]:
        """(token ids, attention mask) of ``chunk``: start, tokens, end, then the tokenizer's padding."""
        tok = self.tokenizer
        ids = [tok.bos_token_id, *chunk.tokens, tok.eos_token_id]
        pad = self.window - len(ids)
        return ids + [tok.pad_token_id] * pad, [1] * len(ids) + [0] * pad

    @torch.no_grad()
    def encode(self, chunks: Sequence[Chunk], device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(embeds (1, n·window, D), pooled (1, P) of the first chunk or None). Each chunk is its own batch of
        one, so a chunk encodes to the same bits as that text alone (CPU kernels differ across batch sizes)."""
        # as diffusers' encode_prompt calls it: SD passes the mask when the encoder asks for one, SDXL never
        use_mask = not self.penultimate and bool(getattr(self.text_encoder.config, "use_attention_mask", False))
        embeds, pooled = [], None
        for chunk in chunks:
            ids, mask = (torch.tensor([row], device=device) for row in self.ids(chunk))
            out = self.text_encoder(ids, attention_mask=mask if use_mask else None, output_hidden_states=self.penultimate)
            z = out.hidden_states[-2] if self.penultimate else out[0]  # (1, window, D)
            if pooled is None and out[0].ndim == 2:
                pooled = out[0]
            embeds.append(emphasis(z, chunk))
        return torch.cat(embeds, dim=1), pooled


MEAN_RESTORE = (0.5, 2.0)  # the rescale factors the mean restoration may apply (see emphasis)


def emphasis(z: torch.Tensor, chunk: Chunk) -> torch.Tensor:
    """A1111's emphasis on one chunk's embeddings z (1, window, D): each token's vector times its weight, then
    the whole chunk rescaled to its original mean. All weights 1 returns ``z`` itself.

    The rescale factor is old mean / new mean. On an encoder whose outputs average close to zero (a final
    LayerNorm without a learned offset, as in the tiny random test models) that ratio is noise, can be huge
    or negative and would flip the whole conditioning; the restoration is then skipped (the weights alone
    apply) whenever the factor falls outside ``MEAN_RESTORE``. Where A1111's restoration is well-conditioned
    (the embedded model: factors 0.90-1.06 for weights 0-1.5) the result is A1111's."""
    weights = [1.0, *chunk.weights] + [1.0] * (z.shape[1] - len(chunk.weights) - 1)
    if all(w == 1.0 for w in weights):
        return z
    original_mean = z.mean()
    z = z * torch.tensor(weights, dtype=z.dtype, device=z.device).view(1, -1, 1)
    factor = original_mean / z.mean()
    if not MEAN_RESTORE[0] <= float(factor) <= MEAN_RESTORE[1]:
        return z
    return z * factor


def encode_weighted(encoders: Sequence[ClipEncoder], prompt: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One prompt through every encoder of a family (their embeds joined on the feature axis, as the family
    expects): (embeds (1, n·window, ΣD), pooled of the last encoder that has one, or None). Encoders whose
    chunk counts differ (different vocabularies) get empty chunks appended to match."""
    per_encoder = [e.chunks(prompt) for e in encoders]
    n = max(len(c) for c in per_encoder)
    embeds, pooled = [], None
    for encoder, chunks in zip(encoders, per_encoder):
        z, p = encoder.encode(chunks + [Chunk((), ())] * (n - len(chunks)), device)
        embeds.append(z)
        pooled = p if p is not None else pooled
    return torch.cat(embeds, dim=-1), pooled


def chunk_count(encoders: Sequence[ClipEncoder], prompt: str) -> int:
    """How many chunks ``prompt`` takes (1 for any prompt that fits the window)."""
    return max(len(e.chunks(prompt)) for e in encoders)


def check_unscheduled(text: str, field: str) -> None:
    """Refuse a prompt that cannot be read, or that uses prompt editing: encoding gives one conditioning for
    the whole run; editing is scheduled by the workflow (:mod:`latentscape.workflows.prompt_editing`)."""
    check_prompt(text, field=field)
    if has_editing(text):
        raise PromptSyntaxError(
            f"{field} {text!r} uses prompt editing [from:to:when], which this workflow cannot schedule "
            "(it samples one conditioning per image); use it with generate or img2img.")


def t5_prompts(
    texts: Sequence[str], field: str, *, family: str, clip_tokenizer: Any, t5_tokenizer: Any | None, t5_window: int
) -> list[str]:
    """Prompts for a T5 family (SD3, FLUX), which keep their own windows and take no token weights: weights and
    BREAK are removed (one warning), and a prompt that the encoders will cut gets a one-line warning naming
    how many tokens are read (T5 ``t5_window``; CLIP 77, only a note when T5 reads the whole prompt)."""
    out = []
    for text in texts:
        check_unscheduled(text, field)
        if not is_plain(text):
            stripped = plain_text(text, field)
            log.warning("%s on %s: token weights and BREAK apply to SD1.x/2.x and SDXL only; encoding %r", field, family, stripped)
            text = stripped
        clip_window = int(clip_tokenizer.model_max_length)
        clip_n = len(clip_tokenizer(text, truncation=False, verbose=False).input_ids)
        if t5_tokenizer is not None:
            t5_n = len(t5_tokenizer(text, truncation=False, verbose=False).input_ids)
            if t5_n > t5_window:
                log.warning("%s is %d T5 tokens; %s reads only the first %d, the rest is ignored", field, t5_n, family, t5_window)
            elif clip_n > clip_window:
                log.info("%s is %d CLIP tokens: the CLIP encoders read the first %d, T5 all of it", field, clip_n, clip_window)
        elif clip_n > clip_window:
            log.warning("%s is %d tokens; %s without T5 reads only the first %d, the rest is ignored", field, clip_n, family, clip_window)
        out.append(text)
    return out
