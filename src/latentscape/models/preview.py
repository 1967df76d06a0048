"""Tiny preview decoders: latents -> RGB for live previews at a fraction of a full VAE decode.

Every family can use a TAESD-family decoder (diffusers ``AutoencoderTiny``: ``taesd`` for SD1/2, ``taesdxl``
for SDXL, ``taesd3`` for SD3, ``taef1`` for FLUX) from a *local* diffusers folder (``config.json`` +
``.safetensors``; nothing is downloaded, pickles are refused). The embedded model ships one distilled from its
own VAE decoder when one is shipped in ``models/embedded/preview`` (made by :mod:`latentscape.train.preview`;
none ships yet: the one distilled so far was not clearly better than the linear preview), used automatically.

The tiny decoder's own config says what it takes, as the diffusers pipelines use it: it decodes
``latents / scaling_factor + shift_factor`` of the model-space latents (TAESD/TAESDXL: scaling 1, i.e. the
model-space latents themselves; TAESD3/TAEF1: the raw VAE latents).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from latentscape.errors import LatentscapeError
from latentscape.models.registry import EMBEDDED_DIR
from latentscape.safetensors_header import read_header

log = logging.getLogger(__name__)

EMBEDDED_PREVIEW = EMBEDDED_DIR / "preview"
WEIGHTS = "diffusion_pytorch_model.safetensors"
SUGGESTED = {"sd": "taesd", "sdxl": "taesdxl", "sd3": "taesd3", "flux": "taef1"}


class PreviewDecoder:
    """A loaded tiny decoder for one model: model-space latents (B, C, h, w) -> RGB (B, 3, H, W) in [0, 1]."""

    def __init__(self, tiny: torch.nn.Module, source: str):
        self.tiny = tiny
        self.source = source
        config = tiny.config
        self.scale = float(config.get("scaling_factor", 1.0) or 1.0)
        self.shift = float(config.get("shift_factor", 0.0) or 0.0)
        self.channels = int(config.latent_channels)

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        tiny = self.tiny
        param = next(tiny.parameters())
        z = latents.to(param.device, param.dtype) / self.scale + self.shift
        pixels = tiny.decode(z, return_dict=False)[0]  # (B, 3, H, W) in about [-1, 1]
        return ((pixels.float() + 1) / 2).clamp(0, 1)


def load_preview_decoder(folder: str | Path, *, family: str, channels: int, device: torch.device,
                         dtype: torch.dtype) -> PreviewDecoder:
    """The TAESD-family decoder in ``folder`` (a local diffusers ``AutoencoderTiny`` folder), checked to take
    ``channels``-channel latents, on ``device`` in ``dtype``; one sentence for anything else."""
    from diffusers import AutoencoderTiny

    from latentscape.models.registry import read_json_object

    path = Path(folder)
    hint = f"a local AutoencoderTiny folder (config.json + {WEIGHTS}, e.g. {SUGGESTED.get(family, 'taesd')} for {family})"
    if not path.is_dir():
        raise LatentscapeError(f"preview_decoder '{path}' is not a folder; expected {hint}.")
    config = read_json_object(path / "config.json", f"a preview decoder config ({hint})")
    if config.get("_class_name") != "AutoencoderTiny":
        raise LatentscapeError(f"preview_decoder '{path}' holds a {str(config.get('_class_name'))[:60]}; expected {hint}.")
    if not (path / WEIGHTS).is_file():
        raise LatentscapeError(f"preview_decoder '{path}' has no {WEIGHTS} (pickled weights are not loaded); expected {hint}.")
    read_header(path / WEIGHTS, name=f"preview decoder weights '{path / WEIGHTS}'", bound="max_model_header")
    if config.get("latent_channels") != channels:
        raise LatentscapeError(
            f"preview_decoder '{path}' decodes {config.get('latent_channels')}-channel latents; this {family} model has "
            f"{channels}: use {SUGGESTED.get(family, 'a decoder made for this VAE')}.")
    try:
        tiny = AutoencoderTiny.from_pretrained(str(path), use_safetensors=True, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - mis-shaped or missing tensors fail inside diffusers in many ways
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise LatentscapeError(f"could not load preview_decoder '{path}' ({first}); expected {hint}.") from None
    # half precision on accelerators (TAESD is made for it), fp32 on the CPU (fp16 convolutions are slow there)
    tiny = tiny.to(device, dtype if device.type != "cpu" else torch.float32).eval()
    log.info("preview decoder: %s", path)
    return PreviewDecoder(tiny, str(path))
