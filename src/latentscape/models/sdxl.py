"""SDXL: two CLIP text encoders (penultimate states joined), a pooled text vector and size micro-conditioning."""

from __future__ import annotations

from typing import Sequence

import torch

from latentscape.models.conditioning import Conditioning
from latentscape.models.prompt_encoding import ClipEncoder
from latentscape.models.sd import StableDiffusion


class StableDiffusionXL(StableDiffusion):
    name = "sdxl"

    def clip_encoders(self) -> list[ClipEncoder]:
        """Both CLIP encoders (penultimate hidden states, joined on the feature axis; the refiner has only the
        second); the pooled vector comes from the last one."""
        pairs = [(self.pipe.tokenizer, self.pipe.text_encoder), (self.pipe.tokenizer_2, self.pipe.text_encoder_2)]
        return [ClipEncoder(tok, enc, penultimate=True) for tok, enc in pairs if tok is not None and enc is not None]

    def _encode_plain(self, prompts: list[str]) -> Conditioning:
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            prompts, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        return Conditioning(embeds=embeds.to(self.dtype), pooled=pooled.to(self.dtype))

    def _conditioning(self, embeds: torch.Tensor, pooled: torch.Tensor | None) -> Conditioning:
        return Conditioning(embeds=embeds.to(self.dtype), pooled=pooled.to(self.dtype))

    @torch.no_grad()
    def encode_negatives(self, negatives: Sequence[str]) -> Conditioning:
        # SDXL was trained with zeroed embeddings for an empty negative prompt (force_zeros_for_empty_prompt).
        if all(not n for n in negatives) and self.pipe.config.get("force_zeros_for_empty_prompt", True):
            return self._encode_plain([""]).map(lambda t: torch.zeros_like(t).expand(len(negatives), *t.shape[1:]))
        return self.encode_texts(negatives, "negative")

    def _time_ids(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, 6): original size, crop top-left, target size — the defaults the SDXL pipeline uses."""
        h, w = latents.shape[-2] * self.latent_format.downscale, latents.shape[-1] * self.latent_format.downscale
        key = (h, w, latents.dtype)
        cache = self.__dict__.setdefault("_time_id_cache", {})
        if key not in cache:  # made and moved to the device once per size, not at every step
            cache[key] = torch.tensor([[h, w, 0, 0, h, w]], dtype=latents.dtype, device=self.device)
        return cache[key].expand(latents.shape[0], -1)

    def predict(self, latents, t, cond, guidance=None):
        return self.denoiser(
            latents,
            t,
            encoder_hidden_states=cond.embeds,
            timestep_cond=self._timestep_cond(guidance, latents.shape[0], latents.dtype),
            added_cond_kwargs={"text_embeds": cond.pooled, "time_ids": self._time_ids(latents)},
            return_dict=False,
        )[0]
