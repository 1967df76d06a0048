"""FLUX: CLIP pooled vector + T5 tokens, 16-channel latents packed 2x2 into tokens, flow matching, and
an embedded guidance scale for guidance-distilled models (true CFG with a negative prompt on request)."""

from __future__ import annotations

from typing import Sequence

import torch

from latentscape.core.schedules import flux_sigmas
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.models.prompt_encoding import t5_prompts
from latentscape.models.sd3 import scheduler_mu, set_flow_timesteps


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h/2·w/2, 4C): each 2x2 patch becomes one token."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`pack`: (B, h/2·w/2, 4C) -> (B, C, h, w)."""
    b, _, d = tokens.shape
    x = tokens.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, h, w)


def image_ids(h: int, w: int, device, dtype) -> torch.Tensor:
    """(h/2·w/2, 3) token positions: (0, row, column) for the rotary embedding."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = torch.arange(h // 2)[:, None]
    ids[..., 2] = torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


class Flux(Family):
    name = "flux"
    max_sequence_length = 512

    @property
    def embedded_guidance(self) -> bool:
        return bool(getattr(self.denoiser.config, "guidance_embeds", False))

    def default_guidance(self) -> float:
        # dev: 3.5 goes into the guidance embedding; schnell (no embedding): no CFG unless asked for
        return self.default_cfg if self.embedded_guidance else 1.0

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str], field: str = "prompt") -> Conditioning:
        prompts = t5_prompts(prompts, field, family=self.name, clip_tokenizer=self.pipe.tokenizer,
                             t5_tokenizer=getattr(self.pipe, "tokenizer_2", None), t5_window=self.max_sequence_length)
        embeds, pooled, _ = self.pipe.encode_prompt(
            list(prompts), None, device=self.device, num_images_per_prompt=1, max_sequence_length=self.max_sequence_length
        )
        return Conditioning(embeds=embeds.to(self.dtype), pooled=pooled.to(self.dtype))

    def encode_negatives(self, negatives: Sequence[str]) -> Conditioning:
        return self.encode_prompts(negatives, "negative")

    def set_timesteps(self, scheduler, steps, height, width):
        config = scheduler.config
        d = self.latent_format.downscale
        seq = (height // d // 2) * (width // d // 2)
        mu = scheduler_mu(config, seq, default_max_shift=1.15)  # FLUX pipeline's default
        sigmas = None if config.get("use_flow_sigmas", False) else flux_sigmas(steps)
        return set_flow_timesteps(scheduler, steps, self.device, mu=mu, sigmas=sigmas)

    def _image_ids(self, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
        """:func:`image_ids` on the device, made once per latent size (not moved to the device at every step)."""
        cache = self.__dict__.setdefault("_image_id_cache", {})
        if (h, w, dtype) not in cache:
            cache[(h, w, dtype)] = image_ids(h, w, self.device, dtype)
        return cache[(h, w, dtype)]

    def predict(self, latents, t, cond, guidance=None):
        b, _, h, w = latents.shape
        if self.embedded_guidance:
            guidance = guidance if guidance is not None else torch.full((b,), 3.5, device=self.device)
            guidance = guidance.to(self.device) if guidance.device != self.device else guidance
            guidance = guidance.float()
        else:
            guidance = None
        out = self.denoiser(
            hidden_states=pack(latents),
            timestep=t.expand(b).to(latents.dtype) / 1000,
            guidance=guidance,
            pooled_projections=cond.pooled,
            encoder_hidden_states=cond.embeds,
            txt_ids=torch.zeros(cond.embeds.shape[1], 3, device=self.device, dtype=latents.dtype),
            img_ids=self._image_ids(h, w, latents.dtype),
            return_dict=False,
        )[0]
        return unpack(out, h, w)
