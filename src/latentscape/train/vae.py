"""Stage 1: train the ``AutoencoderKL`` (f8c4) and cache the dataset's latents.

The VAE is convolutional, so it trains on random 32x32 crops (aligned to the 8-pixel latent grid) of the
64x64 images: 4x cheaper per sample, evaluated on whole held-out images. Horizontal flips are fine here
(reconstruction does not care about meaning). Loss: L1 + L1 on image gradients + a tiny KL (1e-6).
The latent scale factor is 1/std of the trained latents of the training images, stored in the config.

Decoder fine-tuning (``decoder_only``) keeps the encoder, hence the latents and everything trained on them,
and keeps improving reconstructions: it can run while the diffusion model trains on those latents. It can add
SD's sharpening terms (:mod:`latentscape.train.adversarial`): a weight-free perceptual term (two-scale SSIM
plus feature matching on the discriminator) and a PatchGAN with the adaptive adversarial weight.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentscape.errors import LatentscapeError
from latentscape.train import data as emoji_data
from latentscape.train import adversarial, loop, losses, metrics
from latentscape.train.configs import VAEConfig, build_vae, n_params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VAETrainConfig:
    model: VAEConfig = field(default_factory=VAEConfig)
    loop: loop.LoopConfig = field(
        default_factory=lambda: loop.LoopConfig(steps=4000, batch_size=32, lr=5e-4, warmup=300, ema_decay=0.999, ema_warmup=1000,
                                                checkpoint_every=250)
    )
    crop: int = 32
    flips: bool = True
    kl_weight: float = 1e-6
    grad_weight: float = 0.5
    mse_weight: float = 0.0
    eval_every: int = 1000
    bf16: bool = True
    decoder_only: bool = False  # fine-tune the decoder of a trained VAE on its cached latents (encoder frozen)
    # Decoder fine-tune only (see latentscape.train.adversarial): 1 - SSIM at two scales, L1 on the PatchGAN's
    # features, and the PatchGAN's hinge term with SD's adaptive weight, the last two from step disc_start.
    ssim_weight: float = 0.0
    feature_weight: float = 0.0
    disc_weight: float = 0.0
    disc_start: int = 0


def crops(images: torch.Tensor, size: int, flips: bool, gen: torch.Generator) -> torch.Tensor:
    """Random ``size`` crops aligned to multiples of 8 (the latent grid), optionally flipped. (B, 3, s, s)."""
    b, _, h, w = images.shape
    if size >= h:
        out = images
    else:
        ys = torch.randint(0, (h - size) // 8 + 1, (b,), generator=gen) * 8
        xs = torch.randint(0, (w - size) // 8 + 1, (b,), generator=gen) * 8
        out = torch.stack([im[:, y : y + size, x : x + size] for im, y, x in zip(images, ys.tolist(), xs.tolist())])
    if flips:
        flip = torch.rand(b, generator=gen) < 0.5
        out = torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)
    return out


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Images in [-1, 1] -> reconstructions through the posterior mode, in [-1, 1]."""
    outs = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch].to(vae.device)
        outs.append(vae.decode(vae.encode(x).latent_dist.mode()).sample.float().cpu())
    return torch.cat(outs)


@torch.no_grad()
def evaluate_vae(vae, images_uint8: np.ndarray) -> dict[str, float]:
    """Mean per-image PSNR (dB) and SSIM of 8-bit reconstructions of whole images."""
    vae.eval()
    x = emoji_data.to_tensor(images_uint8)
    y = reconstruct(vae, x)
    a, b = metrics.quantize(y), metrics.quantize(x)
    return {"psnr": float(metrics.psnr(a, b).mean()), "ssim": float(metrics.ssim(a, b).mean())}


@torch.no_grad()
def encode_dataset(vae, images_uint8: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Raw (unscaled) posterior means and stds of every image: two (N, 4, 8, 8) float32 arrays."""
    vae.eval()
    means, stds = [], []
    for i in range(0, len(images_uint8), batch):
        dist = vae.encode(emoji_data.to_tensor(images_uint8[i : i + batch]).to(vae.device)).latent_dist
        means.append(dist.mean.float().cpu())
        stds.append(dist.std.float().cpu())
    return torch.cat(means).numpy(), torch.cat(stds).numpy()


def save_vae(vae, data: emoji_data.EmojiData, out_dir: Path) -> float:
    """Save the VAE with its scaling factor (1/std of the training latents) and the cached latents."""
    mean, std = encode_dataset(vae, data.images)
    scale = float(1.0 / mean[~data.heldout].std())
    vae.register_to_config(scaling_factor=scale)
    vae.save_pretrained(out_dir / "vae")
    np.savez(out_dir / "latents.npz", mean=mean, std=std)
    log.info("saved %s (scaling_factor %.4f) and latents.npz", out_dir / "vae", scale)
    return scale


def train(cfg: VAETrainConfig, data_path: Path | str | None, run_dir: Path, *, resume: bool = True, device: str | None = None,
          progress: bool = True, finish_early: bool = False) -> Path:
    """Train (or resume) the VAE in ``run_dir``; write ``run_dir/vae`` and ``run_dir/latents.npz``. With
    ``finish_early``, a run stopped by ``minutes`` before the schedule's end writes them too (its EMA weights
    at that step: a time-boxed recipe's stage must hand something on)."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.loop.seed)
    data = emoji_data.load(data_path)
    train_images = emoji_data.to_tensor(data.train.images)  # (N, 3, 64, 64) in [-1, 1]
    vae = build_vae(cfg.model).to(dev).train()
    log.info("VAE: %.2f M parameters, %d training images", n_params(vae) / 1e6, len(train_images))
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.loop.lr, weight_decay=cfg.loop.weight_decay, betas=(0.9, 0.99))
    ema = {"vae": loop.EMA(vae, cfg.loop.ema_decay)} if cfg.loop.ema_decay else {}
    state = loop.State(0, {"vae": vae}, opt, ema, {})
    config = loop.config_dict(cfg.model, cfg.loop) | {"crop": cfg.crop, "flips": cfg.flips, "kl_weight": cfg.kl_weight,
                                                      "grad_weight": cfg.grad_weight, "mse_weight": cfg.mse_weight}
    loop.resume_if_present(run_dir, state, resume, config)

    def train_step(step: int, gen: torch.Generator) -> dict[str, float]:
        idx = loop.epoch_batches(len(train_images), cfg.loop.batch_size, cfg.loop.seed, step)
        x = crops(train_images[idx], cfg.crop, cfg.flips, gen)
        eps = torch.randn(x.shape[0], cfg.model.latent_channels, cfg.crop // 8, cfg.crop // 8, generator=gen)
        x, eps = loop.shard(x).to(dev), loop.shard(eps).to(dev)  # this process's rows
        with loop.autocast(dev, cfg.bf16):
            dist = vae.encode(x).latent_dist
            z = dist.mean + dist.std * eps
            recon = vae.decode(z).sample.float()
        rec = losses.reconstruction_loss(recon, x, cfg.grad_weight, cfg.mse_weight)
        kl = losses.kl_loss(dist.mean.float(), dist.logvar.float())
        (rec + cfg.kl_weight * kl).backward()
        return {"loss": rec.item(), "kl": kl.item()}

    final, scores = _run_and_score(state, cfg, train_step, run_dir, config, vae, ema, data, "VAE", progress, finish_early)
    if final is None:
        return run_dir
    save_vae(final, data, run_dir)
    (run_dir / "vae_eval.json").write_text(json.dumps(scores | {"step": state.step, "wall_seconds": state.extra.get("wall_seconds", 0.0), "params": n_params(final), "hardware": loop.hardware(dev)}, indent=2))
    return run_dir


def _finished(state: loop.State, cfg: VAETrainConfig, run_dir: Path, finish_early: bool = False) -> bool:
    """Whether this process writes the stage's outputs: rank 0, and only once the schedule is complete (a run
    stopped early by ``minutes`` leaves the previous outputs, if any, as they were), or at once with
    ``finish_early``."""
    if state.step < cfg.loop.steps and not finish_early:
        log.info("stopped at step %d of %d: %s is written when the run completes (resume to continue)",
                 state.step, cfg.loop.steps, run_dir / "vae")
        return False
    return loop.world()[0] == 0


def _run_and_score(state, cfg: VAETrainConfig, train_step, run_dir: Path, config: dict, vae, ema: dict, data, label: str,
                   progress: bool, finish_early: bool = False):
    """Run the loop; once the schedule is finished (on rank 0): the final weights in eval mode and their held-out
    scores, else (None, None)."""
    loop.run(state, cfg.loop, train_step, run_dir=run_dir, config=config, evaluate=_evaluator(vae, ema, data.test.images),
             eval_every=cfg.eval_every, progress=progress)
    if not _finished(state, cfg, run_dir, finish_early):
        return None, None
    final = (ema["vae"].module if ema else vae).float().eval()
    scores = evaluate_vae(final, data.test.images)
    log.info("%s held-out: PSNR %.2f dB, SSIM %.4f (step %d)", label, scores["psnr"], scores["ssim"], state.step)
    return final, scores


def _evaluator(vae, ema: dict, images: np.ndarray):
    """The periodic held-out evaluation: the EMA weights when there are some, then back to training mode."""

    def evaluate(step: int) -> dict[str, float]:
        out = evaluate_vae(ema["vae"].module if ema else vae, images)
        vae.train()
        return out

    return evaluate


def finetune_decoder(cfg: VAETrainConfig, data_path: Path | str | None, vae_run: Path, run_dir: Path, *, resume: bool = True,
                     device: str | None = None, progress: bool = True, finish_early: bool = False) -> Path:
    """Train only the decoder of ``vae_run/vae`` on its cached latents; write ``run_dir/vae`` (same encoder,
    same scaling factor, same ``latents.npz``); ``finish_early`` as in :func:`train`."""
    import shutil

    from diffusers import AutoencoderKL

    missing = [name for name in ("vae/config.json", "latents.npz") if not (vae_run / name).is_file()]
    if missing:
        raise LatentscapeError(f"the decoder fine-tune starts from a trained VAE run, but {vae_run} has no "
                               f"{' or '.join(missing)}; train the VAE first (`latentscape train vae`).")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.loop.seed)
    data = emoji_data.load(data_path)
    keep = ~data.heldout
    cached = np.load(vae_run / "latents.npz")
    z_mean, z_std = torch.from_numpy(cached["mean"][keep]), torch.from_numpy(cached["std"][keep])
    images = emoji_data.to_tensor(data.images[keep])
    vae = AutoencoderKL.from_pretrained(vae_run / "vae").to(dev).train()
    trainable = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    vae.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    disc = adversarial.PatchDiscriminator().to(dev).train() if cfg.disc_weight or cfg.feature_weight else None
    groups = [{"params": trainable}] + ([{"params": list(disc.parameters())}] if disc is not None else [])
    opt = torch.optim.AdamW(groups, lr=cfg.loop.lr, weight_decay=cfg.loop.weight_decay, betas=(0.5 if disc else 0.9, 0.99))
    ema = {"vae": loop.EMA(vae, cfg.loop.ema_decay)} if cfg.loop.ema_decay else {}
    state = loop.State(0, {"vae": vae} | ({"disc": disc} if disc is not None else {}), opt, ema, {})
    config = loop.config_dict(cfg.model, cfg.loop) | {"decoder_only": True, "init": str(vae_run), "crop": cfg.crop,
                                                      "grad_weight": cfg.grad_weight, "mse_weight": cfg.mse_weight}
    if cfg.ssim_weight or disc is not None:  # (absent when off: older runs resume unchanged)
        config |= {k: getattr(cfg, k) for k in ("ssim_weight", "feature_weight", "disc_weight", "disc_start")}
    loop.resume_if_present(run_dir, state, resume, config)
    s = cfg.crop // 8

    def train_step(step: int, gen: torch.Generator) -> dict[str, float]:
        idx = loop.epoch_batches(len(images), cfg.loop.batch_size, cfg.loop.seed, step)
        z = z_mean[idx] + z_std[idx] * torch.randn(z_mean[idx].shape, generator=gen)
        ys = torch.randint(0, 8 - s + 1, (len(idx),), generator=gen).tolist()
        xs = torch.randint(0, 8 - s + 1, (len(idx),), generator=gen).tolist()
        z = loop.shard(torch.stack([zi[:, y : y + s, x : x + s] for zi, y, x in zip(z, ys, xs)])).to(dev)
        x = loop.shard(torch.stack([im[:, 8 * y : 8 * (y + s), 8 * x : 8 * (x + s)] for im, y, x in zip(images[idx], ys, xs)])).to(dev)
        with loop.autocast(dev, cfg.bf16):
            recon = vae.decode(z).sample.float()
        rec = losses.reconstruction_loss(recon, x, cfg.grad_weight, cfg.mse_weight)
        logs = {"loss": rec.item()}
        if cfg.ssim_weight:
            s_loss = adversarial.ssim_loss(recon, x)
            rec = rec + cfg.ssim_weight * s_loss
            logs["ssim_loss"] = s_loss.item()
        adversary = disc is not None and step >= cfg.disc_start
        if adversary:
            disc.requires_grad_(False)  # the generator's terms train the decoder only
            fake_logits, fake_feats = disc.features(recon)
            if cfg.feature_weight:
                fm = adversarial.feature_matching_loss(fake_feats, disc.features(x)[1])
                rec = rec + cfg.feature_weight * fm
                logs["feature_loss"] = fm.item()
            if cfg.disc_weight:
                g_loss = adversarial.generator_loss(fake_logits)
                weight = adversarial.adaptive_weight(rec, g_loss, vae.decoder.conv_out.weight)
                rec = rec + cfg.disc_weight * weight * g_loss
                logs |= {"g_loss": g_loss.item(), "adv_weight": float(weight)}
        rec.backward()
        if adversary:
            disc.requires_grad_(True)
            d_loss = adversarial.hinge_d_loss(disc(x), disc(recon.detach()))
            d_loss.backward()
            logs["d_loss"] = d_loss.item()
        return logs

    final, scores = _run_and_score(state, cfg, train_step, run_dir, config, vae, ema, data, "VAE (decoder fine-tuned)", progress,
                                   finish_early)
    if final is None:
        return run_dir
    final.save_pretrained(run_dir / "vae")
    shutil.copy2(vae_run / "latents.npz", run_dir / "latents.npz")
    base = json.loads((vae_run / "vae_eval.json").read_text()) if (vae_run / "vae_eval.json").is_file() else {}
    summary = scores | {"step": state.step, "wall_seconds": state.extra.get("wall_seconds", 0.0), "params": n_params(final),
                        "hardware": loop.hardware(dev), "encoder": base}
    (run_dir / "vae_eval.json").write_text(json.dumps(summary, indent=2))
    return run_dir
