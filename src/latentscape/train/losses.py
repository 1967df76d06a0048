"""Losses as pure functions: the VAE's reconstruction + KL, the diffusion target and Min-SNR weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical finite differences of (B, C, H, W) images."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, grad_weight: float = 0.5, mse_weight: float = 0.0) -> torch.Tensor:
    """L1 on pixels, plus L1 on image gradients (keeps outlines crisp, an LPIPS-free edge term), plus MSE."""
    loss = F.l1_loss(recon, target)
    if grad_weight:
        (rx, ry), (tx, ty) = image_gradients(recon), image_gradients(target)
        loss = loss + grad_weight * 0.5 * (F.l1_loss(rx, tx) + F.l1_loss(ry, ty))
    if mse_weight:
        loss = loss + mse_weight * F.mse_loss(recon, target)
    return loss


def kl_loss(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)), summed over latent values, averaged over the batch."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).flatten(1).sum(1).mean()


def snr(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ᾱ/(1-ᾱ) at integer timesteps ``t``."""
    a = alphas_cumprod.to(t.device)[t]
    return a / (1 - a)


def diffusion_target(x0: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """What the denoiser should output: ε, or v = √ᾱ·ε − √(1−ᾱ)·x₀ (Salimans & Ho 2022)."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        a = alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1)
        return a.sqrt() * noise - (1 - a).sqrt() * x0
    raise ValueError(f"prediction_type '{prediction_type}' is not one of 'epsilon', 'v_prediction'")


def min_snr_weights(snr_t: torch.Tensor, prediction_type: str, gamma: float = 5.0) -> torch.Tensor:
    """Min-SNR-γ loss weights (Hang et al. 2023) for an MSE on the ε or v target."""
    clipped = snr_t.clamp(max=gamma)
    if prediction_type == "epsilon":
        return clipped / snr_t
    return clipped / (snr_t + 1)  # v-prediction


def diffusion_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    per_item = (pred.float() - target.float()).square().flatten(1).mean(1)
    return (per_item * weights).mean() if weights is not None else per_item.mean()
