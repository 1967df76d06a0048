"""Evaluate an exported model: VAE PSNR/SSIM, prompt adherence, and the CFG sweep (adherence vs diversity).

- VAE: mean per-image PSNR and SSIM of 8-bit reconstructions of the held-out images (whole 64x64).
- Adherence: 256 training captions (a seeded sample, the same for every model), generated at CFG 7.5 with
  25 Euler steps; each image's nearest *training* image by pixel L2 at 64x64 must carry the caption's emoji
  name (name top-1) and style (style accuracy). Also reported on held-out captions (an unseen
  name x style/tone combination whose name exists in training).
- CFG sweep at 1, 3, 5, 7.5, 10, 15 on the first 32 of those captions x 8 seeds: adherence, and diversity
  = mean pairwise RMS pixel distance (in [0, 1] units) between the 8 seeds' images, averaged over prompts.

Generation goes through ``diffusers.StableDiffusionPipeline`` with the folder's own scheduler, batched.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from latentscape.train import data as emoji_data
from latentscape.core import metrics as core_metrics

log = logging.getLogger(__name__)

CFG_SWEEP = (1.0, 3.0, 5.0, 7.5, 10.0, 15.0)


@dataclass(frozen=True)
class EvalConfig:
    n_captions: int = 256
    steps: int = 25
    guidance_scale: float = 7.5
    sweep_prompts: int = 32
    sweep_seeds: int = 8
    seed: int = 0
    skip_sweep: bool = False
    batch: int = 64


def pipeline(vae, text_encoder, tokenizer, unet, scheduler):
    """An in-memory ``StableDiffusionPipeline`` over components (no safety checker)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def eval_captions(data: emoji_data.EmojiData, n: int, seed: int = 1234, heldout: bool = False) -> list[int]:
    """A seeded sample of ``n`` image indices (training images, or held-out ones), in a fixed random order
    (so any prefix is itself a random sample of both styles)."""
    pool = np.flatnonzero(data.heldout if heldout else ~data.heldout)
    rng = np.random.default_rng(seed)
    return rng.choice(pool, size=min(n, len(pool)), replace=False).tolist()


@torch.no_grad()
def generate(pipe, prompts: Sequence[str], seeds: Sequence[int], guidance_scale: float, steps: int, batch: int = 64) -> np.ndarray:
    """(N, 64, 64, 3) uint8 images, one per (prompt, seed), each seeded by its own CPU generator."""
    out = []
    for i in range(0, len(prompts), batch):
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i : i + batch]]
        images = pipe(list(prompts[i : i + batch]), num_inference_steps=steps, guidance_scale=guidance_scale,
                      generator=gens, output_type="np", height=64, width=64).images
        out.append((np.clip(images, 0, 1) * 255).round().astype(np.uint8))
    return np.concatenate(out)


def nearest(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Index of the nearest reference image by pixel L2 for each image (both uint8 (N, H, W, 3))."""
    return core_metrics.nearest_neighbours(torch.from_numpy(images), torch.from_numpy(reference)).numpy()


def score(images: np.ndarray, names: Sequence[str], styles: Sequence[str], train: emoji_data.EmojiData) -> dict[str, float]:
    """Name top-1 and style accuracy of the nearest training images."""
    nn = nearest(images, train.images)
    return {"name_top1": float(np.mean(train.names[nn] == np.asarray(names))),
            "style_acc": float(np.mean(train.styles[nn] == np.asarray(styles)))}


def adherence(pipe, data: emoji_data.EmojiData, indices: Sequence[int], *, guidance_scale: float, steps: int,
              seed: int = 0, batch: int = 64) -> dict:
    """Generate one image per caption (seed ``seed + i``) and score it against the training images."""
    prompts = data.captions[list(indices)].tolist()
    images = generate(pipe, prompts, [seed + i for i in range(len(prompts))], guidance_scale, steps, batch)
    return score(images, data.names[list(indices)], data.styles[list(indices)], data.train) | {"n": len(prompts)}


def cfg_sweep(pipe, data: emoji_data.EmojiData, indices: Sequence[int], cfg: EvalConfig) -> list[dict]:
    """Adherence and diversity at each CFG scale: ``sweep_seeds`` seeds of each caption."""
    idx = np.repeat(np.asarray(indices), cfg.sweep_seeds)
    prompts = data.captions[idx].tolist()
    seeds = [cfg.seed + k for _ in indices for k in range(cfg.sweep_seeds)]
    rows = []
    for g in CFG_SWEEP:
        t = time.monotonic()
        images = generate(pipe, prompts, seeds, g, cfg.steps, cfg.batch)
        s = score(images, data.names[idx], data.styles[idx], data.train)
        x = torch.from_numpy(images).float().div(255).reshape(len(indices), cfg.sweep_seeds, -1)
        diversity = float(np.mean([core_metrics.mean_pairwise_distance(group) for group in x]))
        rows.append({"guidance_scale": g, **s, "diversity": diversity})
        log.info("CFG %.1f: %s (%.0f s)", g, rows[-1], time.monotonic() - t)
    return rows


def markdown(results: dict) -> str:
    """The README tables."""
    lines = []
    if "vae" in results:
        v = results["vae"]
        lines += ["| VAE (held-out, 64x64) | PSNR | SSIM |", "|---|---|---|", f"| f8c4 | {v['psnr']:.2f} dB | {v['ssim']:.4f} |", ""]
    a = results.get("adherence")
    if a:
        lines += [f"Prompt adherence, CFG {a['guidance_scale']}, {a['steps']} steps:", "",
                  "| captions | n | name top-1 | style acc |", "|---|---|---|---|"]
        for key, label in (("train", "training captions"), ("heldout", "held-out captions")):
            if key in a:
                lines.append(f"| {label} | {a[key]['n']} | {a[key]['name_top1']:.3f} | {a[key]['style_acc']:.3f} |")
        lines.append("")
    if results.get("cfg_sweep"):
        lines += ["| CFG | name top-1 | style acc | diversity |", "|---|---|---|---|"]
        for r in results["cfg_sweep"]:
            lines.append(f"| {r['guidance_scale']:g} | {r['name_top1']:.3f} | {r['style_acc']:.3f} | {r['diversity']:.4f} |")
    return "\n".join(lines)


def main(model: Path, data_path, cfg: EvalConfig, *, out: Path | None = None, threads: int | None = None,
         dtype: torch.dtype = torch.float32, device: str | None = None, runs: Path = Path("runs")) -> dict:
    """Evaluate the pipeline folder ``model`` on ``device`` (default: cuda when available); print the Markdown
    tables and write JSON to ``out`` (default: ``runs/eval.json``)."""
    from diffusers import StableDiffusionPipeline

    from latentscape.train.vae import evaluate_vae

    if threads:
        torch.set_num_threads(threads)
    data = emoji_data.load(data_path)
    pipe = StableDiffusionPipeline.from_pretrained(model, dtype=dtype, safety_checker=None, requires_safety_checker=False)
    pipe.to(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    pipe.set_progress_bar_config(disable=True)
    t0 = time.monotonic()
    results: dict = {"model": str(model), "config": asdict(cfg), "vae": evaluate_vae(pipe.vae, data.test.images)}
    train_idx = eval_captions(data, cfg.n_captions)
    held_idx = eval_captions(data, cfg.n_captions, heldout=True)
    kw = dict(guidance_scale=cfg.guidance_scale, steps=cfg.steps, seed=cfg.seed, batch=cfg.batch)
    results["adherence"] = {"guidance_scale": cfg.guidance_scale, "steps": cfg.steps,
                            "train": adherence(pipe, data, train_idx, **kw), "heldout": adherence(pipe, data, held_idx, **kw)}
    log.info("VAE %s; adherence %s", results["vae"], results["adherence"])
    if not cfg.skip_sweep:
        results["cfg_sweep"] = cfg_sweep(pipe, data, train_idx[: cfg.sweep_prompts], cfg)
    results["seconds"] = time.monotonic() - t0
    table = markdown(results)
    print(table)
    out = out or Path(runs) / "eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    log.info("wrote %s", out)
    return results
