"""Moving between pixels and latents: encode, decode, and inspect (the numbers behind the compression)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from latentscape.io.images import fit_size, load_image, pil_to_tensor
from latentscape.io.latents import LatentMeta, load_latents
from latentscape.models.family import Family
from latentscape.workflows.common import decode_images, require


def _load(model: Family, image_path: str | os.PathLike, resize: str) -> Image.Image:
    return fit_size(load_image(image_path), model.latent_format.size_multiple, resize, name=f"image '{image_path}'")


@torch.no_grad()
def encode_image(model: Family, image_path: str | os.PathLike, resize: str = "none") -> tuple[torch.Tensor, LatentMeta]:
    """Image file -> model-space latents (1, C, h, w) (posterior mean) and their metadata."""
    from latentscape import __version__

    image = _load(model, image_path, resize)
    latents = model.encode_images(pil_to_tensor([image])).float().cpu()
    lf = model.latent_format
    meta = LatentMeta(family=model.name, model=model.model_id, channels=lf.channels, scale=lf.scale, shift=lf.shift,
                      width=image.width, height=image.height, source=str(image_path), version=__version__)
    return latents, meta


@torch.no_grad()
def decode_file(model: Family, latent_path: str | os.PathLike) -> list[Image.Image]:
    """A latent file written by :func:`encode_image` -> images, checked against the model's latent format."""
    latents, meta = load_latents(latent_path)
    lf = model.latent_format
    require(latents.ndim == 4, f"latent file '{latent_path}' holds a tensor of shape {tuple(latents.shape)}; expected (B, C, h, w).")
    require(
        latents.shape[1] == lf.channels,
        f"latent file '{latent_path}' has {latents.shape[1]} channels ({meta.family}) but model '{model.model_id}' "
        f"({model.name}) expects {lf.channels}; decode it with --model {meta.model}.",
    )
    require(
        abs(meta.scale - lf.scale) < 1e-6 and abs(meta.shift - lf.shift) < 1e-6,
        f"latent file '{latent_path}' was scaled for a VAE with scale {meta.scale:g}/shift {meta.shift:g}, but model "
        f"'{model.model_id}' uses {lf.scale:g}/{lf.shift:g}; decode it with --model {meta.model}.",
    )
    return decode_images(model, latents)


@dataclass
class Inspection:
    """The numbers behind the latent space for one image and model, plus the fast RGB preview."""

    stats: dict[str, Any]
    preview: Image.Image  # linear latent -> RGB approximation, upscaled to the image size
    reconstruction: Image.Image  # decode(encode(image))


@torch.no_grad()
def inspect_image(model: Family, image_path: str | os.PathLike, resize: str = "none") -> Inspection:
    image = _load(model, image_path, resize)
    pixels = pil_to_tensor([image])
    latents = model.encode_images(pixels).float()
    lf = model.latent_format
    recon_pixels = model.decode(latents).float().clamp(-1, 1).cpu()
    recon = decode_images(model, latents)[0]
    mse = torch.mean(((recon_pixels + 1) / 2 - (pixels + 1) / 2) ** 2).item()
    psnr = float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()
    c, h, w = latents.shape[1:]
    per_channel = [
        {"channel": i, "mean": latents[0, i].mean().item(), "std": latents[0, i].std().item(),
         "min": latents[0, i].min().item(), "max": latents[0, i].max().item()}
        for i in range(c)
    ]
    preview = Image.fromarray(
        (lf.preview(latents)[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")
    ).resize(image.size, Image.Resampling.NEAREST)
    stats = {
        "model": model.model_id,
        "family": model.name,
        "image": str(image_path),
        "image_size": [image.width, image.height],
        "pixel_shape": [3, image.height, image.width],
        "pixel_values": 3 * image.width * image.height,
        "pixel_range": [float(pixels.min()), float(pixels.max())],
        "latent_shape": [c, h, w],
        "latent_values": c * h * w,
        "compression_ratio": lf.compression_ratio(image.width, image.height),
        "downscale": lf.downscale,
        "scale": lf.scale,
        "shift": lf.shift,
        "latent_mean": latents.mean().item(),
        "latent_std": latents.std().item(),
        "channels": per_channel,
        "reconstruction_psnr_db": psnr,
    }
    return Inspection(stats=stats, preview=preview, reconstruction=recon)
