"""Stage 3: assemble the ``StableDiffusionPipeline`` folder (fp16 safetensors) plus ``latentscape.json``.

``latentscape.json`` holds the linear latent -> RGB preview (least squares from model-space latents to
the images area-downsampled to 8x8 in [-1, 1]) and a summary of how the model was trained.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from latentscape.train import data as emoji_data
from latentscape.train.diffusion import copy_tokenizer
from latentscape.train.loop import check_replaceable, replace_folder

log = logging.getLogger(__name__)

MANIFEST = "latentscape.json"
KEEP = ("README.md",)


def fit_rgb_factors(latents: np.ndarray, images: np.ndarray) -> tuple[list[list[float]], list[float]]:
    """Least-squares ``rgb ≈ latents · F + b`` per latent pixel: F (C, 3), b (3,).

    ``latents``: model-space (N, C, h, w); ``images``: uint8 (N, H, W, 3), area-averaged down to (h, w).
    """
    n, c, h, w = latents.shape
    rgb = torch.nn.functional.adaptive_avg_pool2d(emoji_data.to_tensor(images), (h, w))  # (N, 3, h, w)
    x = torch.from_numpy(latents).double().permute(0, 2, 3, 1).reshape(-1, c)
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    y = rgb.double().permute(0, 2, 3, 1).reshape(-1, 3)
    sol = torch.linalg.lstsq(x, y).solution  # (C + 1, 3)
    return sol[:c].tolist(), sol[c].tolist()


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1e6


def _init_summary(diffusion_run: Path) -> dict | None:
    """For a diffusion run started with ``--init``: the init model's folder name and its own diffusion summary."""
    config = diffusion_run / "config.json"
    init = json.loads(config.read_text()).get("init") if config.is_file() else None
    if not init:
        return None
    manifest = Path(init) / MANIFEST
    before = json.loads(manifest.read_text()).get("trained", {}).get("diffusion", {}) if manifest.is_file() else {}
    return {"model": Path(init).name, **before}


def export(vae_run: Path, diffusion_run: Path, out: Path, *, data_path=None, dtype: str = "fp16",
           summary: dict | None = None) -> Path:
    """Write the pipeline folder to ``out`` (replacing it) from the two stages' outputs (the diffusion stage's
    ``final/`` holds the EMA weights)."""
    out = Path(out)
    for folder in (out, out.with_name(out.name + ".partial"), out.with_name(out.name + ".old")):
        check_replaceable(folder)  # before any work: an --out that is someone else's folder is never replaced
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    final = diffusion_run / "final"
    vae = AutoencoderKL.from_pretrained(vae_run / "vae")
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=CLIPTextModel.from_pretrained(final / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(final / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(final / "unet"),
        scheduler=EulerDiscreteScheduler.from_pretrained(final / "scheduler"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    torch_dtype = {"fp16": torch.float16, "fp32": torch.float32}[dtype]
    pipe.to(torch_dtype)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    pipe.save_pretrained(tmp, safe_serialization=True)
    copy_tokenizer(final / "tokenizer", tmp / "tokenizer")  # the plain CLIP vocab files, not this version's dump
    # diffusers loads fp16 weights as fp32 by default, transformers keeps the config's dtype: say float32 so
    # that a plain `StableDiffusionPipeline.from_pretrained(path)` gets one dtype (an explicit dtype still wins).
    te_config = tmp / "text_encoder" / "config.json"
    config = json.loads(te_config.read_text())
    for key in ("dtype", "torch_dtype"):
        if key in config:
            config[key] = "float32"
    te_config.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    data = emoji_data.load(data_path)
    mean = np.load(vae_run / "latents.npz")["mean"]
    keep = ~data.heldout
    factors, bias = fit_rgb_factors(mean[keep] * vae.config.scaling_factor, data.images[keep])
    trained = dict(summary or {})
    for name, path in (("vae", vae_run / "vae_eval.json"), ("diffusion", final / "train_summary.json")):
        if path.is_file():
            trained[name] = json.loads(path.read_text())
    init = _init_summary(diffusion_run)
    if init is not None and "diffusion" in trained:
        trained["diffusion"]["init"] = init  # a fine-tune: what it started from, so the manifest tells the whole training
    trained["dtype"] = dtype
    manifest = {"latent_rgb_factors": factors, "latent_rgb_bias": bias, "trained": trained}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    for name in KEEP:  # hand-written files (the model card) survive a re-export
        if (out / name).is_file():
            shutil.copy2(out / name, tmp / name)
    replace_folder(tmp, out)
    log.info("exported %s (%.1f MB)", out, folder_mb(out))
    return out
