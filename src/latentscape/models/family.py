"""The one protocol every model family implements, over a diffusers pipeline's public components.

A :class:`Family` turns prompts into :class:`Conditioning`, predicts the denoiser output for latents at a
timestep, and moves images in and out of the (model-space) latent. It never runs a denoising loop: that
is :mod:`latentscape.sampling`, written once for every family.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import torch

from latentscape.errors import LatentscapeError
from latentscape.limits import check_pixels
from latentscape.models.conditioning import Conditioning
from latentscape.models.latent_format import LatentFormat
from latentscape.models.registry import FAMILIES

log = logging.getLogger(__name__)


class Family(ABC):
    """Base adapter: holds the diffusers pipeline (used only as a bag of components and for its public
    ``encode_prompt``) and the latent format; subclasses add prompt encoding and the denoiser call."""

    name: ClassVar[str]
    pipeline_class: ClassVar[str]  # these three come from the family's entry in models/registry.py
    is_flow: ClassVar[bool] = False  # flow matching (SD3, FLUX) rather than eps/v prediction
    default_cfg: ClassVar[float] = 7.5
    prompt_weighting: ClassVar[bool] = False  # A1111 (word:1.2) emphasis changes the conditioning (CLIP families)
    # VAE calls run this many images at a time: bounded memory for big grids, and with 1 every image's
    # encode/decode is the same computation whatever job it belongs to (exact one-hot/corner/endpoint claims).
    vae_batch: int = 1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # an adapter names its family; the registry says what the family is
            info = FAMILIES[cls.name]
            cls.pipeline_class, cls.is_flow, cls.default_cfg = info.pipeline_class, info.is_flow, info.default_cfg

    def __init__(self, pipe: Any, latent_format: LatentFormat, *, model_id: str, device: torch.device, dtype: torch.dtype):
        self.pipe = pipe
        self.latent_format = latent_format
        self.model_id = model_id
        self.device = torch.device(device)
        self.dtype = dtype
        # how load() was called beyond the model id (single-file config, dtype): recipes record it for replay
        self.load_options: dict[str, Any] = {"config": None, "dtype": None}
        self.model_hash: str | None = None  # A1111's short hash of the checkpoint (models/model_hash.py), set by load()
        self.preview_decoder = None  # a models.preview.PreviewDecoder for live previews, set by load()

    # --- what the model is -------------------------------------------------------------------------
    @property
    def vae(self):
        return self.pipe.vae

    @property
    def denoiser(self) -> torch.nn.Module:
        """The UNet or transformer."""
        return self.pipe.unet if getattr(self.pipe, "unet", None) is not None else self.pipe.transformer

    @property
    def scheduler_config(self) -> dict:
        """The model's own scheduler config, from which every sampler is built."""
        return dict(self.pipe.scheduler.config)

    @property
    def prediction_type(self) -> str:
        return "flow" if self.is_flow else self.scheduler_config.get("prediction_type", "epsilon")

    @property
    def embedded_guidance(self) -> bool:
        """True for guidance-distilled models that take the guidance scale as an input (FLUX dev, LCM-w)."""
        return False

    def default_size(self) -> tuple[int, int]:
        """(width, height) the model was made for: the denoiser's sample size times the VAE factor."""
        size = getattr(self.denoiser.config, "sample_size", 64) or 64
        size = size[0] if isinstance(size, (list, tuple)) else size
        return int(size) * self.latent_format.downscale, int(size) * self.latent_format.downscale

    # --- prompts -------------------------------------------------------------------------------------
    @abstractmethod
    def encode_prompts(self, prompts: Sequence[str]) -> Conditioning:
        """Prompts -> conditioning, one item per prompt."""

    def encode_negatives(self, negatives: Sequence[str]) -> Conditioning:
        """Negative prompts -> the unconditional branch of CFG (SDXL overrides: zeros for empty prompts)."""
        return self.encode_prompts(negatives)

    def match_lengths(self, conds: Sequence[Conditioning | None]) -> list[Conditioning | None]:
        """``conds`` with equal token counts, so they batch together (CLIP families pad chunked prompts; every
        other family encodes to a fixed length and returns them as they are)."""
        return list(conds)

    def default_guidance(self) -> float:
        """The CFG scale used when none is given."""
        return self.default_cfg

    def split_guidance(self, cfg: float, true_cfg: float = 1.0) -> tuple[float, float | None]:
        """(scale for classifier-free guidance in the loop, embedded guidance input or None).

        Models that take the guidance scale as an input (guidance-distilled FLUX, LCM-w) get ``cfg`` there
        and run real CFG only when ``true_cfg`` > 1; every other model runs CFG at ``cfg``.
        """
        return (true_cfg, cfg) if self.embedded_guidance else (cfg, None)

    def uses_cfg(self, guidance_scale: float | torch.Tensor) -> bool:
        """Whether CFG needs the unconditional branch: any scale above 1 (diffusers' rule)."""
        scale = torch.as_tensor(guidance_scale)
        return bool((scale > 1).any())

    # --- the denoiser ------------------------------------------------------------------------------
    @abstractmethod
    def predict(
        self,
        latents: torch.Tensor,
        t: torch.Tensor,
        cond: Conditioning,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Denoiser output for model-space latents (B, C, h, w) at timestep ``t``, in the scheduler's terms
        (epsilon, v or flow velocity). ``guidance`` (B,) is the embedded guidance of distilled models."""

    def set_timesteps(self, scheduler, steps: int, height: int, width: int) -> torch.Tensor:
        """Configure ``scheduler`` for ``steps`` steps at this image size; return its timesteps."""
        scheduler.set_timesteps(steps, device=self.device)
        return scheduler.timesteps

    # --- the VAE -------------------------------------------------------------------------------------
    def check_pixels(self, width: int, height: int, what: str = "an image of") -> None:
        """Refuse an encode/decode above this family's pixel bound (:mod:`latentscape.limits`) before the VAE runs."""
        check_pixels(width, height, family=self.name, what=what)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor, sample: torch.Generator | None = None) -> torch.Tensor:
        """Pixels (B, 3, H, W) in [-1, 1] -> model-space latents (B, C, h, w).

        Uses the posterior mean (deterministic) unless a generator is given to sample it.
        """
        self.check_pixels(pixels.shape[-1], pixels.shape[-2], "an input image of")
        vae = self.vae

        def encode(chunk):
            dist = vae.encode(chunk.to(self.device, vae.dtype)).latent_dist
            return dist.sample(generator=sample) if sample is not None else dist.mode()

        return self.latent_format.to_model(self._vae_chunks(encode, pixels).to(self.dtype))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Model-space latents (B, C, h, w) -> pixels (B, 3, H, W) in [-1, 1] (not clamped).

        Never returns non-finite pixels: non-finite latents are refused, and a half-precision VAE that
        overflows is moved to fp32 (for the rest of the session) and the chunk decoded again; if that is
        still not finite, a one-sentence error.
        """
        factor = self.latent_format.downscale
        self.check_pixels(latents.shape[-1] * factor, latents.shape[-2] * factor, "latents that decode to")
        bad = int((~torch.isfinite(latents)).sum())
        if bad:
            raise LatentscapeError(
                f"the latents to decode hold {bad:,} NaN or infinite values (a {str(self.dtype).replace('torch.', '')} "
                "overflow in the denoiser, or a guidance scale far too high); try dtype fp32 or a lower cfg.")
        return self._vae_chunks(self._decode_finite, latents)

    def _vae_chunks(self, fn, items: torch.Tensor) -> torch.Tensor:
        """``fn`` over ``items`` in chunks of :attr:`vae_batch`, concatenated. A chunk of several images that runs
        out of accelerator memory is retried in halves, and the smaller batch is kept for the rest of the session."""
        out, start = [], 0
        while start < len(items):
            chunk = items[start:start + self.vae_batch]
            try:
                out.append(fn(chunk))
            except torch.OutOfMemoryError:
                if len(chunk) == 1:
                    raise
                self.vae_batch = max(1, len(chunk) // 2)
                log.warning("the VAE ran out of memory on %d images at a time; going on with %d", len(chunk), self.vae_batch)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            start += len(chunk)
        return torch.cat(out)

    @torch.no_grad()
    def preview(self, latents: torch.Tensor) -> torch.Tensor:
        """Model-space latents (B, C, h, w) -> a quick RGB preview in [0, 1]: the tiny preview decoder's
        (B, 3, H, W) when one is loaded (:mod:`latentscape.models.preview`), else the latent format's linear
        approximation at latent size (B, 3, h, w)."""
        if self.preview_decoder is not None:
            return self.preview_decoder(latents)
        return self.latent_format.preview(latents)

    def _decode_finite(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        z = self.latent_format.to_vae(latents.to(self.device, vae.dtype))
        pixels = vae.decode(z, return_dict=False)[0]
        if not torch.isfinite(pixels).all() and vae.dtype != torch.float32:
            log.warning("the %s VAE overflowed to NaN/inf; decoding in fp32 from now on", str(vae.dtype).replace("torch.", ""))
            vae.to(dtype=torch.float32)
            z = self.latent_format.to_vae(latents.to(self.device, torch.float32))
            pixels = vae.decode(z, return_dict=False)[0]
        if not torch.isfinite(pixels).all():
            raise LatentscapeError(
                "the VAE decoded these latents to NaN or infinite pixels even in fp32 (the latents are far outside "
                "the range it was trained on); nothing was written.")
        return pixels

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: family, model, prediction, latent format."""
        lf = self.latent_format
        return {
            "family": self.name,
            "model": self.model_id,
            "pipeline": type(self.pipe).__name__,
            "prediction": self.prediction_type,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "latent_channels": lf.channels,
            "downscale": lf.downscale,
            "size_multiple": lf.size_multiple,
            "scale": lf.scale,
            "shift": lf.shift,
            "default_size": list(self.default_size()),
        }
