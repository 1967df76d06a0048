"""How well images follow their prompts, measured offline.

- **Caption retrieval by diffusion classifier** (Li et al. 2023, "Your Diffusion Model is Secretly a
  Zero-Shot Classifier"): an image is VAE-encoded, noised at fixed timesteps with fixed noise, and each
  candidate caption is scored by the model's denoising error with that caption (summed over the
  timesteps, the same noise for every caption); the best caption is the one with the lowest error.
  Adherence is the fraction of images whose own prompt ranks first. For the embedded emoji model the
  candidates are the prompt plus a fixed set of emoji names in both styles (:data:`EMOJI_NAMES` x
  :data:`EMOJI_STYLES`), and name-only and style-only accuracy are reported too. Needs no data set.
- **Nearest training image** (when the emoji data set is on disk): the fraction of images whose nearest
  training image (RMS pixel distance at 64x64) carries the prompt's emoji name.
- **CLIP score**: the cosine similarity x 100 between a local CLIP model's image and text embeddings.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from latentscape.core.metrics import label_accuracy, nearest_neighbours
from latentscape.errors import LatentscapeError
from latentscape.io.images import pil_to_tensor
from latentscape.models.family import Family

log = logging.getLogger(__name__)

# Distractor captions for the embedded model: 16 emoji names from different categories, each in both styles.
EMOJI_NAMES: tuple[str, ...] = (
    "grinning face", "cat face", "dog face", "heavy black heart", "thumbs up sign", "fire", "pile of poo",
    "face with tears of joy", "ghost", "rocket", "slice of pizza", "sun with face", "robot face", "frog face",
    "red apple", "snowman",
)
EMOJI_STYLES: tuple[str, ...] = ("google", "twitter")
TIMESTEP_FRACTIONS: tuple[float, ...] = (0.2, 0.35, 0.5, 0.65, 0.8)  # of the training schedule
NOISE_SEED = 0
CLASSIFIER_BATCH = 128


def emoji_parts(caption: str) -> tuple[str, str] | None:
    """``"cat face, twitter style"`` -> ("cat face", "twitter"); None when it is not of that form."""
    head, sep, tail = caption.strip().rpartition(", ")
    if not sep or not tail.endswith(" style"):
        return None
    style = tail[: -len(" style")].strip()
    return (head.strip().lower(), style.lower()) if head.strip() and style else None


def emoji_candidates(prompts: Sequence[str], names: Sequence[str] = EMOJI_NAMES, styles: Sequence[str] = EMOJI_STYLES) -> list[str]:
    """Every name x style caption, plus each prompt (and its name in every style) when not among them."""
    out = [f"{n}, {s} style" for n in names for s in styles]
    for p in prompts:
        parts = emoji_parts(p)
        extra = [f"{parts[0]}, {s} style" for s in dict.fromkeys([*styles, parts[1]])] if parts else [p]
        out += [c for c in extra if c not in out]
    return out


@dataclass
class Classification:
    """Per image: the best caption; accuracies over all images (name/style only for emoji captions)."""

    predicted: list[str]
    errors: torch.Tensor  # (N, K) summed denoising errors
    candidates: list[str]
    accuracy: float
    name_accuracy: float | None
    style_accuracy: float | None


def _targets_and_inputs(model: Family, latents: torch.Tensor, fractions: Sequence[float]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """For each timestep: (noisy latents (N, ...), model timestep (1,), target (N, ...))."""
    g = torch.Generator("cpu").manual_seed(NOISE_SEED)
    noises = [torch.randn((1, *latents.shape[1:]), generator=g) for _ in fractions]
    xs, ts, targets = [], [], []
    if model.is_flow:
        for f, eps in zip(fractions, noises):
            sigma = float(f)
            xs.append((1 - sigma) * latents + sigma * eps)
            ts.append(torch.tensor([sigma * 1000.0]))
            targets.append(eps.expand_as(latents) - latents)
        return xs, ts, targets
    from diffusers import DDPMScheduler

    config = model.scheduler_config
    sched = DDPMScheduler.from_config(config)
    n_train = sched.config.num_train_timesteps
    for f, eps in zip(fractions, noises):
        t = torch.tensor([min(n_train - 1, int(round(f * n_train)))])
        eps_n = eps.expand_as(latents)
        xs.append(sched.add_noise(latents, eps_n, t.expand(latents.shape[0])))
        ts.append(t)
        if model.prediction_type == "v_prediction":
            targets.append(sched.get_velocity(latents, eps_n, t.expand(latents.shape[0])))
        else:
            targets.append(eps_n)
    return xs, ts, targets


@torch.no_grad()
def denoising_errors(model: Family, latents: torch.Tensor, captions: Sequence[str],
                     fractions: Sequence[float] = TIMESTEP_FRACTIONS) -> torch.Tensor:
    """(N, K) mean squared denoising error of each image latent (N, C, h, w) under each caption, summed
    over the timesteps (the same noise for every image and caption)."""
    cond = model.encode_prompts(list(captions)).to(model.device, model.dtype)
    n, k = latents.shape[0], len(captions)
    errors = torch.zeros(n, k, dtype=torch.float64)
    xs, ts, targets = _targets_and_inputs(model, latents.float(), fractions)
    pairs = [(i, j) for i in range(n) for j in range(k)]
    for x, t, target in zip(xs, ts, targets):
        for start in range(0, len(pairs), CLASSIFIER_BATCH):
            chunk = pairs[start:start + CLASSIFIER_BATCH]
            ii = [p[0] for p in chunk]
            jj = [p[1] for p in chunk]
            x_in = x[ii].to(model.device, model.dtype)
            out = model.predict(x_in, t.to(model.device), cond.select(jj))
            err = (out.float().cpu() - target[ii]).pow(2).flatten(1).mean(dim=1).double()
            errors[ii, jj] += err
    return errors


@torch.no_grad()
def classify(model: Family, images: Sequence[Image.Image], prompts: Sequence[str],
             candidates: Sequence[str] | None = None) -> Classification:
    """The diffusion classifier's caption for each image; accuracy against each image's prompt.

    ``candidates`` None: :func:`emoji_candidates` of the prompts (each prompt is always a candidate).
    """
    cands = list(candidates) if candidates is not None else emoji_candidates(prompts)
    cands += [p for p in dict.fromkeys(prompts) if p not in cands]
    latents = model.encode_images(pil_to_tensor(list(images))).float().cpu()
    errors = denoising_errors(model, latents, cands)
    predicted = [cands[int(i)] for i in errors.argmin(dim=1)]
    accuracy = label_accuracy(predicted, list(prompts))
    parts = [emoji_parts(p) for p in prompts]
    name_acc = style_acc = None
    if all(parts):
        pred_parts = [emoji_parts(p) or ("", "") for p in predicted]
        name_acc = label_accuracy([p[0] for p in pred_parts], [p[0] for p in parts])
        style_acc = label_accuracy([p[1] for p in pred_parts], [p[1] for p in parts])
    return Classification(predicted, errors, cands, accuracy, name_acc, style_acc)


# --- the emoji data set (optional, local) ---------------------------------------------------------------
def emoji_data_path() -> Path | None:
    """``$LATENTSCAPE_CACHE/emoji/emoji64.npz`` or ``~/.cache/latentscape/emoji/emoji64.npz`` when it exists."""
    root = os.environ.get("LATENTSCAPE_CACHE")
    path = (Path(root) if root else Path.home() / ".cache" / "latentscape") / "emoji" / "emoji64.npz"
    return path if path.is_file() else None


def nearest_training_accuracy(images: Sequence[Image.Image], prompts: Sequence[str], data: str | os.PathLike) -> dict[str, float]:
    """Name (and style) accuracy of each image's nearest training image (RMS pixel distance at 64x64)."""
    import numpy as np

    try:
        with np.load(data) as z:
            train = ~z["heldout"]
            refs, names, styles = z["images"][train], z["names"][train], z["styles"][train]
    except (OSError, KeyError, ValueError) as exc:
        raise LatentscapeError(f"emoji data '{data}' cannot be read ({type(exc).__name__}); build it with `latentscape train data`.") from None
    queries = np.stack([np.asarray(im.convert("RGB").resize((refs.shape[2], refs.shape[1]), Image.Resampling.LANCZOS)) for im in images])
    idx = nearest_neighbours(torch.from_numpy(queries).float() / 255, torch.from_numpy(refs).float() / 255).numpy()
    parts = [emoji_parts(p) or (p, "") for p in prompts]
    return {
        "name_accuracy": label_accuracy([str(names[i]) for i in idx], [p[0] for p in parts]),
        "style_accuracy": label_accuracy([str(styles[i]) for i in idx], [p[1] for p in parts]),
    }


# --- CLIP score (a local CLIP model only) -----------------------------------------------------------
def check_clip_model(path: str | os.PathLike) -> None:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise LatentscapeError(f"--clip-model got '{path}', which is not a local CLIP model folder (no config.json); "
                               "accepted: a folder saved by transformers' CLIPModel.save_pretrained with its processor.")


@torch.no_grad()
def clip_scores(images: Sequence[Image.Image], prompts: Sequence[str], path: str | os.PathLike) -> list[float]:
    """100 x cosine similarity between each image and its prompt under the CLIP model in ``path``."""
    from transformers import CLIPModel, CLIPProcessor

    check_clip_model(path)
    model = CLIPModel.from_pretrained(str(path), local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(str(path), local_files_only=True)
    inputs = processor(text=list(prompts), images=list(images), return_tensors="pt", padding=True, truncation=True)
    image_emb = model.get_image_features(pixel_values=inputs["pixel_values"])
    text_emb = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"))
    if not isinstance(image_emb, torch.Tensor):  # transformers may return an output object
        image_emb, text_emb = image_emb.pooler_output, text_emb.pooler_output
    image_emb = image_emb / image_emb.norm(dim=-1, keepdim=True)
    text_emb = text_emb / text_emb.norm(dim=-1, keepdim=True)
    return [float(x) for x in (image_emb * text_emb).sum(dim=-1) * 100]
