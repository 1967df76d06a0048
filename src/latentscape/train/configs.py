"""Model shapes as frozen dataclasses, and builders for the standard diffusers/transformers classes.

The geometry is Stable Diffusion's: an ``AutoencoderKL`` with 4 blocks (downscale 8) and 4 latent
channels, so 64x64x3 -> 8x8x4 is the same 48x compression as SD's 512x512x3 -> 64x64x4. Sizes were
picked by the CPU budget: one 64x64 image at 25 steps with CFG in <= 1 s on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VAEConfig:
    block_out_channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 32
    sample_size: int = 64


@dataclass(frozen=True)
class UNetConfig:
    block_out_channels: tuple[int, ...] = (64, 128, 256)
    layers_per_block: int = 1
    attention: tuple[bool, ...] = (True, True, False)  # cross-attention per level (8x8, 4x4, 2x2); mid always
    attention_head_dim: int = 32  # channels per head
    norm_num_groups: int = 32
    sample_size: int = 8
    in_channels: int = 4


@dataclass(frozen=True)
class TextConfig:
    hidden_size: int = 256
    intermediate_size: int = 1024
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 77
    max_length: int = 32  # the tokenizer's model_max_length: captions are padded/truncated to this


TINY_VAE = VAEConfig(block_out_channels=(8, 8, 16, 16), norm_num_groups=8)
TINY_UNET = UNetConfig(block_out_channels=(16, 32, 32), attention_head_dim=8, norm_num_groups=8)
TINY_TEXT = TextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, max_length=16)


def build_vae(cfg: VAEConfig, scaling_factor: float = 1.0):
    from diffusers import AutoencoderKL

    n = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=cfg.sample_size,
        scaling_factor=scaling_factor,
    )


def build_unet(cfg: UNetConfig, cross_attention_dim: int):
    from diffusers import UNet2DConditionModel

    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention))
    return UNet2DConditionModel(
        sample_size=cfg.sample_size,
        in_channels=cfg.in_channels,
        out_channels=cfg.in_channels,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=tuple(c // cfg.attention_head_dim for c in cfg.block_out_channels),  # = heads (diffusers' naming)
        norm_num_groups=cfg.norm_num_groups,
    )


def build_text_encoder(cfg: TextConfig, vocab_size: int, bos_token_id: int, eos_token_id: int, pad_token_id: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads,
            max_position_embeddings=cfg.max_position_embeddings,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
        )
    )


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())
