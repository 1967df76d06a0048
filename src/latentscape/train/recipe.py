"""The time-boxed recipe: VAE -> sharpened decoder -> UNet + text encoder -> export -> eval, inside one budget.

Issue 14's prepared GPU run (``latentscape train recipe``; ``tools/gpu_train.sh`` runs it on a lent machine),
the same code at toy size on a CPU. Each training stage is the project's own stage function:

1. ``vae``: :func:`latentscape.train.vae.train`, encoder and decoder (L1 + image gradients + KL), on CUDA the
   wider VAE :data:`WIDE_VAE` (same f8c4 geometry; the whole fp16 export stays under 60 MB);
2. ``decoder``: :func:`latentscape.train.vae.finetune_decoder` on that VAE's latents with the sharpening terms
   (two-scale SSIM, PatchGAN feature matching, hinge GAN with the adaptive weight from 15 % of its steps);
3. ``diffusion``: :func:`latentscape.train.diffusion.train` on those latents, from random weights, with the four
   caption levels (fine, group + style, style, name), 10 % caption dropout (CFG) and EMA;

then :func:`latentscape.train.export.export` (fp16, the run's whole record in ``latentscape.json``) and
:func:`latentscape.train.evaluate.main` (the gated numbers: held-out VAE PSNR/SSIM, base-name name/style for
Euler and DPM++ 2M, coarse diversity).

Wall clock: the vae stage must end by ``start + share_vae · budget``, the decoder by ``start + (share_vae +
share_decoder) · budget``, the diffusion stage when only the export's and the eval's time is left (estimated
from the denoiser's measured speed, at least 8 % of the budget), so the whole recipe ends inside the budget
whatever the machine's speed. A stage's schedule is sized to its time: a short probe of the stage (the same step
function, a throwaway folder) measures seconds per step here, and the cosine schedule gets as many steps as fit
after the stage's own closing work (``steps`` fixes them instead, to replay a run). The loop's ``minutes`` stops
a stage at its deadline regardless; the stage still writes its (EMA) weights and the next stage starts. Every choice, the calibration and what each stage reached go to ``recipe.json`` and into the
exported model's manifest. bf16 autocast and large batches on CUDA, fp32 on a CPU; seeds are fixed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from latentscape.errors import LatentscapeError
from latentscape.train import data as emoji_data
from latentscape.train.configs import TINY_TEXT, TINY_UNET, TINY_VAE, VAEConfig
from latentscape.train.diffusion import DiffusionTrainConfig
from latentscape.train.evaluate import EvalConfig
from latentscape.train.loop import LoopConfig
from latentscape.train.vae import VAETrainConfig

log = logging.getLogger(__name__)

STAGES = ("vae", "decoder", "diffusion")
DEFAULT_SHARES = (0.30, 0.15)  # of the budget, for the vae and decoder stages; the diffusion stage gets the rest
MIN_EVAL_SHARE = 0.08  # the least of the budget kept for the export and the eval (their estimate is taken if larger)
REPLAY_EVAL_SHARE = 0.15  # kept for them when fixed steps (a replay) leave nothing measured to estimate from
# The wider VAE of the w4 notes, sized so the fp16 export stays under 60 MB with the shipped UNet and text
# encoder (9.6 M parameters, 19 MB fp16; the shipped VAE is 3.9 M, [64,128,256,256] x 2 would be 42 MB).
WIDE_VAE = VAEConfig(block_out_channels=(64, 128, 160, 160), layers_per_block=2)
CAPTION_MIX = (0.7, 0.15, 0.05, 0.1)  # fine, group + style, style only, name only
MAX_EXPORT_MB = 60.0
PROBE_STEPS = 10**9  # a probe's schedule: it never ends by steps, only by its minutes


@dataclass(frozen=True)
class RecipeConfig:
    budget_minutes: float
    vae: VAETrainConfig
    decoder: VAETrainConfig
    diffusion: DiffusionTrainConfig
    eval: EvalConfig
    shares: tuple[float, ...] = DEFAULT_SHARES  # vae, decoder
    steps: tuple[int, ...] = ()  # fixed schedule lengths per stage (a replay); () = calibrated by a probe
    probe_fraction: float = 0.06  # of a stage's share, 0.3 s to 30 s
    safety: float = 0.9  # the calibrated schedule fills this fraction of a stage's remaining time
    device: str = "cpu"
    eval_device: str = ""  # "" = device; "cpu" scores a GPU-trained model on the CPU (e.g. where the GPU eval fails)
    seed: int = 0
    threads: int | None = None
    vae_size: str = "wide"


def default_config(budget_minutes: float, device: str = "cpu", *, tiny: bool = False, seed: int = 0,
                   shares: tuple[float, ...] = DEFAULT_SHARES, steps: tuple[int, ...] = (), vae_size: str | None = None,
                   eval_captions: int = 64, coarse_prompts: int = 8, full_eval: bool = False, threads: int | None = None,
                   eval_device: str = "") -> RecipeConfig:
    """The recipe for ``device``: bf16, large batches and the wide VAE on CUDA; fp32, the CPU stages' batches and
    the shipped VAE's shape elsewhere (``vae_size`` "wide" or "shipped" chooses: on one CPU thread the wide VAE
    takes 4.5 s a step and ~9 minutes to encode the latents); ``tiny`` for toy-sized models (tests)."""
    cuda = device.startswith("cuda")
    vae_size = "tiny" if tiny else vae_size or ("wide" if cuda else "shipped")
    model = TINY_VAE if tiny else (WIDE_VAE if vae_size == "wide" else VAEConfig())
    batches = (4, 4, 4) if tiny else ((256, 128, 512) if cuda else (32, 16, 64))
    lrs = (1e-3, 2e-4, 1e-3) if cuda else (5e-4, 1e-4, 5e-4)

    def loop_cfg(i: int, weight_decay: float = 0.0) -> LoopConfig:  # steps etc. are set once known (sized())
        return LoopConfig(steps=1, batch_size=batches[i], lr=lrs[i], weight_decay=weight_decay, seed=seed, threads=threads)

    vae_cfg = VAETrainConfig(model=model, loop=loop_cfg(0), crop=32, eval_every=0, bf16=cuda)
    decoder_cfg = VAETrainConfig(model=model, loop=loop_cfg(1), crop=64 if cuda else 32, eval_every=0, bf16=cuda,
                                 decoder_only=True, ssim_weight=1.0, feature_weight=0.5, disc_weight=0.5)
    diffusion_cfg = DiffusionTrainConfig(loop=loop_cfg(2, weight_decay=0.01), eval_every=0, bf16=cuda, caption_mix=CAPTION_MIX)
    if tiny:
        diffusion_cfg = dataclasses.replace(diffusion_cfg, unet=TINY_UNET, text=TINY_TEXT)
    sets = ("base", "train", "heldout") if full_eval else ("base",)  # full: the README's whole table (cheap on a GPU)
    eval_cfg = EvalConfig(n_captions=eval_captions, coarse_prompts=coarse_prompts, skip_sweep=not full_eval, sets=sets,
                          batch=256 if cuda and eval_device in ("", device) else 64, steps=2 if tiny else 25, sweep_seeds=2 if tiny else 8,
                          sweep_prompts=2 if tiny else 32)
    return RecipeConfig(budget_minutes=budget_minutes, vae=vae_cfg, decoder=decoder_cfg, diffusion=diffusion_cfg, eval=eval_cfg,
                        shares=tuple(shares), steps=tuple(steps), device=device, seed=seed, threads=threads, vae_size=vae_size,
                        eval_device=eval_device)


def sized(loop: LoopConfig, steps: int, minutes: float | None) -> LoopConfig:
    """A stage's loop for a schedule of ``steps``: 5 % warmup, an EMA averaging over ~10 % of the steps that
    starts at 20 %, four checkpoints, ~20 log lines; ``minutes`` is the stop at the stage's deadline."""
    return dataclasses.replace(loop, steps=steps, warmup=max(1, round(0.05 * steps)), ema_decay=min(0.9995, max(0.9, 1 - 10 / steps)),
                               ema_warmup=round(0.2 * steps), checkpoint_every=max(1, steps // 4),
                               log_every=max(1, min(50, steps // 20)), minutes=minutes)


def _with_steps(stage: str, cfg, steps: int, minutes: float | None):
    changes = {"loop": sized(cfg.loop, steps, minutes)}
    if stage == "decoder":
        changes["disc_start"] = round(0.15 * steps)
    return dataclasses.replace(cfg, **changes)


def check_paths(data_path: Path | None, out: Path, baseline: Path | None = None,
                eval_cfg: EvalConfig | None = None) -> tuple[Path, int, int]:
    """The data file, the output folder and the baseline (an eval.json that scored the sample ``eval_cfg`` will),
    checked before anything is written; (the data path, its number of images, how many of them are held out)."""
    data_path = Path(data_path) if data_path is not None else emoji_data.default_cache() / emoji_data.DATA_FILE
    if not data_path.is_file():
        raise LatentscapeError(f"--data '{data_path}' does not exist; pass the emoji64.npz array file that `latentscape train data` writes.")
    try:
        heldout = emoji_data.load(data_path).heldout
    except Exception as exc:  # a damaged or foreign file: numpy, zipfile or key errors alike
        raise LatentscapeError(f"--data '{data_path}' is not an emoji array file ({type(exc).__name__}); pass the emoji64.npz "
                               "that `latentscape train data` writes.") from None
    if baseline is not None:
        from latentscape.train import evaluate

        evaluate.read_baseline(baseline, eval_cfg, "--baseline")
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise LatentscapeError(f"--out '{out}' is a file or a link; the recipe writes a new folder: pass a new or empty folder.")
    if out.is_dir() and any(out.iterdir()):
        raise LatentscapeError(f"--out '{out}' is not empty; the recipe writes a new run (model, eval, checkpoints): pass a new or empty folder.")
    return data_path, len(heldout), int(heldout.sum())


def _probe(stage: str, cfg, run_fn, folder: Path, seconds: float) -> dict:
    """Run the stage for ``seconds`` in ``folder`` (never to the end of its schedule, so it writes no outputs):
    seconds per step (from the loop's per-step log, the first step left out) and the set-up seconds."""
    probe = dataclasses.replace(cfg.loop, steps=PROBE_STEPS, warmup=1, checkpoint_every=PROBE_STEPS, log_every=1, minutes=seconds / 60,
                                ema_decay=0.99, ema_warmup=0)  # the EMA's update is part of a step's cost
    cfg = dataclasses.replace(cfg, loop=probe, **({"disc_start": 0} if stage == "decoder" else {}))  # time the GAN steps
    began = time.monotonic()
    run_fn(cfg, folder, finish_early=False)
    wall = time.monotonic() - began
    times = [json.loads(line)["time"] for line in (folder / "log.jsonl").read_text().splitlines() if '"time"' in line]
    if len(times) >= 3:
        per_step = (times[-1] - times[0]) / (len(times) - 1)
    else:
        per_step = times[-1] / len(times)
    return {"seconds": round(wall, 3), "steps": len(times), "seconds_per_step": per_step,
            "setup_seconds": max(0.0, wall - times[-1])}


def _finish_seconds(stage: str, cfg: VAETrainConfig, n_images: int, n_heldout: int, per_step: float) -> float:
    """What a VAE stage does after its last step, estimated from its measured ``per_step``: the held-out images'
    round trip (and, for the ``vae`` stage, every image's latents), forward passes of 64-px images at ~1/3 of a
    training sample's cost per crop area, + 2 s. Measured on two CPU threads (the shipped VAE shape, 1.6 s a step of
    32 crops of 32 px): the 379 held-out round trips 22 s (estimated 26), the latents of 7,572 images 124 s (225)."""
    passes = n_heldout * 0.35 + (n_images * 0.15 if stage == "vae" else 0.0)
    return 2.0 + passes * (64 / cfg.crop) ** 2 / cfg.loop.batch_size * per_step


def _eval_seconds(cfg: RecipeConfig, per_step: float, setup: float) -> float:
    """The export's and the eval's time, estimated from a diffusion training step's (``per_step`` seconds at its
    batch B; a step ~ 3 forward passes of B samples). Each generated image costs ``steps`` forward passes of two
    samples (CFG), counted by throughput or, where a forward pass is launch-bound (tiny models on a GPU), by
    the eval's batches; the larger, with a 1.5x margin, plus the set-ups (data, model loads)."""
    e = cfg.eval
    groups = [e.n_captions] * (len(e.samplers) * len(e.sets)) + [e.coarse_prompts * e.sweep_seeds]
    if not e.skip_sweep:
        groups += [e.sweep_prompts * e.sweep_seeds] * 6  # one per CFG scale of the sweep
    by_samples = sum(groups) * e.steps * 2 / (3 * cfg.diffusion.loop.batch_size) * per_step
    by_batches = sum(math.ceil(g / e.batch) for g in groups if g) * e.steps * per_step / 3
    return 1.5 * max(by_samples, by_batches) + 3 * setup + 2.0


def run(cfg: RecipeConfig, data_path: Path, out: Path, *, baseline: Path | None = None, progress: bool = True) -> dict:
    """Run the recipe into ``out`` (a new or empty folder): ``runs/`` (the stages' folders and checkpoints),
    ``model/`` (the export), ``eval.json``, ``recipe.json`` (returned)."""
    import torch

    from latentscape.train import diffusion, evaluate, export, loop, vae

    start = time.monotonic()
    budget = 60.0 * cfg.budget_minutes
    data_path, n_images, n_heldout = check_paths(data_path, out, baseline, cfg.eval)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LatentscapeError(f"--out '{out}' cannot be created ({exc.strerror or type(exc).__name__}); pass a folder you can write to.") from None
    dev = torch.device(cfg.device)
    if dev.type == "cuda":  # TF32 for what stays fp32 outside autocast; cuDNN picks the fastest kernels per shape
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    runs = out / "runs"
    folders = {"vae": runs / "vae", "decoder": runs / "vae-decoder", "diffusion": runs / "diffusion"}
    kw = dict(device=cfg.device, progress=progress, resume=False)
    run_fns = {
        "vae": lambda c, folder, finish_early: vae.train(c, data_path, folder, finish_early=finish_early, **kw),
        "decoder": lambda c, folder, finish_early: vae.finetune_decoder(c, data_path, folders["vae"], folder,
                                                                         finish_early=finish_early, **kw),
        "diffusion": lambda c, folder, finish_early: diffusion.train(c, data_path, folders["vae"], folder, **kw),
    }
    record: dict = {"budget_minutes": cfg.budget_minutes, "device": cfg.device, "eval_device": cfg.eval_device or cfg.device,
                    "hardware": loop.hardware(dev),
                    "versions": _versions(), "seed": cfg.seed, "shares": list(cfg.shares), "vae_size": cfg.vae_size,
                    "data": {"file": data_path.name, "bytes": data_path.stat().st_size}, "stages": {}}
    ends = [sum(cfg.shares[: i + 1]) for i in range(len(cfg.shares))] + [1.0]  # of the budget, before the eval's reserve
    for i, stage in enumerate(STAGES):
        share = ends[i] - (ends[i - 1] if i else 0.0)
        stage_cfg = getattr(cfg, stage)
        rec: dict = {"share": round(share, 6), "began_s": round(time.monotonic() - start, 3)}
        deadline = start + ends[i] * budget
        setup = 0.0
        if cfg.steps:
            steps = cfg.steps[i]
        else:
            share_s = share * budget
            probe_dir = runs / f"probe-{stage}"
            rec["probe"] = _probe(stage, stage_cfg, run_fns[stage], probe_dir, min(30.0, max(0.3, cfg.probe_fraction * share_s)))
            setup = rec["probe"]["setup_seconds"]
            if stage == "diffusion":  # the same BPE vocabulary, trained once
                shutil.copytree(probe_dir / "tokenizer", folders["diffusion"] / "tokenizer")
            shutil.rmtree(probe_dir)
        if stage == "diffusion":
            per_step = rec.get("probe", {}).get("seconds_per_step")
            reserve = max(_eval_seconds(cfg, per_step, setup), MIN_EVAL_SHARE * budget) if per_step else REPLAY_EVAL_SHARE * budget
            rec["eval_reserve_s"] = round(reserve, 3)
            deadline = start + budget - reserve
        remaining = deadline - time.monotonic()
        finish = 0.0
        if not cfg.steps:
            per_step = rec["probe"]["seconds_per_step"]
            if stage != "diffusion":
                finish = _finish_seconds(stage, stage_cfg, n_images, n_heldout, per_step)
                rec["finish_reserve_s"] = round(finish, 3)
            steps = max(2, int(cfg.safety * (remaining - 2 * setup - finish) / per_step))
        minutes = max(1e-4, (remaining - setup - finish) / 60)
        stage_cfg = _with_steps(stage, stage_cfg, steps, minutes)
        rec |= {"deadline_s": round(deadline - start, 3), "planned_steps": steps, "batch_size": stage_cfg.loop.batch_size,
                "lr": stage_cfg.loop.lr, "ema_decay": stage_cfg.loop.ema_decay}
        log.info("recipe: %s stage, %d steps planned, %.1f s left to its deadline", stage, steps, remaining)
        t0 = time.monotonic()
        run_fns[stage](stage_cfg, folders[stage], finish_early=True)
        reached = loop.read_checkpoint(folders[stage] / "last.pt")["step"]
        rec |= {"reached_steps": int(reached), "seconds": round(time.monotonic() - t0, 3),
                "ended_s": round(time.monotonic() - start, 3), "stopped_at_deadline": bool(reached < steps),
                "config": _plain(dataclasses.asdict(stage_cfg))}
        rec["over_deadline_s"] = round(max(0.0, rec["ended_s"] - rec["deadline_s"]), 3)
        record["stages"][stage] = rec
        log.info("recipe: %s stage reached step %d of %d in %.1f s", stage, reached, steps, rec["seconds"])

    t0 = time.monotonic()
    model_dir = export.export(folders["decoder"], folders["diffusion"], out / "model", data_path=data_path, dtype="fp16",
                              summary={"recipe": record})
    record["export"] = {"seconds": round(time.monotonic() - t0, 3), "mb": round(export.folder_mb(model_dir), 2),
                        "within_60_mb": export.folder_mb(model_dir) <= MAX_EXPORT_MB}
    if not record["export"]["within_60_mb"]:
        log.warning("the export is %.1f MB, over the %g MB the embedded model may take", record["export"]["mb"], MAX_EXPORT_MB)
    t0 = time.monotonic()
    results = evaluate.main(model_dir, data_path, cfg.eval, out=out / "eval.json", threads=cfg.threads,
                            device=cfg.eval_device or cfg.device,
                            baseline=baseline)
    record["eval"] = {"seconds": round(time.monotonic() - t0, 3), "gates": results["gates"],
                      "config": _plain(dataclasses.asdict(cfg.eval))}
    if "coarse" in results:
        record["eval"]["coarse"] = {k: v for k, v in results["coarse"].items() if k != "per_caption"}
    record["total_seconds"] = round(time.monotonic() - start, 3)
    record["within_budget"] = record["total_seconds"] <= budget
    tmp = out / "recipe.json.partial"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(out / "recipe.json")
    log.info("recipe: done in %.1f s of a %.1f s budget -> %s", record["total_seconds"], budget, out)
    if not record["within_budget"]:
        log.warning("recipe: took %.1f s, over its budget of %.1f s (recipe.json has each stage's deadline and end; a budget "
                    "below the stages' set-up and one step each cannot be met); every stage still wrote its weights",
                    record["total_seconds"], budget)
    return record


def _plain(value):
    """Dataclass dicts as JSON values (tuples as lists)."""
    return json.loads(json.dumps(value, default=str))


def _versions() -> dict:
    import diffusers
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "cuda": torch.version.cuda}
