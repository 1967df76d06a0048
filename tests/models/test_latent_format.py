import pytest
import torch

from latentscape.models.latent_format import FLUX, FORMATS, SD, SD3, SDXL


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_scale_shift_round_trip(fmt):
    z = torch.randn(2, fmt.channels, 8, 8, dtype=torch.float64)
    assert torch.allclose(fmt.to_vae(fmt.to_model(z)), z, atol=1e-12)
    assert torch.allclose(fmt.to_model(fmt.to_vae(z)), z, atol=1e-12)


def test_conventions():
    z = torch.ones(1, 16, 2, 2)
    assert torch.allclose(SD3.to_model(z), (1 - 0.0609) * 1.5305 * torch.ones_like(z))
    assert torch.allclose(FLUX.to_vae(z), (1 / 0.3611 + 0.1159) * torch.ones_like(z))
    assert SD.latent_shape(512, 512) == (4, 64, 64)
    assert SD.compression_ratio(512, 512) == 48.0
    assert FLUX.size_multiple == 16 and SDXL.size_multiple == 8
    assert FLUX.latent_shape(1024, 768) == (16, 96, 128)


def test_vae_config_overrides():
    fmt = SD.from_vae_config({"scaling_factor": 0.5, "shift_factor": None, "latent_channels": 4, "block_out_channels": [1, 2, 3, 4]})
    assert fmt.scale == 0.5 and fmt.shift == 0.0 and fmt.downscale == 8 and fmt.rgb_factors == SD.rgb_factors
    small = SD.from_vae_config({"block_out_channels": [1, 2], "latent_channels": 16})
    assert small.downscale == 2 and small.channels == 16 and small.rgb_factors is None


def test_per_channel_stats():
    fmt = SDXL.from_vae_config({"latents_mean": [1, 2, 3, 4], "latents_std": [2, 2, 2, 2], "scaling_factor": 0.5})
    z = torch.randn(1, 4, 3, 3)
    assert torch.allclose(fmt.to_vae(fmt.to_model(z)), z, atol=1e-6)
    assert torch.allclose(fmt.to_model(torch.tensor([1.0, 2, 3, 4]).view(1, 4, 1, 1)), torch.zeros(1, 4, 1, 1))


def test_preview_range_and_factors():
    z = torch.randn(2, 4, 8, 8) * 3
    rgb = SD.preview(z)
    assert rgb.shape == (2, 3, 8, 8) and rgb.min() >= 0 and rgb.max() <= 1
    red = SD.with_rgb([[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    out = red.preview(torch.zeros(1, 4, 1, 1) + torch.tensor([0.5, 0, 0, 0]).view(1, 4, 1, 1))
    assert torch.allclose(out.flatten(), torch.tensor([0.75, 0.5, 0.5]))
    with pytest.raises(ValueError, match="rows"):
        SD.with_rgb([[1, 0, 0]])
