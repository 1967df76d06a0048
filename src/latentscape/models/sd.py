"""Stable Diffusion 1.x / 2.x (epsilon and v-prediction): one CLIP text encoder and a UNet."""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

import torch

from latentscape.core.prompt_syntax import is_plain
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.models.prompt_encoding import ClipEncoder, check_unscheduled, chunk_count, encode_weighted

log = logging.getLogger(__name__)


class StableDiffusion(Family):
    name = "sd"
    prompt_weighting = True

    @property
    def embedded_guidance(self) -> bool:
        # LCM-distilled UNets embed the guidance scale ("w") instead of running CFG.
        return getattr(self.denoiser.config, "time_cond_proj_dim", None) is not None

    def clip_encoders(self) -> list[ClipEncoder]:
        """The tokenizer/text-encoder pairs whose outputs make the conditioning."""
        return [ClipEncoder(self.pipe.tokenizer, self.pipe.text_encoder)]

    def encode_prompts(self, prompts: Sequence[str]) -> Conditioning:
        """A1111 prompts: ``(word:1.2)`` weights, ``BREAK`` and prompts of any length (75-token chunks)."""
        return self.encode_texts(prompts, "prompt")

    def encode_negatives(self, negatives: Sequence[str]) -> Conditioning:
        return self.encode_texts(negatives, "negative")

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], field: str) -> Conditioning:
        """Plain prompts that fit the window go through diffusers' ``encode_prompt`` exactly as before (so
        their conditioning is unchanged); weighted or long ones are encoded chunk by chunk
        (:mod:`latentscape.models.prompt_encoding`). Items of different lengths are padded (:meth:`match_lengths`)."""
        texts = list(texts)
        encoders = self.clip_encoders()
        for text in texts:
            check_unscheduled(text, field)
        simple = [i for i, t in enumerate(texts) if is_plain(t) and chunk_count(encoders, t) == 1]
        if len(simple) == len(texts):
            return self._encode_plain(texts)
        items: list[Conditioning | None] = [None] * len(texts)
        if simple:
            plain = self._encode_plain([texts[i] for i in simple])
            for k, i in enumerate(simple):
                items[i] = plain.select(k)
        for i, text in enumerate(texts):
            if items[i] is None:
                embeds, pooled = encode_weighted(encoders, text, self.device)
                log.info("%s: %d tokens in %d chunks", field, embeds.shape[1], embeds.shape[1] // encoders[0].window)
                items[i] = self._conditioning(embeds, pooled)
        return Conditioning.cat(self.match_lengths(items))

    def _encode_plain(self, prompts: list[str]) -> Conditioning:
        embeds, _ = self.pipe.encode_prompt(prompts, self.device, num_images_per_prompt=1, do_classifier_free_guidance=False)
        return Conditioning(embeds=embeds.to(self.dtype))

    def _conditioning(self, embeds: torch.Tensor, pooled: torch.Tensor | None) -> Conditioning:
        return Conditioning(embeds=embeds.to(self.dtype))

    def match_lengths(self, conds: Sequence[Conditioning | None]) -> list[Conditioning | None]:
        """Pad shorter token sequences with empty-prompt chunks (A1111's "pad prompt/negative prompt to be
        same length"), so prompts of different chunk counts batch and interpolate; an all-zero conditioning
        (SDXL's empty negative) is padded with zeros. Conditionings of equal length come back unchanged."""
        longest = max((c.embeds.shape[1] for c in conds if c is not None), default=0)
        if all(c is None or c.embeds.shape[1] == longest for c in conds):
            return list(conds)
        empty = self._empty_chunk()
        out = []
        for c in conds:
            if c is None or c.embeds.shape[1] == longest:
                out.append(c)
                continue
            missing = longest - c.embeds.shape[1]
            if missing % empty.shape[1]:
                raise ValueError(f"cannot pad {c.embeds.shape[1]} tokens to {longest} in chunks of {empty.shape[1]}")
            fill = torch.zeros_like(empty) if not c.embeds.any() else empty.to(c.embeds.device, c.embeds.dtype)
            fill = fill.repeat(len(c), missing // empty.shape[1], 1)
            out.append(dataclasses.replace(c, embeds=torch.cat([c.embeds, fill], dim=1)))
        return out

    def _empty_chunk(self) -> torch.Tensor:
        """(1, window, D): the embeddings of an empty prompt, the filler between chunked prompts."""
        if getattr(self, "_empty", None) is None:
            self._empty = self._encode_plain([""]).embeds
        return self._empty

    def _timestep_cond(self, guidance: torch.Tensor | None, batch: int, dtype: torch.dtype) -> torch.Tensor | None:
        if not self.embedded_guidance:
            return None
        cached = getattr(self, "_tcond", None)  # the loop passes the same guidance tensor at every step:
        if cached is not None and cached[0] is guidance and cached[1:3] == (batch, dtype):  # embed it once
            return cached[3]
        w = (guidance if guidance is not None else torch.full((batch,), 7.5)) - 1
        emb = self.pipe.get_guidance_scale_embedding(w.float().cpu(), embedding_dim=self.denoiser.config.time_cond_proj_dim)
        emb = emb.to(self.device, dtype)
        if guidance is not None:  # holding the tensor keeps its identity unique
            self._tcond = (guidance, batch, dtype, emb)
        return emb

    def predict(self, latents, t, cond, guidance=None):
        return self.denoiser(
            latents,
            t,
            encoder_hidden_states=cond.embeds,
            timestep_cond=self._timestep_cond(guidance, latents.shape[0], latents.dtype),
            return_dict=False,
        )[0]
