"""The decoder's sharpening terms as pure functions: they are zero or minimal where they should be, and the
adaptive weight is the ratio of the two gradients' norms at the last layer."""

from __future__ import annotations

import pytest
import torch

from latentscape.train import adversarial


def test_ssim_loss_is_zero_for_identical_images_and_grows_with_blur():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    assert adversarial.ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-5)
    assert adversarial.ssim_loss(blurred, x) > 0.1


def test_discriminator_judges_patches_and_exposes_its_features():
    d = adversarial.PatchDiscriminator()
    logits, feats = d.features(torch.zeros(2, 3, 64, 64))
    assert logits.shape == (2, 1, 15, 15) and len(feats) == 3
    assert adversarial.feature_matching_loss(feats, feats).item() == 0.0


def test_hinge_losses():
    assert adversarial.hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0.0  # both sides confident
    assert adversarial.hinge_d_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(1.0)
    assert adversarial.generator_loss(torch.tensor([1.0, 3.0])).item() == -2.0


def test_adaptive_weight_is_the_gradient_norm_ratio_at_the_last_layer():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    rec = (3 * w).sum()  # gradient (3, 3): norm 3·√2
    adv = (w * torch.tensor([1.0, 0.0])).sum()  # gradient (1, 0): norm 1
    assert adversarial.adaptive_weight(rec, adv, w).item() == pytest.approx(3 * 2**0.5 / (1 + 1e-4), rel=1e-5)
    assert adversarial.adaptive_weight(rec, 0 * w.sum(), w, max_weight=7.0).item() == 7.0  # clamped
