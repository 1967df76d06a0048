"""Real images in latent space: invert an image into the noise (and per-step noise) the sampler turns into it.

:func:`invert_image` is the one place an image becomes an inversion (cached, see
:mod:`latentscape.workflows.inversion_file`); :func:`reconstruct` turns an inversion back into the image
with the one loop; :func:`measure` compares that with the VAE round trip, the best any inversion can do.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from PIL import Image

from latentscape.inversion import METHODS, Inversion, check_method, invert_latents, replay, replay_sampler
from latentscape.io.images import fit_size, load_image, pil_to_tensor
from latentscape.io.latents import LatentMeta
from latentscape.models.family import Family
from latentscape.samplers import resolve_sampler
from latentscape.workflows.common import decode_images, encode, require
from latentscape.workflows.inversion_file import InversionCache, cache_key, default_cache, image_sha256, load_inversion

DEFAULT_STEPS = 50


@dataclass(frozen=True)
class InvertConfig:
    """One inversion. ``method`` None: ``exact``. ``prompt`` is the caption the inversion (and every replay)
    is conditioned on; ``cfg`` 1 (no guidance) keeps ``ddim``/``flow`` closest to the image. ``refine``:
    fixed-point iterations per step for ``ddim``/``flow``. ``seed``: ``exact``'s forward-noise draws.
    ``resize``: what to do with an image whose sides are not a multiple of the model's grid (``none``:
    refuse; ``stretch`` to the nearest multiple; ``crop`` the centre). ``sampler`` (``exact`` only; None: ddim
    / flow_euler): the sampler the inversion is recorded over and replays with; ``step_seed``: a stochastic
    sampler's step-noise seed (see :mod:`latentscape.inversion`)."""

    image: str
    prompt: str = ""
    negative: str = ""
    method: str | None = None
    steps: int = DEFAULT_STEPS
    refine: int = 0
    cfg: float = 1.0
    seed: int = 0
    resize: str = "none"
    sampler: str | None = None
    step_seed: int | None = None
    embedded_guidance: float | None = None  # guidance-distilled models (FLUX dev): None = the family's default


@dataclass
class InvertResult:
    inversion: Inversion
    image_latents: torch.Tensor  # (1, C, h, w): the encoded image (posterior mean)
    pixels: torch.Tensor  # (1, 3, H, W) in [-1, 1]: the image as the model saw it
    meta: LatentMeta
    info: dict[str, Any]  # prompt, negative, key, image hash: recorded in the file
    cached: bool
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)


def check_config(model: Family, config: InvertConfig) -> str:
    """Validate every field before any work; return the method used."""
    method = config.method or "exact"
    check_method(model, method, config.steps, config.refine)
    require(isinstance(config.cfg, (int, float)) and config.cfg >= 0, f"cfg got {config.cfg}; expected a number >= 0 (1 = no guidance, the inversion default).")
    require(isinstance(config.seed, int) and 0 <= config.seed < 2**63, f"seed got {config.seed}; expected a whole number >= 0.")
    return method


@torch.no_grad()
def invert_image(
    model: Family,
    image: str | os.PathLike | Image.Image,
    config: InvertConfig | None = None,
    *,
    cache: InversionCache | None | bool = True,
    progress: Callable[[int, int], None] | None = None,
    **fields: Any,
) -> InvertResult:
    """Invert ``image`` (a path or a PIL image) under ``config`` (or its fields as keywords).

    ``cache``: True = the process-wide cache (memory + ``$LATENTSCAPE_INVERSION_CACHE``), an
    :class:`InversionCache`, or False/None = always invert. The workflows' entry point for image anchors.
    """
    from latentscape import __version__

    name = str(image) if not isinstance(image, Image.Image) else "<image>"
    config = config or InvertConfig(image=name, **fields)
    method = check_config(model, config)
    source = load_image(image) if not isinstance(image, Image.Image) else image.convert("RGB")
    fitted = fit_size(source, model.latent_format.size_multiple, config.resize, name=f"image '{name}'")
    pixels = pil_to_tensor([fitted])
    embedded = None
    if model.embedded_guidance:  # FLUX dev, LCM-w
        embedded = float(model.default_guidance() if config.embedded_guidance is None else config.embedded_guidance)
    params = {"method": method, "steps": config.steps, "refine": config.refine if method != "exact" else 0,
              "prompt": config.prompt, "negative": config.negative, "cfg": float(config.cfg),
              "seed": config.seed if method == "exact" else 0, "embedded_guidance": embedded}
    if config.sampler is not None and config.sampler != replay_sampler(model, method):  # the default keeps its old key
        params["sampler"] = config.sampler
        if resolve_sampler(config.sampler, model.is_flow).stochastic:
            params["step_seed"] = config.step_seed
    image_hash = image_sha256(pixels)
    key = cache_key(image_hash, model, params)
    store = default_cache() if cache is True else (cache or None)
    lf = model.latent_format
    meta = LatentMeta(family=model.name, model=model.model_id, channels=lf.channels, scale=lf.scale, shift=lf.shift,
                      width=fitted.width, height=fitted.height, space="inversion", source=name, version=__version__)
    info = {"prompt": config.prompt, "negative": config.negative, "image_sha256": image_hash, "key": key}
    start = time.perf_counter()
    hit = store.get(key) if store is not None else None
    if hit is not None:
        inversion, latents = hit
        return InvertResult(inversion, latents, pixels, meta, info, True, time.perf_counter() - start)
    latents = model.encode_images(pixels).float().cpu()
    cond, uncond = encode(model, [config.prompt], [config.negative], model.uses_cfg(config.cfg))
    inversion = invert_latents(model, latents, cond, uncond, method=method, steps=config.steps,
                               guidance_scale=float(config.cfg), embedded_guidance=embedded,
                               refine=params["refine"], seed=params["seed"], sampler=config.sampler,
                               step_seed=params.get("step_seed"), callback=progress)
    if store is not None:
        store.put(key, inversion, latents, meta, info)
    return InvertResult(inversion, latents, pixels, meta, info, False, time.perf_counter() - start)


@torch.no_grad()
def reconstruct(model: Family, inversion: Inversion, prompt: str = "", negative: str = "", callback=None) -> torch.Tensor:
    """The model-space latents (B, C, h, w) an inversion comes back to under its prompt."""
    batch = inversion.noise.shape[0]
    cond, uncond = encode(model, [prompt] * batch, [negative] * batch, model.uses_cfg(inversion.guidance_scale))
    return replay(model, inversion, cond, uncond, callback=callback).float().cpu()


@torch.no_grad()
def measure(model: Family, result: InvertResult) -> dict[str, Any]:
    """PSNR/SSIM of the reconstruction and of the VAE round trip against the input pixels (8-bit, as saved)."""
    from latentscape.train.metrics import psnr, quantize, ssim

    rec = reconstruct(model, result.inversion, result.info["prompt"], result.info["negative"])
    ref = quantize(result.pixels)
    out = quantize(model.decode(rec).float().cpu())
    vae = quantize(model.decode(result.image_latents).float().cpu())
    result.stats = {
        "psnr_db": float(psnr(out, ref).mean()), "ssim": float(ssim(out, ref).mean()),
        "ceiling_psnr_db": float(psnr(vae, ref).mean()), "ceiling_ssim": float(ssim(vae, ref).mean()),
        "latent_max_error": float((rec - result.image_latents).abs().max()),
    }
    result.stats["reconstruction"] = out
    return result.stats


def check_file_for(model: Family, path: str | os.PathLike, meta: LatentMeta) -> None:
    """One sentence when an inversion file was made with another family or latent format than ``model``."""
    lf = model.latent_format
    require(
        meta.family == model.name and meta.channels == lf.channels and abs(meta.scale - lf.scale) < 1e-6 and abs(meta.shift - lf.shift) < 1e-6,
        f"inversion file '{path}' was made with a {meta.family} model ('{meta.model}'), but model '{model.model_id}' is "
        f"{model.name}; an inversion replays only on the model that made it: use --model {meta.model}.",
    )


@torch.no_grad()
def reconstruct_file(model: Family, path: str | os.PathLike) -> list[Image.Image]:
    """An inversion file -> its images, replayed from the stored noise with the stored sampler and prompt."""
    inversion, _, meta, record = load_inversion(path)
    check_file_for(model, path, meta)
    return decode_images(model, reconstruct(model, inversion, record.get("prompt", ""), record.get("negative", "")))


__all__ = ["METHODS", "InvertConfig", "InvertResult", "invert_image", "reconstruct", "measure", "reconstruct_file"]
