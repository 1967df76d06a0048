"""Stable Diffusion 3: two CLIP encoders + T5 joined into one token sequence, a pooled vector, flow matching."""

from __future__ import annotations

import inspect
from typing import Sequence

import torch

from latentscape.core.schedules import flow_shift_mu
from latentscape.errors import LatentscapeError
from latentscape.models.conditioning import Conditioning
from latentscape.models.family import Family
from latentscape.models.prompt_encoding import t5_prompts


def scheduler_mu(config, image_seq_len: int, default_max_shift: float) -> float:
    """The resolution shift ``mu`` for ``image_seq_len`` tokens from a flow scheduler's config keys."""
    return flow_shift_mu(
        image_seq_len,
        config.get("base_image_seq_len", 256),
        config.get("max_image_seq_len", 4096),
        config.get("base_shift", 0.5),
        config.get("max_shift", default_max_shift),
    )


def set_flow_timesteps(scheduler, steps: int, device, *, mu: float | None = None, sigmas=None) -> torch.Tensor:
    """Call ``scheduler.set_timesteps`` with the flow arguments it accepts (``sigmas``, ``mu``)."""
    accepted = inspect.signature(scheduler.set_timesteps).parameters
    missing = [name for name, value in (("sigmas", sigmas), ("mu", mu)) if value is not None and name not in accepted]
    if missing:
        raise LatentscapeError(
            f"this sampler's scheduler ({type(scheduler).__name__}) cannot follow the model's schedule (it takes no "
            f"{' or '.join(missing)}), so its images would not match the model's own; use sampler='flow_euler'.",
            field="sampler",
        )
    kwargs: dict = {"sigmas": sigmas} if sigmas is not None else {"num_inference_steps": steps}
    if mu is not None:
        kwargs["mu"] = mu
    scheduler.set_timesteps(device=device, **kwargs)
    return scheduler.timesteps


class StableDiffusion3(Family):
    name = "sd3"
    max_sequence_length = 256

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str], field: str = "prompt") -> Conditioning:
        prompts = t5_prompts(prompts, field, family=self.name, clip_tokenizer=self.pipe.tokenizer,
                             t5_tokenizer=getattr(self.pipe, "tokenizer_3", None), t5_window=self.max_sequence_length)
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            list(prompts),
            None,
            None,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
        )
        return Conditioning(embeds=embeds.to(self.dtype), pooled=pooled.to(self.dtype))

    def encode_negatives(self, negatives: Sequence[str]) -> Conditioning:
        return self.encode_prompts(negatives, "negative")

    def set_timesteps(self, scheduler, steps, height, width):
        config = scheduler.config
        mu = None
        if config.get("use_dynamic_shifting", None):
            patch = self.denoiser.config.patch_size
            d = self.latent_format.downscale
            seq = (height // d // patch) * (width // d // patch)
            mu = scheduler_mu(config, seq, default_max_shift=1.16)  # SD3 pipeline's default
        return set_flow_timesteps(scheduler, steps, self.device, mu=mu)

    def predict(self, latents, t, cond, guidance=None):
        return self.denoiser(
            hidden_states=latents,
            timestep=t.expand(latents.shape[0]),
            encoder_hidden_states=cond.embeds,
            pooled_projections=cond.pooled,
            return_dict=False,
        )[0]
