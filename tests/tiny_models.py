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

:func:`make_sd_single_file` also writes the SD1 model as one original-layout (LDM / A1111 keys) checkpoint,
with a small diffusers -> LDM key mapping of its own (:func:`sd_to_ldm_state_dict`).

SD/SDXL/SD3 default to 32x32 (``sample_size=4``); every family runs at 32x32 (FLUX's side multiple is 16).
With one torch thread, 2 steps at 32x32 take 30-90 ms per family on a shared 2-core CPU.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
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
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

PathLike = str | os.PathLike[str]

# A small prompt-like corpus: BPE merges and Unigram words are learned from it, so prompts built from these
# words tokenize into a few tokens while anything else still tokenizes (bytes / characters).
CORPUS = (
    "a photo of a cat sitting on a red chair . a painting of a squirrel eating a burger . an astronaut riding "
    "a horse on the moon , highly detailed . portrait of a woman with blue eyes , oil painting . a dog running "
    "in the snow at sunset . city street at night , neon lights , rain . mountain landscape with a lake and "
    "trees , golden hour . a bowl of fruit on a wooden table , still life . the sea and the sky , 4k photo ."
)
_SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)


# ---------------------------------------------------------------------------------------------- tokenizers
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode character table (byte-level BPE alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]  # control bytes, space, ... -> U+0100 onwards
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + i) for i, b in enumerate(others)}}


def _bpe_merges(words: list[str], num_merges: int) -> list[tuple[str, str]]:
    """Greedy BPE on ``words`` (CLIP style: the last symbol of a word carries ``</w>``), ties by pair order."""
    byte_char = _bytes_to_unicode()
    counts = Counter(words)
    splits = {w: [byte_char[b] for b in w.encode()] for w in counts}
    for symbols in splits.values():
        symbols[-1] += "</w>"
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for w, symbols in splits.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += counts[w]
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])  # deterministic: first in sorted order wins ties
        merges.append(best)
        for w, symbols in splits.items():
            i, merged = 0, []
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[w] = merged
    return merges


def _clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """A CLIP tokenizer over all 256 bytes (+ ``</w>`` forms), the corpus merges and the two specials."""
    chars = list(_bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars]
    words = re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", CORPUS)
    merges = _bpe_merges(words, num_merges=200)
    for a, b in merges:
        if a + b not in vocab:
            vocab.append(a + b)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
        lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
        Path(tmp, "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=77, pad_token=pad_token)


def _t5_tokenizer() -> T5TokenizerFast:
    """A T5 (SentencePiece-Unigram-style) tokenizer: corpus words as ``▁word`` pieces, printable ASCII chars."""
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    words = sorted(set(CORPUS.split()))
    pieces = [("▁", -3.0)] + [("▁" + w, -5.0) for w in words]
    pieces += [(chr(c), -9.0) for c in range(33, 127)] + [("▁" + chr(c), -9.5) for c in range(33, 127)]
    scores: dict[str, float] = {}
    for piece, score in specials + pieces:
        scores.setdefault(piece, score)  # "▁a" is both a word and a character piece: keep the first
    vocab = list(scores.items())
    backend = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return T5TokenizerFast(
        tokenizer_object=backend,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        model_max_length=512,
    )


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
    tokenizer = _clip_tokenizer()
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
    tokenizer = _clip_tokenizer()
    tokenizer_2 = _clip_tokenizer(pad_token="!")  # as in SDXL's real tokenizer_2
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
    tokenizer, tokenizer_2 = _clip_tokenizer(), _clip_tokenizer(pad_token="!")
    tokenizer_3 = _t5_tokenizer() if with_t5 else None
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
    tokenizer, tokenizer_2 = _clip_tokenizer(), _t5_tokenizer()
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
