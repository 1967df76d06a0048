"""Stage 2: train the ``UNet2DConditionModel`` and the ``CLIPTextModel`` jointly on cached VAE latents.

Choices (see the README's training section for the numbers behind them):
- Stable Diffusion's noise schedule (``scaled_linear``, β 0.00085 -> 0.012, 1000 steps) so every SD sampler
  and tool works unchanged. On 8x8x4 latents its end is nearly pure noise (ᾱ_T = 0.0047: over all 256
  latent values a matched filter still sees an SNR of ~1.2), so zero-terminal-SNR rescaling is not needed;
  sampling uses ``trailing`` timestep spacing so the first step starts at t = 999.
- v-prediction (well-behaved at the noisy end, where ε-prediction gives poor x₀) with Min-SNR-5 weights.
- Caption dropout to the empty caption (10 %), which is exactly what the pipelines encode as the
  unconditional/negative prompt, so classifier-free guidance works.
- EMA weights are what gets exported.
- No flips or other augmentation: a mirrored emoji is a different picture (text, arrows, hands).
- Captions at several levels (``caption_mix``, off by default): each image's caption is drawn per step from
  its fine caption, ``<group>, <style> style``, ``<style> style`` and ``<name>`` (``data.caption_levels``)
  with these probabilities, so a coarse caption names many emoji (seeds choose among them, CFG trades
  diversity for adherence) while the fine captions stay exact.
- Fine-tuning (``init``, off by default): the UNet, the text encoder and the tokenizer start from an exported
  model folder (e.g. the embedded model) instead of random weights; the EMA starts from them too. The
  folder's shapes must be this config's (checked before training). A checkpoint in the run folder wins.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentscape.train import data as emoji_data
from latentscape.train import loop, losses, tokenizer as bpe
from latentscape.train.configs import TextConfig, UNetConfig, build_text_encoder, build_unet, n_params

log = logging.getLogger(__name__)

SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
}


@dataclass(frozen=True)
class DiffusionTrainConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    text: TextConfig = field(default_factory=TextConfig)
    loop: loop.LoopConfig = field(
        default_factory=lambda: loop.LoopConfig(steps=3400, batch_size=64, lr=5e-4, warmup=500, weight_decay=0.01,
                                                ema_decay=0.999, ema_warmup=1000, checkpoint_every=250)
    )
    prediction_type: str = "v_prediction"
    min_snr_gamma: float = 5.0  # 0 disables Min-SNR weighting
    caption_dropout: float = 0.1
    latent_noise: bool = True  # sample z ~ q(z|x) from the cached posterior instead of its mean
    eval_every: int = 2000
    eval_captions: int = 64
    bf16: bool = True  # autocast; on this AMX CPU with the settings in `fast_training` it is ~1.6x faster than fp32
    caption_mix: tuple[float, ...] = ()  # probabilities of data.LEVELS (fine, group, style, name); () = fine only
    init: str = ""  # an exported model folder whose UNet, text encoder and tokenizer the run starts from; "" = random


def noise_scheduler(prediction_type: str = "v_prediction"):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config({**SCHEDULER, "prediction_type": prediction_type})


def sampling_scheduler(prediction_type: str = "v_prediction"):
    """The scheduler shipped with the model (latentscape builds its other samplers from this config)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler.from_config({**SCHEDULER, "prediction_type": prediction_type})


def fast_training(unet, text_encoder):
    """Settings that make CPU training ~1.6x faster here (measured, bf16 autocast, batch 128): plain matmul
    attention (the fused SDPA kernel's bf16 backward is slow on CPU at these sizes; on CUDA the fused kernel
    is the fast one and stays) and channels-last convolutions. Neither changes the saved weights or configs."""
    from diffusers.models.attention_processor import AttnProcessor

    if unet.device.type == "cpu":
        unet.set_attn_processor(AttnProcessor())
        if hasattr(text_encoder, "set_attn_implementation"):
            text_encoder.set_attn_implementation("eager")
    return unet.to(memory_format=torch.channels_last), text_encoder


def check_caption_mix(mix: tuple[float, ...]) -> torch.Tensor | None:
    """``caption_mix`` as a probability tensor over ``data.LEVELS``, None when empty; one sentence if invalid."""
    from latentscape.errors import LatentscapeError

    if not mix:
        return None
    values = torch.tensor([float(v) for v in mix], dtype=torch.float64)
    if len(mix) != len(emoji_data.LEVELS) or not bool(torch.isfinite(values).all()) or bool((values < 0).any()) or values.sum() <= 0:
        raise LatentscapeError(f"caption_mix {tuple(mix)} is not allowed; it takes {len(emoji_data.LEVELS)} non-negative weights "
                               f"for the levels {', '.join(emoji_data.LEVELS)}, not all zero.")
    return (values / values.sum()).float()


INIT_PARTS = ("unet/config.json", "text_encoder/config.json", "tokenizer/vocab.json", "tokenizer/merges.txt")


def check_init(folder: str | Path) -> Path:
    """``folder`` as a Path if it is an exported model folder to start from; one sentence if it is not."""
    from latentscape.errors import LatentscapeError

    folder = Path(folder)
    missing = [part for part in INIT_PARTS if not (folder / part).is_file()]
    if missing:
        raise LatentscapeError(f"--init '{folder}' is not an exported model folder (it has no {', '.join(missing)}); "
                               "it takes a folder written by `latentscape train export`, such as the embedded model.")
    return folder


def _shape_differences(built: dict, loaded: dict, keys) -> list[str]:
    norm = lambda v: json.loads(json.dumps(v, default=list))  # tuples and lists compare equal
    return [k for k in keys if norm(built.get(k)) != norm(loaded.get(k))]


def load_init(folder: Path, unet, text_encoder) -> None:
    """Copy the UNet and text-encoder weights of the model folder ``folder`` into ``unet`` and ``text_encoder``
    (built from this run's config, in their dtype); one sentence naming the fields if the shapes differ."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from latentscape.errors import LatentscapeError

    src_unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32)
    src_text = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=torch.float32)
    differ = [f"unet.{k}" for k in _shape_differences(dict(unet.config), dict(src_unet.config),
                                                      [k for k in unet.config if not k.startswith("_")])]
    text_keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "max_position_embeddings")
    differ += [f"text_encoder.{k}" for k in _shape_differences(text_encoder.config.to_dict(), src_text.config.to_dict(), text_keys)]
    if differ:
        raise LatentscapeError(f"--init '{folder}' holds a model of another shape than this run's ({', '.join(differ)} differ); "
                               "pass the model sizes it was trained with (e.g. --tiny for a tiny model) or another folder.")
    unet.load_state_dict(src_unet.state_dict())
    text_encoder.load_state_dict(src_text.state_dict())


def tokenize(tok, captions, max_length: int) -> torch.Tensor:
    """Captions -> (N, max_length) ids, padded and truncated exactly as the SD pipeline does."""
    return torch.tensor(tok(list(captions), padding="max_length", max_length=max_length, truncation=True).input_ids)


def load_latents(vae_run: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, std, scaling_factor) cached by the VAE stage."""
    z = np.load(vae_run / "latents.npz")
    scale = json.loads((vae_run / "vae" / "config.json").read_text())["scaling_factor"]
    return z["mean"], z["std"], float(scale)


def save_components(out: Path, unet, text_encoder, tokenizer_dir: Path, prediction_type: str) -> None:
    """The stage's output: ``unet/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/`` (fp32)."""
    unet = copy.deepcopy(unet).to(memory_format=torch.contiguous_format)  # safetensors wants contiguous weights
    unet.set_default_attn_processor()
    unet.save_pretrained(out / "unet")
    text_encoder.save_pretrained(out / "text_encoder")
    copy_tokenizer(tokenizer_dir, out / "tokenizer")
    sampling_scheduler(prediction_type).save_pretrained(out / "scheduler")


def copy_tokenizer(src: Path, dst: Path) -> None:
    """Copy the CLIP vocabulary files as written by :mod:`latentscape.train.tokenizer` (loadable by the slow
    and the fast ``CLIPTokenizer`` of any transformers version)."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in bpe.FILES:
        shutil.copy2(src / name, dst / name)


def train(cfg: DiffusionTrainConfig, data_path, vae_run: Path, run_dir: Path, *, resume: bool = True,
          device: str | None = None, progress: bool = True) -> Path:
    """Train (or resume) in ``run_dir``; write the EMA components to ``run_dir/final`` at every checkpoint."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTokenizer

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.loop.seed)
    data = emoji_data.load(data_path)
    mean, std, scale = load_latents(vae_run)
    train_mask = ~data.heldout
    z_mean = torch.from_numpy(mean[train_mask]).float()  # (N, 4, 8, 8) raw VAE latents
    z_std = torch.from_numpy(std[train_mask]).float()

    mix = check_caption_mix(cfg.caption_mix)
    init = check_init(cfg.init) if cfg.init else None
    levels = [data.captions] if mix is None else [data.captions_at(level) for level in emoji_data.LEVELS]
    tok_dir = run_dir / "tokenizer"
    rank, size = loop.world()
    if rank == 0 and not (tok_dir / "vocab.json").is_file() and init is not None:
        copy_tokenizer(init / "tokenizer", tok_dir)  # the init model's token ids, whatever captions it never saw
    elif rank == 0 and not (tok_dir / "vocab.json").is_file():
        bpe.train(sorted(set(c for captions in levels for c in captions.tolist())), tok_dir, cfg.text.max_length)
    if size > 1:
        torch.distributed.barrier()
    tok = CLIPTokenizer.from_pretrained(tok_dir)
    level_ids = torch.stack([tokenize(tok, captions[train_mask], cfg.text.max_length) for captions in levels])  # (L, N, T)
    empty_ids = tokenize(tok, [""], cfg.text.max_length)[0]

    text_encoder = build_text_encoder(cfg.text, len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id).to(dev).train()
    unet = build_unet(cfg.unet, cfg.text.hidden_size).to(dev).train()
    if init is not None:
        load_init(init, unet, text_encoder)
        log.info("starting from the weights of %s", init)
    unet, text_encoder = fast_training(unet, text_encoder)
    log.info("UNet %.2f M, text encoder %.2f M parameters; %d training latents (scale %.4f)",
             n_params(unet) / 1e6, n_params(text_encoder) / 1e6, len(z_mean), scale)
    opt = torch.optim.AdamW(list(unet.parameters()) + list(text_encoder.parameters()), lr=cfg.loop.lr,
                            weight_decay=cfg.loop.weight_decay, betas=(0.9, 0.99))
    modules = {"unet": unet, "text_encoder": text_encoder}
    ema = {k: loop.EMA(m, cfg.loop.ema_decay) for k, m in modules.items()} if cfg.loop.ema_decay else {}
    state = loop.State(0, modules, opt, ema, {})
    config = loop.config_dict(cfg.unet, cfg.text, cfg.loop) | {
        k: getattr(cfg, k) for k in ("prediction_type", "min_snr_gamma", "caption_dropout", "latent_noise", "bf16")
    } | {"scheduler": SCHEDULER} | ({"caption_mix": list(cfg.caption_mix)} if mix is not None else {}) | (
        {"init": str(init.resolve())} if init is not None else {})  # both absent when off: older runs resume
    loop.resume_if_present(run_dir, state, resume, config)

    sched = noise_scheduler(cfg.prediction_type)
    alphas_cumprod = sched.alphas_cumprod.float()

    def train_step(step: int, gen: torch.Generator) -> dict[str, float]:
        # Draw the whole batch's randomness, then keep this process's rows (all of them on one process).
        idx = loop.epoch_batches(len(z_mean), cfg.loop.batch_size, cfg.loop.seed, step)
        b = len(idx)
        z = z_mean[idx]
        if cfg.latent_noise:
            z = z + z_std[idx] * torch.randn(z.shape, generator=gen)
        noise = torch.randn(z.shape, generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=gen)
        drop = torch.rand(b, generator=gen) < cfg.caption_dropout
        level = torch.multinomial(mix, b, replacement=True, generator=gen) if mix is not None else torch.zeros(b, dtype=torch.long)
        batch_ids = torch.where(drop[:, None], empty_ids[None], level_ids[level, idx])
        x0, noise, t, batch_ids = (loop.shard(v).to(dev) for v in (z * scale, noise, t, batch_ids))  # x0 in model space
        xt = sched.add_noise(x0, noise, t)
        with loop.autocast(dev, cfg.bf16):
            cond = text_encoder(batch_ids)[0]
            pred = unet(xt, t, encoder_hidden_states=cond).sample
        target = losses.diffusion_target(x0, noise, alphas_cumprod, t, cfg.prediction_type)
        weights = losses.min_snr_weights(losses.snr(alphas_cumprod, t), cfg.prediction_type, cfg.min_snr_gamma) if cfg.min_snr_gamma else None
        loss = losses.diffusion_loss(pred, target, weights)
        loss.backward()
        return {"loss": loss.item()}

    vae = AutoencoderKL.from_pretrained(vae_run / "vae").to(dev).eval()

    def evaluate(step: int) -> dict[str, float]:
        from latentscape.train import evaluate as ev

        u = ema["unet"].module if ema else unet
        te = ema["text_encoder"].module if ema else text_encoder
        model = ev.family(vae, te, tok, u, sampling_scheduler(cfg.prediction_type), dev)
        captions = ev.eval_captions(data, cfg.eval_captions, seed=1234, base=True)
        out = ev.adherence(model, data, captions, guidance_scale=7.5, steps=25, seed=0, batch=64)
        unet.train(), text_encoder.train()
        return {k: v for k, v in out.items() if not isinstance(v, list)}

    def write_final(step: int) -> None:
        u = ema["unet"].module if ema else unet
        te = ema["text_encoder"].module if ema else text_encoder
        tmp = run_dir / "final.partial"  # written whole, then swapped in: `final/` is always complete
        loop.check_replaceable(tmp, "--runs")  # a folder of the user's under that name is never deleted
        if tmp.exists():
            shutil.rmtree(tmp)
        save_components(tmp, u, te, tok_dir, cfg.prediction_type)
        summary = {"step": step, "wall_seconds": state.extra.get("wall_seconds", 0.0), "batch_size": cfg.loop.batch_size,
                   "samples_seen": step * cfg.loop.batch_size, "ema_decay": cfg.loop.ema_decay, "processes": size,
                   "unet_params": n_params(u), "text_encoder_params": n_params(te), "hardware": loop.hardware(dev)}
        (tmp / "train_summary.json").write_text(json.dumps(summary, indent=2))
        loop.replace_folder(tmp, run_dir / "final")

    loop.run(state, cfg.loop, train_step, run_dir=run_dir, config=config, evaluate=evaluate, eval_every=cfg.eval_every,
             on_checkpoint=write_final, progress=progress)
    summary_file = run_dir / "final" / "train_summary.json"
    if rank == 0 and (not summary_file.is_file() or json.loads(summary_file.read_text()).get("step") != state.step):
        write_final(state.step)
    return run_dir / "final"
