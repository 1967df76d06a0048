"""Stable Diffusion 1.x / 2.x (epsilon and v-prediction): one CLIP text encoder and a UNet."""

from __future__ import annotations

from typing import Sequence

import torch

from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family


class StableDiffusion(Family):
    name = "sd"

    @property
    def embedded_guidance(self) -> bool:
        # LCM-distilled UNets embed the guidance scale ("w") instead of running CFG.
        return getattr(self.denoiser.config, "time_cond_proj_dim", None) is not None

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> Conditioning:
        embeds, _ = self.pipe.encode_prompt(
            list(prompts), self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        return Conditioning(embeds=embeds.to(self.dtype))

    def _timestep_cond(self, guidance: torch.Tensor | None, batch: int, dtype: torch.dtype) -> torch.Tensor | None:
        if not self.embedded_guidance:
            return None
        w = (guidance if guidance is not None else torch.full((batch,), 7.5)) - 1
        emb = self.pipe.get_guidance_scale_embedding(w.float().cpu(), embedding_dim=self.denoiser.config.time_cond_proj_dim)
        return emb.to(self.device, dtype)

    def predict(self, latents, t, cond, guidance=None):
        return self.denoiser(
            latents,
            t,
            encoder_hidden_states=cond.embeds,
            timestep_cond=self._timestep_cond(guidance, latents.shape[0], latents.dtype),
            return_dict=False,
        )[0]
