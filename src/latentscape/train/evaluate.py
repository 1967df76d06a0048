"""Evaluate a model: VAE PSNR/SSIM, prompt adherence per sampler and caption set, and the CFG sweep.

- VAE: mean per-image PSNR and SSIM of 8-bit reconstructions of the held-out images (whole 64x64).
- Adherence, at CFG 7.5 and 25 steps with each of ``samplers`` (Euler and DPM++ 2M by default): each image's
  nearest *training* image by pixel L2 at 64x64 must carry the caption's emoji name (name top-1) and style
  (style accuracy). Three caption sets, each a seeded sample that is the same for every model:
  - ``base``: base-name training captions ``<name>, <style> style`` — no skin-tone variants, which are
    near-duplicates of each other and would let a model score on the variants of one picture. The gates
    are on this set.
  - ``train``: any training caption (tone variants included), as the first eval reported.
  - ``heldout``: held-out captions (an unseen name x style/tone combination whose name exists in training).
- Coarse captions (``<group>, <style> style``, :func:`latentscape.train.data.caption_levels`): for each of
  ``coarse_prompts`` groups x styles, ``sweep_seeds`` seeds at CFG 7.5 (Euler); how many different emoji
  names their nearest training images carry (the target: at least 4 of 8), and whether the style holds.
- CFG sweep at 1, 3, 5, 7.5, 10, 15 on the first ``sweep_prompts`` base-name captions x ``sweep_seeds``
  seeds (Euler): adherence, and diversity = mean pairwise RMS pixel distance (in [0, 1] units) between the
  seeds' images, averaged over prompts.

Generation is :func:`latentscape.sampling.denoise` — the project's one loop, the one every verb uses — with
noise from one CPU generator per seed, batched; the model is a :class:`~latentscape.models.family.Family`
(loaded from a folder, or built from in-memory components during training).
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

from latentscape.core import metrics as core_metrics
from latentscape.train import data as emoji_data

log = logging.getLogger(__name__)

CFG_SWEEP = (1.0, 3.0, 5.0, 7.5, 10.0, 15.0)
SAMPLERS = ("euler", "dpmpp_2m")
CAPTION_SETS = ("base", "train", "heldout")
# What new weights must reach (issue 14), on the held-out VAE images and the base-name captions.
# Under a coarse caption, 8 seeds must give at least 4 different emoji names.
GATES = {"vae.psnr": 26.0, "vae.ssim": 0.90, "name_top1": 0.75, "style_acc": 0.95, "coarse.distinct_names_mean": 4.0}


@dataclass(frozen=True)
class EvalConfig:
    n_captions: int = 128  # per caption set
    steps: int = 25
    guidance_scale: float = 7.5
    samplers: tuple[str, ...] = SAMPLERS
    sweep_prompts: int = 32
    sweep_seeds: int = 8
    seed: int = 0
    skip_sweep: bool = False
    batch: int = 64
    coarse_prompts: int = 8  # 0 skips the coarse-caption measure
    sets: tuple[str, ...] = CAPTION_SETS  # which caption sets to score ("base" alone: the gated numbers at a third of the cost)
    vae: bool = True  # False skips the VAE round trip (e.g. re-scoring a model whose VAE was scored already)


def family(vae, text_encoder, tokenizer, unet, scheduler, device: torch.device | str = "cpu"):
    """A Stable Diffusion adapter over in-memory components (e.g. the EMA weights during training)."""
    from diffusers import StableDiffusionPipeline

    from latentscape.models.latent_format import FORMATS
    from latentscape.models.sd import StableDiffusion

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return StableDiffusion(pipe, FORMATS["sd"].from_vae_config(vae.config), model_id="training", device=torch.device(device),
                           dtype=unet.dtype)


def eval_captions(data: emoji_data.EmojiData, n: int, seed: int = 1234, heldout: bool = False, base: bool = False) -> list[int]:
    """A seeded sample of ``n`` image indices in a fixed random order (so any prefix is itself a random sample
    of both styles): training images, held-out ones, or (``base``) training images without skin tone."""
    mask = data.heldout if heldout else ~data.heldout
    if base:
        mask = mask & (data.tones == "")
    pool = np.flatnonzero(mask)
    rng = np.random.default_rng(seed)
    return rng.choice(pool, size=min(n, len(pool)), replace=False).tolist()


@torch.no_grad()
def generate(model, prompts: Sequence[str], seeds: Sequence[int], guidance_scale: float, steps: int, sampler: str = "euler",
             batch: int = 64) -> np.ndarray:
    """(N, H, W, 3) uint8 images, one per (prompt, seed), each from its own CPU generator, through ``denoise``."""
    from latentscape.core.noise import seeded_generators, draw_noise
    from latentscape.sampling import denoise

    width, height = model.default_size()
    shape = model.latent_format.latent_shape(width, height)
    out = []
    for i in range(0, len(prompts), batch):
        chunk, gens = list(prompts[i : i + batch]), seeded_generators(seeds[i : i + batch])
        noise = draw_noise(gens, shape).to(model.device, model.dtype)
        cond = model.encode_prompts(chunk)
        uncond = model.encode_negatives([""] * len(chunk)) if model.uses_cfg(guidance_scale) else None
        latents = denoise(model, noise, cond, uncond, sampler=sampler, steps=steps, guidance_scale=guidance_scale, generators=gens)
        pixels = model.decode(latents).float().clamp(-1, 1)
        out.append(((pixels + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def nearest(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Index of the nearest reference image by pixel L2 for each image (both uint8 (N, H, W, 3))."""
    return core_metrics.nearest_neighbours(torch.from_numpy(images), torch.from_numpy(reference)).numpy()


def score(images: np.ndarray, names: Sequence[str], styles: Sequence[str], train: emoji_data.EmojiData) -> dict[str, float]:
    """Name top-1 and style accuracy of the nearest training images."""
    nn = nearest(images, train.images)
    return {"name_top1": float(np.mean(train.names[nn] == np.asarray(names))),
            "style_acc": float(np.mean(train.styles[nn] == np.asarray(styles)))}


def adherence(model, data: emoji_data.EmojiData, indices: Sequence[int], *, guidance_scale: float, steps: int,
              sampler: str = "euler", seed: int = 0, batch: int = 64) -> dict:
    """Generate one image per caption (seed ``seed + i``) and score it against the training images."""
    prompts = data.captions[list(indices)].tolist()
    images = generate(model, prompts, [seed + i for i in range(len(prompts))], guidance_scale, steps, sampler, batch)
    return score(images, data.names[list(indices)], data.styles[list(indices)], data.train) | {"n": len(prompts)}


def cfg_sweep(model, data: emoji_data.EmojiData, indices: Sequence[int], cfg: EvalConfig) -> list[dict]:
    """Adherence and diversity at each CFG scale: ``sweep_seeds`` seeds of each caption (Euler)."""
    idx = np.repeat(np.asarray(indices), cfg.sweep_seeds)
    prompts = data.captions[idx].tolist()
    seeds = [cfg.seed + k for _ in indices for k in range(cfg.sweep_seeds)]
    rows = []
    for g in CFG_SWEEP:
        t = time.monotonic()
        images = generate(model, prompts, seeds, g, cfg.steps, "euler", cfg.batch)
        s = score(images, data.names[idx], data.styles[idx], data.train)
        x = torch.from_numpy(images).float().div(255).reshape(len(indices), cfg.sweep_seeds, -1)
        diversity = float(np.mean([core_metrics.mean_pairwise_distance(group) for group in x]))
        rows.append({"guidance_scale": g, **s, "diversity": diversity})
        log.info("CFG %.1f: %s (%.0f s)", g, rows[-1], time.monotonic() - t)
    return rows


def coarse_captions(data: emoji_data.EmojiData, n: int, seed: int = 1234) -> list[str]:
    """A seeded sample of ``n`` distinct group+style captions of training images (groups of 4+ names first)."""
    train = data.train
    groups = train.captions_at("group")
    names_per: dict[str, set] = {}
    for g, name in zip(groups.tolist(), train.names.tolist()):
        names_per.setdefault(g, set()).add(name)
    pool = sorted(g for g, names in names_per.items() if len(names) >= 4) or sorted(names_per)
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.choice(len(pool), size=min(n, len(pool)), replace=False)]


def coarse_diversity(model, data: emoji_data.EmojiData, captions: Sequence[str], cfg: EvalConfig) -> dict:
    """Distinct nearest-image names among ``sweep_seeds`` seeds of each coarse caption (CFG ``guidance_scale``)."""
    seeds = [cfg.seed + k for _ in captions for k in range(cfg.sweep_seeds)]
    prompts = [c for c in captions for _ in range(cfg.sweep_seeds)]
    images = generate(model, prompts, seeds, cfg.guidance_scale, cfg.steps, "euler", cfg.batch)
    nn = nearest(images, data.train.images).reshape(len(captions), cfg.sweep_seeds)
    distinct = [len(set(data.train.names[row].tolist())) for row in nn]
    wanted = [c.rsplit(", ", 1)[1].split()[0] for c in captions]
    style = float(np.mean([data.train.styles[row] == w for row, w in zip(nn, wanted)]))
    return {"n": len(captions), "seeds": cfg.sweep_seeds, "distinct_names_mean": float(np.mean(distinct)),
            "distinct_names_min": int(min(distinct)), "at_least_4": float(np.mean([d >= 4 for d in distinct])), "style_acc": style,
            "per_caption": dict(zip(captions, distinct))}


def gated(results: dict) -> dict[str, float]:
    """The gated numbers: the VAE's held-out PSNR/SSIM, per sampler base-name name top-1 and style, and the mean
    number of different names among the seeds of a coarse caption (when scored)."""
    out = {f"vae.{k}": results["vae"][k] for k in ("psnr", "ssim") if "vae" in results}
    for sampler, sets in results.get("adherence", {}).get("samplers", {}).items():
        for k in ("name_top1", "style_acc"):
            if "base" in sets:
                out[f"{sampler}.base.{k}"] = sets["base"][k]
    if results.get("coarse"):
        out["coarse.distinct_names_mean"] = results["coarse"]["distinct_names_mean"]
    return out


def gates(results: dict) -> dict[str, dict]:
    """Each gated number against its target (:data:`GATES`): ``{name: {"value", "target", "pass"}}``."""
    out = {}
    for name, value in gated(results).items():
        target = GATES[name] if name in GATES else GATES[name.rsplit(".", 1)[-1]]
        out[name] = {"value": value, "target": target, "pass": bool(value >= target)}
    return out


# The config fields that fix which images a gated number is measured on: a baseline scored with other values
# measured other images, and comparing the two would rank samples, not models.
SAMPLE_FIELDS = ("n_captions", "steps", "guidance_scale", "seed")
COARSE_FIELDS = ("coarse_prompts", "sweep_seeds")


def sample_differences(config: dict, baseline: dict) -> list[str]:
    """The sample-fixing fields (:data:`SAMPLE_FIELDS`; :data:`COARSE_FIELDS` too when both scored coarse captions)
    where the eval config ``config`` and the ``baseline`` eval.json differ, as ``"field X there, Y here"``."""
    theirs = baseline.get("config")
    if not isinstance(theirs, dict):
        return ["config missing there"]
    fields = SAMPLE_FIELDS
    if config.get("coarse_prompts") and theirs.get("coarse_prompts") and "coarse" in baseline:
        fields += COARSE_FIELDS
    return [f"{f} {theirs.get(f)!r} there, {config.get(f)!r} here" for f in fields if theirs.get(f) != config.get(f)]


def check_baseline(cfg: EvalConfig, baseline: dict, name: str = "the baseline") -> None:
    """Refuse, before anything is generated, a baseline that scored another sample than ``cfg`` will."""
    from latentscape.errors import LatentscapeError

    differences = sample_differences(asdict(cfg), baseline)
    if differences:
        raise LatentscapeError(f"{name} was scored on other captions or settings ({'; '.join(differences)}), so its numbers "
                               "do not compare with these; rescore it with the same --captions, --coarse-prompts, "
                               "--sampling-steps and seed, or drop the baseline.")


def read_baseline(path: Path, cfg: EvalConfig | None, name: str) -> dict:
    """The eval.json at ``path`` (``name`` is how messages call it), checked before anything is generated: it must be
    one `latentscape train eval` wrote and, with ``cfg``, have scored the same sample."""
    from latentscape.errors import LatentscapeError

    try:
        base = json.loads(Path(path).read_text())
        gated(base)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LatentscapeError(f"{name} '{path}' is not an eval.json written by `latentscape train eval` ({type(exc).__name__}).") from None
    if cfg is not None:
        check_baseline(cfg, base, f"{name} '{path}'")
    return base


def compare(results: dict, baseline: dict) -> dict[str, dict]:
    """Each gated number of ``results`` against the same number of ``baseline`` (e.g. the shipped model's
    eval.json): ``{name: {"value", "baseline", "not_worse"}}``; ship new weights only if all are not worse."""
    if sample_differences(results.get("config", {}), baseline):
        return {}
    base = gated(baseline)
    return {k: {"value": v, "baseline": base[k], "not_worse": bool(v >= base[k])} for k, v in gated(results).items() if k in base}


def markdown(results: dict) -> str:
    """The README tables."""
    lines = []
    if "vae" in results:
        v = results["vae"]
        lines += ["| VAE (held-out, 64x64) | PSNR | SSIM |", "|---|---|---|", f"| f8c4 | {v['psnr']:.2f} dB | {v['ssim']:.4f} |", ""]
    a = results.get("adherence")
    if a:
        lines += [f"Prompt adherence, CFG {a['guidance_scale']}, {a['steps']} steps (nearest training image):", "",
                  "| sampler | captions | n | name top-1 | style acc |", "|---|---|---|---|---|"]
        for sampler, sets in a["samplers"].items():
            for key, label in (("base", "base names (gated)"), ("train", "training captions"), ("heldout", "held-out captions")):
                if key in sets:
                    s = sets[key]
                    lines.append(f"| {sampler} | {label} | {s['n']} | {s['name_top1']:.3f} | {s['style_acc']:.3f} |")
        lines.append("")
    if results.get("cfg_sweep"):
        lines += ["CFG sweep on base-name captions (Euler):", "", "| CFG | name top-1 | style acc | diversity |", "|---|---|---|---|"]
        for r in results["cfg_sweep"]:
            lines.append(f"| {r['guidance_scale']:g} | {r['name_top1']:.3f} | {r['style_acc']:.3f} | {r['diversity']:.4f} |")
        lines.append("")
    if results.get("coarse"):
        c = results["coarse"]
        lines += [f"Coarse captions (group + style), CFG {a['guidance_scale'] if a else ''}, {c['seeds']} seeds each: "
                  f"{c['distinct_names_mean']:.2f} different emoji names on average (min {c['distinct_names_min']}), "
                  f"{c['at_least_4']:.0%} of {c['n']} captions with at least 4, style {c['style_acc']:.3f}.", ""]
    if results.get("gates"):
        lines += ["| gated number | value | target | |", "|---|---|---|---|"]
        for name, g in results["gates"].items():
            lines.append(f"| {name} | {g['value']:.3f} | {g['target']:g} | {'pass' if g['pass'] else 'below'} |")
        lines.append("")
    if results.get("compare"):
        lines += ["| gated number | this model | baseline | |", "|---|---|---|---|"]
        for name, c in results["compare"].items():
            lines.append(f"| {name} | {c['value']:.3f} | {c['baseline']:.3f} | {'not worse' if c['not_worse'] else 'WORSE'} |")
    return "\n".join(lines).rstrip()


def main(model: Path, data_path, cfg: EvalConfig, *, out: Path | None = None, threads: int | None = None,
         dtype: torch.dtype = torch.float32, device: str | None = None, runs: Path = Path("runs"),
         baseline: Path | None = None) -> dict:
    """Evaluate the pipeline folder ``model`` on ``device`` (default: cuda when available); print the Markdown
    tables and write JSON to ``out`` (default: ``runs/eval.json``). With ``baseline`` (an earlier eval.json),
    also compare every gated number with it."""
    from latentscape.errors import LatentscapeError
    from latentscape.models.load import load
    from latentscape.samplers import resolve_sampler
    from latentscape.train.vae import evaluate_vae

    for name in cfg.samplers:
        resolve_sampler(name, flow=False)
    unknown = [name for name in cfg.sets if name not in CAPTION_SETS]
    if unknown or not cfg.sets:
        raise LatentscapeError(f"the caption sets {', '.join(unknown) or '(none)'} are not allowed; pass one or more of "
                               f"{', '.join(CAPTION_SETS)}, comma-separated.")
    base = read_baseline(baseline, cfg, "the baseline") if baseline is not None else None
    if threads:
        torch.set_num_threads(threads)
    data = emoji_data.load(data_path)
    m = load(str(model), device=device or ("cuda" if torch.cuda.is_available() else "cpu"), dtype=dtype)
    t0 = time.monotonic()
    results: dict = {"model": str(model), "config": asdict(cfg)}
    if cfg.vae:
        results["vae"] = evaluate_vae(m.vae, data.test.images)
        log.info("VAE %s", results["vae"])
    sets = {"base": eval_captions(data, cfg.n_captions, base=True), "train": eval_captions(data, cfg.n_captions),
            "heldout": eval_captions(data, cfg.n_captions, heldout=True)}
    sets = {key: idx for key, idx in sets.items() if key in cfg.sets}
    kw = dict(guidance_scale=cfg.guidance_scale, steps=cfg.steps, seed=cfg.seed, batch=cfg.batch)
    per_sampler = {}
    for sampler in cfg.samplers:
        per_sampler[sampler] = {key: adherence(m, data, idx, sampler=sampler, **kw) for key, idx in sets.items()}
        log.info("adherence (%s): %s", sampler, per_sampler[sampler])
    results["adherence"] = {"guidance_scale": cfg.guidance_scale, "steps": cfg.steps, "samplers": per_sampler}
    if not cfg.skip_sweep:
        results["cfg_sweep"] = cfg_sweep(m, data, eval_captions(data, cfg.n_captions, base=True)[: cfg.sweep_prompts], cfg)
    if cfg.coarse_prompts:
        results["coarse"] = coarse_diversity(m, data, coarse_captions(data, cfg.coarse_prompts), cfg)
        log.info("coarse captions: %s", {k: v for k, v in results["coarse"].items() if k != "per_caption"})
    results["gates"] = gates(results)
    if base is not None:
        results["compare"] = compare(results, base)
    results["seconds"] = time.monotonic() - t0
    print(markdown(results))
    out = out or Path(runs) / "eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(out)
    log.info("wrote %s", out)
    return results
