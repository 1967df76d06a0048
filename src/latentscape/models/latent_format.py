"""Each family's latent conventions in one small object (ComfyUI's ``latent_formats.py`` idea).

``to_model`` maps raw VAE latents into the space the denoiser works in, ``to_vae`` maps back; ``preview``
is the fast linear latent -> RGB approximation (no VAE). These presets are the only place in latentscape
where the families' literal constants appear; a VAE config that states its own ``scaling_factor`` /
``shift_factor`` / ``latents_mean`` / ``latents_std`` overrides them (see :meth:`LatentFormat.from_vae_config`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # torch is imported by the methods that use it: the registry of formats stays light
    import torch

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class LatentFormat:
    family: str
    channels: int
    scale: float
    shift: float = 0.0
    downscale: int = 8  # VAE spatial factor
    patch: int = 1  # FLUX packs 2x2 latent pixels into one token
    rgb_factors: tuple[RGB, ...] | None = None  # (channels, 3), applied to model-space latents
    rgb_bias: RGB = (0.0, 0.0, 0.0)
    latents_mean: tuple[float, ...] | None = None  # per channel, for VAEs that normalise per channel
    latents_std: tuple[float, ...] | None = None

    @property
    def size_multiple(self) -> int:
        """Image sides must be a multiple of this (8 for SD/SDXL/SD3, 16 for FLUX)."""
        return self.downscale * self.patch

    def latent_shape(self, width: int, height: int) -> tuple[int, int, int]:
        """(C, h, w) of the latent for an image of ``width`` x ``height`` pixels."""
        return (self.channels, height // self.downscale, width // self.downscale)

    def compression_ratio(self, width: int, height: int) -> float:
        """Pixel values per latent value (SD: 512x512x3 / 64x64x4 = 48)."""
        c, h, w = self.latent_shape(width, height)
        return (3 * width * height) / (c * h * w)

    def _channel_stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        import torch

        if self.latents_mean is None or self.latents_std is None:
            return None
        shape = (1, -1) + (1,) * (z.ndim - 2)
        mean = torch.tensor(self.latents_mean, device=z.device, dtype=z.dtype).view(shape)
        std = torch.tensor(self.latents_std, device=z.device, dtype=z.dtype).view(shape)
        return mean, std

    def to_model(self, z: torch.Tensor) -> torch.Tensor:
        """Raw VAE latent -> model space: ``(z − shift)·scale`` (or per-channel ``(z − mean)·scale/std``)."""
        stats = self._channel_stats(z)
        if stats is not None:
            return (z - stats[0]) * self.scale / stats[1]
        return (z - self.shift) * self.scale

    def to_vae(self, z: torch.Tensor) -> torch.Tensor:
        """Model-space latent -> raw VAE latent: ``z/scale + shift`` (or per-channel ``z·std/scale + mean``)."""
        stats = self._channel_stats(z)
        if stats is not None:
            return z * stats[1] / self.scale + stats[0]
        return z / self.scale + self.shift

    def preview(self, latents: torch.Tensor) -> torch.Tensor:
        """Model-space latents (B, C, h, w) -> a linear RGB approximation (B, 3, h, w) in [0, 1]."""
        import torch

        z = latents.float()
        if self.rgb_factors is None:
            rgb = z[:, :3] if z.shape[1] >= 3 else z[:, :1].expand(-1, 3, -1, -1)
            rgb = rgb / rgb.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        else:
            factors = torch.tensor(self.rgb_factors, dtype=torch.float32, device=z.device)  # (C, 3)
            bias = torch.tensor(self.rgb_bias, dtype=torch.float32, device=z.device)
            rgb = torch.einsum("bchw,cr->brhw", z, factors) + bias.view(1, 3, 1, 1)
        return ((rgb + 1.0) / 2.0).clamp(0.0, 1.0)

    def from_vae_config(self, config: Mapping[str, Any]) -> "LatentFormat":
        """This format with scale/shift/channels/per-channel stats taken from a diffusers VAE config."""
        changes: dict[str, Any] = {}
        if config.get("scaling_factor") is not None:
            changes["scale"] = float(config["scaling_factor"])
        if config.get("shift_factor") is not None:
            changes["shift"] = float(config["shift_factor"])
        if config.get("latent_channels") is not None and int(config["latent_channels"]) != self.channels:
            changes["channels"] = int(config["latent_channels"])
            changes["rgb_factors"] = None
        if config.get("latents_mean") is not None and config.get("latents_std") is not None:
            changes["latents_mean"] = tuple(float(v) for v in config["latents_mean"])
            changes["latents_std"] = tuple(float(v) for v in config["latents_std"])
        if config.get("block_out_channels") is not None:
            changes["downscale"] = 2 ** (len(config["block_out_channels"]) - 1)
        return dataclasses.replace(self, **changes)

    def with_rgb(self, factors: list[list[float]] | None, bias: list[float] | None = None) -> "LatentFormat":
        """This format with other latent -> RGB preview factors (e.g. fitted for a custom VAE)."""
        rgb = tuple(tuple(float(v) for v in row) for row in factors) if factors is not None else None
        if rgb is not None and len(rgb) != self.channels:
            raise ValueError(f"rgb factors have {len(rgb)} rows for {self.channels} latent channels")
        return dataclasses.replace(self, rgb_factors=rgb, rgb_bias=tuple(bias) if bias else (0.0, 0.0, 0.0))


# Preview factors: ComfyUI's latent_formats.py (SD1.5 from Keturn's analysis), applied to model-space latents.
SD = LatentFormat(
    family="sd",
    channels=4,
    scale=0.18215,
    rgb_factors=((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)),
)
SDXL = LatentFormat(
    family="sdxl",
    channels=4,
    scale=0.13025,
    rgb_factors=((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)),
    rgb_bias=(0.1084, -0.0175, -0.0011),
)
SD3 = LatentFormat(
    family="sd3",
    channels=16,
    scale=1.5305,
    shift=0.0609,
    rgb_factors=(
        (-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954), (0.1994, 0.0927, 0.0458), (0.0856, 0.0339, 0.0902),
        (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309), (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358),
        (-0.0194, 0.0020, 0.0669), (-0.0488, 0.0130, -0.0268), (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
        (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810), (-0.0596, -0.0465, -0.0293), (-0.1448, -0.1463, -0.1189),
    ),
    rgb_bias=(0.2394, 0.2135, 0.1925),
)
FLUX = LatentFormat(
    family="flux",
    channels=16,
    scale=0.3611,
    shift=0.1159,
    patch=2,
    rgb_factors=(
        (-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433), (-0.0174, 0.0160, 0.0617),
        (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115), (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259),
        (-0.0245, 0.0250, 0.1180), (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
        (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103), (-0.0280, -0.0881, -0.0499), (-0.1262, -0.0982, -0.0778),
    ),
    rgb_bias=(-0.0329, -0.0718, -0.0851),
)

FORMATS: dict[str, LatentFormat] = {f.family: f for f in (SD, SDXL, SD3, FLUX)}
