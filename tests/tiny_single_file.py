"""The tiny SD model as one original-layout (LDM / A1111 keys) checkpoint, for single-file loading tests."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file
from tiny_models import PathLike, _save, build_sd

# ------------------------------------------------------------------------- single file (LDM / A1111 keys)
_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}  # fmt: skip
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _resnet(rest: str) -> str:
    name, _, param = rest.rpartition(".")
    return f"{_RESNET[name]}.{param}"


def _unet_key(key: str, per_block: int, up_has_attention: set[int]) -> str:
    """A diffusers UNet2DConditionModel key -> its key in the original LDM ``openaimodel.UNetModel``."""
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}  # fmt: skip
    head, _, param = key.rpartition(".")
    if head in fixed:
        return f"{fixed[head]}.{param}"
    step = per_block + 1  # LDM: per_block layers, then one downsample/upsample slot per level
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = 1 + int(m[1]) * step + int(m[3])
        return f"input_blocks.{index}.0.{_resnet(m[4])}" if m[2] == "resnets" else f"input_blocks.{index}.1.{m[4]}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * step + per_block}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = int(m[1]) * step + int(m[3])
        return f"output_blocks.{index}.0.{_resnet(m[4])}" if m[2] == "resnets" else f"output_blocks.{index}.1.{m[4]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        slot = 2 if int(m[1]) in up_has_attention else 1
        return f"output_blocks.{int(m[1]) * step + per_block}.{slot}.conv.{m[2]}"
    raise KeyError(f"no LDM name for UNet key {key!r}")


def _vae_key(key: str, num_blocks: int) -> str:
    """A diffusers AutoencoderKL key -> its key in the original LDM ``AutoencoderKL``."""
    key = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    key = re.sub(r"mid_block\.resnets\.(\d+)", lambda m: f"mid.block_{int(m[1]) + 1}", key)
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
        return f"{m[1]}.mid.attn_1.{_VAE_ATTN[m[2]]}.{m[3]}"
    key = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets", r"encoder.down.\1.block", key)
    key = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample", key)
    up = lambda m: f"decoder.up.{num_blocks - 1 - int(m[1])}.{m[2]}"  # noqa: E731 - LDM numbers up blocks in reverse
    key = re.sub(r"decoder\.up_blocks\.(\d+)\.(resnets)", lambda m: up(m).replace("resnets", "block"), key)
    return re.sub(r"decoder\.up_blocks\.(\d+)\.(upsamplers)\.0", lambda m: up(m).replace("upsamplers", "upsample"), key)


def sd_to_ldm_state_dict(pipe: StableDiffusionPipeline) -> dict[str, torch.Tensor]:
    """The pipeline's UNet, VAE and CLIP text encoder under original SD1 checkpoint keys."""
    unet_config = pipe.unet.config
    up_has_attention = {i for i, kind in enumerate(unet_config.up_block_types) if "CrossAttn" in kind}
    state: dict[str, torch.Tensor] = {}
    for key, value in pipe.unet.state_dict().items():
        ldm = _unet_key(key, unet_config.layers_per_block, up_has_attention)
        state["model.diffusion_model." + ldm] = value
    num_blocks = len(pipe.vae.config.block_out_channels)
    for key, value in pipe.vae.state_dict().items():
        ldm = _vae_key(key, num_blocks)
        if ".mid.attn_1." in ldm and value.ndim == 2:
            value = value[:, :, None, None]  # LDM's VAE attention uses 1x1 convs
        state["first_stage_model." + ldm] = value
    for key, value in pipe.text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else "text_model." + key  # transformers >= 5.6 flattened it
        state["cond_stage_model.transformer." + key] = value
    return {k: v.contiguous() for k, v in state.items()}


def make_sd_single_file(folder: PathLike, seed: int = 0) -> tuple[Path, Path]:
    """Save the tiny SD1 model as one LDM-keyed ``.safetensors`` plus a diffusers config folder without weights.

    ``StableDiffusionPipeline.from_single_file(checkpoint, config=config_folder, local_files_only=True)``
    loads it offline; its weights equal ``make_sd(..., seed=seed)``'s. Returns ``(checkpoint, config_folder)``.
    """
    root = Path(folder)
    pipe = build_sd(seed=seed)
    config_folder = _save(pipe, root / "config")
    for weights in [*config_folder.rglob("*.safetensors"), *config_folder.rglob("*.bin")]:
        weights.unlink()  # only configs, tokenizer and scheduler stay: the weights must come from the checkpoint
    checkpoint = root / "tiny_sd.safetensors"
    save_file(sd_to_ldm_state_dict(pipe), str(checkpoint))
    return checkpoint, config_folder
