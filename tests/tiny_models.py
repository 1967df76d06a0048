"""Tiny random models of every family, built in code and saved in diffusers layout (no hub, no downloads).

Modelled on diffusers' own ``get_dummy_components``, but every piece is made here: the CLIP tokenizer from a
byte-level BPE vocabulary written by :func:`_clip_tokenizer`, the T5 tokenizer from a ``tokenizers`` Unigram model.
Each ``make_*`` seeds ``torch.manual_seed`` per component, builds the pipeline and saves it with
``save_pretrained(folder, safe_serialization=True)``; the same seed gives the same weights.

Sizes (parameters measured per component; every component stays under 110K):

* VAE (all families): 4 blocks ``(8, 8, 16, 16)``, ``layers_per_block=1``, 4 norm groups -> the real
  downscale factor 8 (32x32 px <-> 4x4 latent). 4 latent channels with quant convs for SD/SDXL (67K),
  16 without for SD3/FLUX (72K); scaling/shift factors are the real families' values.
* CLIP text encoders: 2 layers, 4 heads, hidden 32 ("CLIP-L", 41K) or 48 ("CLIP-G", with projection 48,
  76K); 670-token byte-level BPE vocabulary (256 bytes x {plain, ``</w>``} + corpus merges + 2 specials).
* T5 encoder (SD3, FLUX): v1.1-style gated-gelu, 2 layers, d_model 96, 4 heads x 8, d_ff 64 (85K);
  245-piece Unigram vocabulary, ``model_max_length`` 512.
* SD / SD2-v UNet: ``(8, 16)``, CrossAttnDown + Down, 1 layer per block, 2 heads, cross-attention 32
  (SD2-v: linear projections, DDIM v-prediction) (53K).
* SDXL UNet: ``(8, 16)``, Down + CrossAttnDown with 2 transformer layers, ``text_time`` additional
  embedding (time dim 8, 6*8 + 48 = 96 inputs), cross-attention 32 + 48 = 80 (107K).
* SD3 transformer: patch 2, 2 joint layers, 4 heads x 8, joint attention 96 (= T5, so CLIP's 32 + 48 = 80
  gets padded as in the real model), pooled 80, position embeddings up to 32x32 patches (84K).
* FLUX transformer: 1 double + 2 single blocks, 2 heads x 16, RoPE axes (4, 6, 6), 64 packed input
  channels (16 latent channels x 2x2), joint attention 96 (= T5), pooled 32 (= CLIP-L) (99K; 90K without
  the guidance embedding).

``tiny_single_file.make_sd_single_file`` also writes the SD1 model as one original-layout (LDM / A1111 keys) checkpoint,
with a small diffusers -> LDM key mapping of its own; the tokenizers live in ``tiny_tokenizers.py``.

SD/SDXL/SD3 default to 32x32 (``sample_size=4``); every family runs at 32x32 (FLUX's side multiple is 16).
With one torch thread, 2 steps at 32x32 take 30-90 ms per family on a shared 2-core CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    PNDMScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

from tiny_tokenizers import clip_tokenizer, t5_tokenizer  # noqa: E402

PathLike = str | os.PathLike[str]

_SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)


# ------------------------------------------------------------------------------------------ text encoders
def _clip_config(tokenizer: CLIPTokenizer, hidden: int) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=hidden,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _clip(tokenizer: CLIPTokenizer, hidden: int, seed: int) -> CLIPTextModel:
    torch.manual_seed(seed)
    return CLIPTextModel(_clip_config(tokenizer, hidden)).eval()


def _clip_projected(tokenizer: CLIPTokenizer, hidden: int, seed: int) -> CLIPTextModelWithProjection:
    torch.manual_seed(seed)
    return CLIPTextModelWithProjection(_clip_config(tokenizer, hidden)).eval()


T5_DIM = 96


def _t5(tokenizer: T5TokenizerFast, seed: int) -> T5EncoderModel:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=T5_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return T5EncoderModel(config).eval()


# ---------------------------------------------------------------------------------------------------- VAE
def _vae(seed: int, latent_channels: int, scaling_factor: float, shift_factor: float | None = None) -> AutoencoderKL:
    torch.manual_seed(seed)
    quant = shift_factor is None  # SD/SDXL VAEs have quant convs; SD3/FLUX VAEs do not
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=32,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=quant,
        use_post_quant_conv=quant,
    ).eval()


def _save(pipe: object, folder: PathLike) -> Path:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(path, safe_serialization=True)  # type: ignore[attr-defined]
    return path


# ------------------------------------------------------------------------------------------------ families
def build_sd(prediction_type: str = "epsilon", seed: int = 0) -> StableDiffusionPipeline:
    """The tiny SD1-style pipeline in memory; ``prediction_type="v_prediction"`` gives the SD2-v variant."""
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
    sd2 = prediction_type == "v_prediction"
    tokenizer = clip_tokenizer()
    text_encoder = _clip(tokenizer, hidden=32, seed=seed + 1)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=4,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=4,
        use_linear_projection=sd2,
    ).eval()
    if sd2:  # SD 2.x ships DDIM with v-prediction
        scheduler = DDIMScheduler(
            **_SD_BETAS, clip_sample=False, set_alpha_to_one=False, prediction_type="v_prediction"
        )
    else:  # SD 1.x ships PNDM
        scheduler = PNDMScheduler(**_SD_BETAS, skip_prk_steps=True, set_alpha_to_one=False)
    return StableDiffusionPipeline(
        vae=_vae(seed + 2, latent_channels=4, scaling_factor=0.18215),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def make_sd(folder: PathLike, prediction_type: str = "epsilon", seed: int = 0) -> Path:
    """Save the tiny SD pipeline (``"epsilon"``: SD1-like, ``"v_prediction"``: SD2-v-like) to ``folder``."""
    return _save(build_sd(prediction_type, seed), folder)


def make_sdxl(folder: PathLike, seed: int = 0) -> Path:
    """Save the tiny SDXL pipeline (CLIP-L + projected CLIP-G, ``text_time`` UNet) to ``folder``."""
    tokenizer = clip_tokenizer()
    tokenizer_2 = clip_tokenizer(pad_token="!")  # as in SDXL's real tokenizer_2
    text_encoder = _clip(tokenizer, hidden=32, seed=seed + 1)
    text_encoder_2 = _clip_projected(tokenizer_2, hidden=48, seed=seed + 2)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=4,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        cross_attention_dim=32 + 48,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 48,  # 6 size/crop ids + pooled CLIP-G
        norm_num_groups=4,
    ).eval()
    pipe = StableDiffusionXLPipeline(
        vae=_vae(seed + 3, latent_channels=4, scaling_factor=0.13025),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**_SD_BETAS, timestep_spacing="leading"),
    )
    return _save(pipe, folder)


def make_sd3(folder: PathLike, with_t5: bool = True, seed: int = 0) -> Path:
    """Save the tiny SD3 pipeline to ``folder``; ``with_t5=False`` saves it without its T5 (as SD3 allows)."""
    tokenizer, tokenizer_2 = clip_tokenizer(), clip_tokenizer(pad_token="!")
    tokenizer_3 = t5_tokenizer() if with_t5 else None
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=4,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=T5_DIM,
        caption_projection_dim=32,
        pooled_projection_dim=32 + 48,
        pos_embed_max_size=32,
    ).eval()
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=_vae(seed + 4, latent_channels=16, scaling_factor=1.5305, shift_factor=0.0609),
        text_encoder=_clip_projected(tokenizer, hidden=32, seed=seed + 1),
        tokenizer=tokenizer,
        text_encoder_2=_clip_projected(tokenizer_2, hidden=48, seed=seed + 2),
        tokenizer_2=tokenizer_2,
        text_encoder_3=_t5(tokenizer_3, seed=seed + 3) if tokenizer_3 is not None else None,
        tokenizer_3=tokenizer_3,
    )
    return _save(pipe, folder)


def make_flux(folder: PathLike, guidance_embeds: bool = True, seed: int = 0) -> Path:
    """Save the tiny FLUX pipeline: ``guidance_embeds=True`` is dev-like, ``False`` schnell-like."""
    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16 * 4,
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_DIM,
        pooled_projection_dim=32,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 6, 6),
    ).eval()
    if guidance_embeds:  # FLUX.1-dev's scheduler config: resolution-dependent shift
        scheduler = FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000,
            shift=3.0,
            use_dynamic_shifting=True,
            base_shift=0.5,
            max_shift=1.15,
            base_image_seq_len=256,
            max_image_seq_len=4096,
        )
    else:  # FLUX.1-schnell's: fixed shift 1
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)
    pipe = FluxPipeline(
        scheduler=scheduler,
        vae=_vae(seed + 3, latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=_clip(tokenizer, hidden=32, seed=seed + 1),
        tokenizer=tokenizer,
        text_encoder_2=_t5(tokenizer_2, seed=seed + 2),
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    return _save(pipe, folder)


