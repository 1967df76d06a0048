"""The sharpening terms of the VAE decoder's loss, as SD's VAE is trained (Esser et al. 2021, taming's
``LPIPSWithDiscriminator``), with a weight-free perceptual term because no pretrained network can be
downloaded here:

- perceptual: 1 − SSIM at two scales (full and 2x area-downsampled, 7-pixel Gaussian window) — structure,
  contrast and edges, the things an L1 loss averages away — plus L1 between the discriminator's intermediate
  features of the reconstruction and of the original (feature matching: a feature net trained jointly, as
  the discriminator, instead of LPIPS's frozen VGG);
- adversarial: a PatchGAN discriminator (hinge loss) whose generator term is weighted adaptively,
  ``λ = ‖∇_last L_rec‖ / (‖∇_last L_adv‖ + 1e-4)`` on the decoder's last layer, so the adversarial gradient
  never swamps the reconstruction gradient, and switched on after ``disc_start`` steps.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from latentscape.train import metrics


class PatchDiscriminator(nn.Module):
    """A small PatchGAN: each output logit judges a 30-pixel patch of a (B, 3, H, W) image in [-1, 1].

    Spectral-free, GroupNorm'd, LeakyReLU; ``features`` returns the intermediate activations too."""

    def __init__(self, width: int = 32, layers: int = 3):
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2))]
        c = width
        for i in range(1, layers):
            stride = 2 if i < layers - 1 else 1
            blocks.append(nn.Sequential(nn.Conv2d(c, c * 2, 4, stride, 1), nn.GroupNorm(8, c * 2), nn.LeakyReLU(0.2)))
            c *= 2
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c, 1, 3, 1, 1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(patch logits (B, 1, h, w), [activation of each block])."""
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[0]


def ssim_loss(recon: torch.Tensor, target: torch.Tensor, scales: int = 2) -> torch.Tensor:
    """Mean over ``scales`` (full, then 2x area-downsampled, ...) of 1 − SSIM, images in [-1, 1]."""
    a, b = (recon.float().clamp(-1, 1) + 1) / 2, (target.float() + 1) / 2
    total = recon.new_zeros(())
    for s in range(scales):
        if s:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        total = total + (1 - metrics.ssim(a, b, window=min(7, a.shape[-1]), sigma=1.5)).mean()
    return total / scales


def feature_matching_loss(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between the discriminator's features of the reconstruction and (detached) of the original."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake_feats, real_feats)) / len(fake_feats)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def adaptive_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """``‖∇ rec‖ / (‖∇ adv‖ + 1e-4)`` at ``last_layer``, clamped to [0, max_weight] and detached."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, max_weight).detach()
