"""``latentscape train``: build the emoji data, train the VAE and the diffusion model, export, evaluate.

Stages (each resumable, seeded): ``data`` -> ``vae`` -> ``diffusion`` -> ``export`` -> ``eval``; ``recipe`` runs
them all inside one wall-clock budget (the prepared GPU run, ``tools/gpu_train.sh``); ``merge`` interpolates a
fine-tune with the model it started from (WiSE-FT).
Run outputs go to ``--runs`` (default ``./runs``, git-ignored). The main CLI registers these as
``latentscape train <stage>``; ``python -m latentscape.interfaces.train_cli train <stage>`` works too.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import signal
import sys
from pathlib import Path

from latentscape.errors import LatentscapeError

EMBEDDED = Path(__file__).resolve().parents[1] / "models" / "embedded"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None, help="the emoji64.npz array file (default: in the cache folder)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder for checkpoints and stage outputs (default: ./runs)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _loop_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=None, help="schedule length in optimizer steps")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--warmup", type=int, default=None, help="learning-rate warmup steps")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget for this invocation (stops with a checkpoint)")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--ema-decay", type=float, default=None, help="EMA decay per step, from 0 (no EMA) to below 1")
    p.add_argument("--ema-warmup", type=int, default=None, help="steps before the EMA starts averaging (it copies the weights until then)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint instead of resuming from it")
    p.add_argument("--tiny", action="store_true", help="toy-sized models (tests, smoke runs)")
    p.add_argument("--procs", type=int, default=1,
                   help="data-parallel CPU processes (gloo); on a shared CPU, N processes x 1 thread beat 1 x N threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _worker(rank: int, size: int, port: int, fn, args) -> None:
    import torch.distributed as dist

    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    try:
        fn(args)
    finally:
        dist.destroy_process_group()


def _positive(args, *names: str) -> None:
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise LatentscapeError(f"--{name.replace('_', '-')} {value} is not allowed; it takes a positive whole number.")


def _parallel(fn, configure):
    """Run a stage on ``--procs`` CPU processes (data parallel, gloo), or in this process. ``configure(args)``
    builds (and so checks) the stage's config here, before any process starts."""

    def run(args) -> None:
        _positive(args, "procs")
        cfg = configure(args)
        if cfg.loop.batch_size % args.procs:
            raise LatentscapeError(f"--procs {args.procs} does not divide the batch size {cfg.loop.batch_size}; "
                                   "pass a --batch-size that is a multiple of --procs.")
        if args.procs == 1:
            return fn(args)
        import socket

        import torch.multiprocessing as mp

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        plain = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "func"})  # picklable
        context = mp.spawn(_worker, args=(args.procs, port, fn, plain), nprocs=args.procs, join=False)

        def stop(signum, frame):  # a stopped parent takes its workers with it
            for process in context.processes:
                process.terminate()
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, stop)
        try:
            while not context.join():
                pass
        except mp.ProcessRaisedException as exc:  # a user error in a worker reads as it would in one process
            last = exc.msg.strip().splitlines()[-1]
            prefix = f"{LatentscapeError.__module__}.{LatentscapeError.__name__}: "
            if last.startswith(prefix):
                raise LatentscapeError(last[len(prefix):]) from None
            raise

    return run


def _override_loop(loop_cfg, args):
    _positive(args, "steps", "batch_size", "checkpoint_every")
    if args.ema_decay is not None and not (0 <= args.ema_decay < 1):
        raise LatentscapeError(f"--ema-decay {args.ema_decay} is not allowed; it takes a number from 0 (no EMA) to below 1, e.g. 0.999.")
    if args.ema_warmup is not None and args.ema_warmup < 0:
        raise LatentscapeError(f"--ema-warmup {args.ema_warmup} is not allowed; it takes a whole number of steps >= 0.")
    changes = {k: getattr(args, a) for k, a in (("steps", "steps"), ("batch_size", "batch_size"), ("lr", "lr"),
                                                 ("minutes", "minutes"), ("checkpoint_every", "checkpoint_every"), ("warmup", "warmup"),
                                                 ("threads", "threads"), ("seed", "seed"),
                                                 ("ema_decay", "ema_decay"), ("ema_warmup", "ema_warmup")) if getattr(args, a, None) is not None}
    return dataclasses.replace(loop_cfg, **changes)


def cmd_data(args) -> None:
    from latentscape.train import data

    out = data.build(args.cache, args.out, fraction=args.heldout, seed=args.seed)
    d = data.load(out)
    print(f"{out}: {len(d)} images, {int(d.heldout.sum())} held out, {len(set(d.names.tolist()))} emoji names")


def _vae_config(args):
    from latentscape.train import configs, vae

    if args.crop is not None and not (0 < args.crop <= 64 and args.crop % 8 == 0):
        raise LatentscapeError(f"--crop {args.crop} is not allowed; it takes a multiple of 8 from 8 to 64.")
    cfg = vae.VAETrainConfig()
    if args.tiny:
        cfg = dataclasses.replace(cfg, model=configs.TINY_VAE, eval_every=0)
    cfg = dataclasses.replace(cfg, loop=_override_loop(cfg.loop, args), bf16=not args.fp32)
    for name in ("ssim_weight", "feature_weight", "disc_weight", "disc_start"):
        value = getattr(args, name)
        if value is not None and not (value >= 0):
            raise LatentscapeError(f"--{name.replace('_', '-')} {value} is not allowed; it takes a number >= 0.")
        if value is not None and not args.decoder_only:
            raise LatentscapeError(f"--{name.replace('_', '-')} needs --decoder-only (the sharpening terms train the decoder).")
    for name in ("mse_weight", "crop", "grad_weight", "ssim_weight", "feature_weight", "disc_weight", "disc_start"):
        if getattr(args, name) is not None:
            cfg = dataclasses.replace(cfg, **{name: getattr(args, name)})
    return cfg


def cmd_vae(args) -> None:
    from latentscape.train import vae

    cfg = _vae_config(args)
    kw = dict(resume=not args.fresh, device=args.device, progress=not args.no_progress)
    if args.decoder_only:
        vae.finetune_decoder(cfg, args.data, args.runs / "vae", args.runs / "vae-decoder", **kw)
    else:
        vae.train(cfg, args.data, args.runs / "vae", **kw)


def _diffusion_config(args):
    from latentscape.train import configs, diffusion

    cfg = diffusion.DiffusionTrainConfig()
    if args.tiny:
        cfg = dataclasses.replace(cfg, unet=configs.TINY_UNET, text=configs.TINY_TEXT, eval_every=0)
    if args.caption_mix is not None:
        try:
            mix = tuple(float(v) for v in args.caption_mix.split(","))
        except ValueError:
            raise LatentscapeError(f"--caption-mix got '{args.caption_mix}'; it takes four comma-separated weights "
                                   "for fine, group, style and name captions, e.g. 0.7,0.15,0.05,0.1.") from None
        try:
            diffusion.check_caption_mix(mix)
        except LatentscapeError:
            raise LatentscapeError(f"--caption-mix got '{args.caption_mix}'; it takes four non-negative weights (not all zero) "
                                   "for fine, group, style and name captions, e.g. 0.7,0.15,0.05,0.1.") from None
        cfg = dataclasses.replace(cfg, caption_mix=mix)
    if args.init is not None:
        cfg = dataclasses.replace(cfg, init=str(diffusion.check_init(args.init)))
    return dataclasses.replace(cfg, loop=_override_loop(cfg.loop, args), bf16=not args.fp32)


def cmd_diffusion(args) -> None:
    from latentscape.train import diffusion

    cfg = _diffusion_config(args)
    diffusion.train(cfg, args.data, args.runs / "vae", args.runs / "diffusion", resume=not args.fresh,
                    device=args.device, progress=not args.no_progress)


def cmd_export(args) -> None:
    from latentscape.train import export

    vae_run = args.vae or (args.runs / "vae-decoder" if (args.runs / "vae-decoder" / "vae").is_dir() else args.runs / "vae")
    out = export.export(vae_run, args.runs / "diffusion", args.out or EMBEDDED, data_path=args.data,
                        dtype=args.dtype)
    print(f"exported {out} ({export.folder_mb(out):.1f} MB)")


def cmd_merge(args) -> None:
    from latentscape.train import merge

    out = merge.merge(args.base, args.tuned, args.alpha, args.out)
    print(merge.describe(out))


def cmd_eval(args) -> None:
    from latentscape.train import evaluate

    _positive(args, "captions", "sampling_steps", "sweep_prompts", "eval_batch")
    if args.coarse_prompts < 0:
        raise LatentscapeError(f"--coarse-prompts {args.coarse_prompts} is not allowed; it takes a whole number >= 0.")
    samplers = tuple(s.strip() for s in args.samplers.split(",") if s.strip())
    if not samplers:
        raise LatentscapeError("--samplers got no sampler name; pass a comma-separated list such as euler,dpmpp_2m.")
    cfg = evaluate.EvalConfig(n_captions=args.captions, steps=args.sampling_steps, sweep_prompts=args.sweep_prompts,
                              seed=args.seed, skip_sweep=args.no_sweep, batch=args.eval_batch, samplers=samplers,
                              coarse_prompts=args.coarse_prompts, vae=not args.no_vae,
                              sets=tuple(s.strip() for s in args.sets.split(",") if s.strip()))
    evaluate.main(args.model or EMBEDDED, args.data, cfg, out=args.out, threads=args.threads, device=args.device, runs=args.runs,
                  baseline=args.baseline)


def _numbers(args, name: str, kind, what: str, stages: str, count: int) -> tuple:
    """A comma-separated flag of ``count`` positive numbers (one per training stage), or () when absent."""
    text = getattr(args, name)
    if text is None:
        return ()
    flag = f"--{name.replace('_', '-')}"
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(v) and v > 0 for v in values):
        raise LatentscapeError(f"{flag} got '{text}'; it takes {what} for the {stages} stages, comma-separated.")
    return values


def cmd_recipe(args) -> None:
    if not (math.isfinite(args.budget_minutes) and args.budget_minutes > 0):
        raise LatentscapeError(f"--budget-minutes {args.budget_minutes} is not allowed; it takes a positive number of minutes, e.g. 9.")
    _positive(args, "eval_captions", "threads")
    if args.coarse_prompts < 0:
        raise LatentscapeError(f"--coarse-prompts {args.coarse_prompts} is not allowed; it takes a whole number >= 0.")
    shares = _numbers(args, "shares", float, "two positive fractions of the budget (summing to below 1: the diffusion stage, "
                                             "the export and the eval get the rest)", "vae and decoder", 2)
    if shares and sum(shares) >= 1:
        raise LatentscapeError(f"--shares got '{args.shares}', which sums to {sum(shares):g}; the shares must sum to below 1 "
                               "(the diffusion stage, the export and the eval get the rest), e.g. 0.3,0.15.")
    steps = _numbers(args, "steps", int, "three positive whole numbers of steps", "vae, decoder and diffusion", 3)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    for flag, value in (("--device", device), ("--eval-device", args.eval_device)):
        if value and value.split(":")[0] not in ("cpu", "cuda"):
            raise LatentscapeError(f"{flag} '{value}' is not allowed; it takes cpu or cuda.")
        if value and value.startswith("cuda") and not torch.cuda.is_available():
            raise LatentscapeError(f"{flag} {value} was asked for, but torch sees no CUDA device here; pass cpu or run on a GPU machine.")
    from latentscape.train import recipe

    cfg = recipe.default_config(args.budget_minutes, device, tiny=args.tiny, seed=args.seed, shares=shares or recipe.DEFAULT_SHARES,
                                steps=steps, vae_size=args.vae_size, eval_captions=args.eval_captions,
                                coarse_prompts=args.coarse_prompts, full_eval=args.full_eval, threads=args.threads,
                                eval_device=args.eval_device or "")
    record = recipe.run(cfg, args.data, args.out, baseline=args.baseline, progress=not args.no_progress)
    stages = ", ".join(f"{k} {s['reached_steps']}/{s['planned_steps']} steps in {s['seconds']:.0f} s" for k, s in record["stages"].items())
    print(f"recipe: {stages}; export {record['export']['mb']:.1f} MB; eval {record['eval']['seconds']:.0f} s; "
          f"total {record['total_seconds']:.0f} s of {60 * args.budget_minutes:.0f} s -> {args.out}")


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``train`` with its stages to a CLI's subparsers."""
    train = subparsers.add_parser("train", help="build the emoji data and train the embedded model", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = train.add_subparsers(dest="stage", required=True, metavar="STAGE")

    p = stages.add_parser("data", help="npm pack the emoji packages and write emoji64.npz")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (default: $LATENTSCAPE_CACHE/emoji or ~/.cache/latentscape/emoji)")
    p.add_argument("--out", type=Path, default=None, help="output array file (default: <cache>/emoji64.npz)")
    p.add_argument("--heldout", type=float, default=0.05, help="fraction of images held out (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_data)

    for name, fn, configure, hlp in (("vae", cmd_vae, _vae_config, "train the AutoencoderKL (f8c4) and cache latents"),
                                     ("diffusion", cmd_diffusion, _diffusion_config,
                                      "train the UNet + CLIP text encoder on cached latents")):
        p = stages.add_parser(name, help=hlp)
        _common(p)
        _loop_args(p)
        p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
        if name == "diffusion":
            p.add_argument("--caption-mix", default=None,
                           help="weights of fine, group+style, style-only and name-only captions, e.g. 0.7,0.15,0.05,0.1 (default: fine only)")
            p.add_argument("--init", type=Path, default=None,
                           help="fine-tune: start the UNet, text encoder and tokenizer from this exported model folder "
                                "(e.g. the embedded model) instead of random weights; a checkpoint in the run folder wins")
        if name == "vae":
            p.add_argument("--mse-weight", type=float, default=None, help="add an MSE term (PSNR fine-tuning)")
            p.add_argument("--grad-weight", type=float, default=None, help="weight of the L1 on image gradients (default 0.5)")
            p.add_argument("--crop", type=int, default=None, help="training crop size in pixels, a multiple of 8 from 8 to 64 (default 32)")
            p.add_argument("--ssim-weight", type=float, default=None, help="decoder-only: weight of 1 - two-scale SSIM (default 0)")
            p.add_argument("--feature-weight", type=float, default=None,
                           help="decoder-only: weight of L1 on the discriminator's features (default 0)")
            p.add_argument("--disc-weight", type=float, default=None,
                           help="decoder-only: PatchGAN weight on top of the adaptive weight (default 0: no GAN; SD uses 0.5)")
            p.add_argument("--disc-start", type=int, default=None, help="decoder-only: step at which the discriminator terms start")
            p.add_argument("--decoder-only", action="store_true",
                           help="fine-tune the decoder of runs/vae on its cached latents into runs/vae-decoder (latents unchanged)")
        p.set_defaults(func=_parallel(fn, configure))

    p = stages.add_parser("export", help="write the StableDiffusionPipeline folder (fp16 safetensors)")
    _common(p)
    p.add_argument("--out", type=Path, default=None, help=f"output folder (default: {EMBEDDED})")
    p.add_argument("--dtype", default="fp16", choices=("fp16", "fp32"))
    p.add_argument("--vae", type=Path, default=None, help="VAE run folder (default: runs/vae-decoder if present, else runs/vae)")
    p.set_defaults(func=cmd_export)

    p = stages.add_parser("merge", help="weight-space ensemble (WiSE-FT) of a fine-tune and the model it started from")
    p.add_argument("--base", type=Path, required=True, help="the exported model the fine-tune started from")
    p.add_argument("--tuned", type=Path, required=True, help="the exported fine-tune (its VAE, tokenizer and scheduler are kept)")
    p.add_argument("--alpha", type=float, required=True, help="UNet and text encoder = (1 - alpha) * base + alpha * tuned, 0 to 1")
    p.add_argument("--out", type=Path, required=True, help="output folder (a new, empty or model folder)")
    p.set_defaults(func=cmd_merge)

    p = stages.add_parser("eval", help="VAE PSNR/SSIM, prompt adherence and the CFG sweep")
    _common(p)
    p.add_argument("--model", type=Path, default=None, help="pipeline folder (default: the embedded model)")
    p.add_argument("--out", type=Path, default=None, help="write the results JSON here (default: <runs>/eval.json)")
    p.add_argument("--captions", type=int, default=128, help="captions per set: base names, training, held-out (default 128)")
    p.add_argument("--samplers", default="euler,dpmpp_2m", help="comma-separated samplers to score (default euler,dpmpp_2m)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="an earlier eval.json (e.g. of the shipped model): compare every gated number with it")
    p.add_argument("--sampling-steps", type=int, default=25)
    p.add_argument("--sweep-prompts", type=int, default=32)
    p.add_argument("--eval-batch", type=int, default=64)
    p.add_argument("--coarse-prompts", type=int, default=8, help="group+style captions for the diversity measure (0 skips it)")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--sets", default="base,train,heldout",
                   help="caption sets to score, comma-separated (default base,train,heldout; the gates are on base)")
    p.add_argument("--no-vae", action="store_true", help="skip the VAE round trip (its numbers then are not compared)")
    p.set_defaults(func=cmd_eval)

    p = stages.add_parser("recipe", help="vae, decoder, diffusion, export and eval inside one wall-clock budget (the GPU run)",
                          description="Every stage in turn, each stopped at its share of --budget-minutes (schedules sized by a "
                                      "short probe of each stage); writes OUT/model, OUT/eval.json, OUT/recipe.json, OUT/runs.")
    p.add_argument("--budget-minutes", type=float, required=True, help="wall-clock budget for the whole recipe, eval included")
    p.add_argument("--data", type=Path, default=None, help="the emoji64.npz array file (default: in the cache folder)")
    p.add_argument("--out", type=Path, required=True, help="a new or empty folder for the model, eval.json, recipe.json and checkpoints")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available; bf16 and large batches there)")
    p.add_argument("--eval-device", default=None, help="cpu or cuda for the eval (default: --device's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--shares", default=None, help="fractions of the budget for the vae and decoder stages (default 0.3,0.15); "
                                                  "the diffusion stage gets the rest but the export's and eval's time")
    p.add_argument("--steps", default=None, help="fixed schedule lengths for the three stages, e.g. 4000,1500,8000 "
                                                 "(replays a run's recipe.json; default: sized to the time by a probe)")
    p.add_argument("--vae-size", choices=("wide", "shipped"), default=None,
                   help="wide: 64/128/160/160 channels, 2 layers per block (default on CUDA); shipped: the embedded model's "
                        "VAE shape (default on a CPU, where the wide one is ~8x slower)")
    p.add_argument("--tiny", action="store_true", help="toy-sized models (tests, rehearsals of the plumbing)")
    p.add_argument("--eval-captions", type=int, default=64, help="base-name captions of the gated eval (default 64)")
    p.add_argument("--coarse-prompts", type=int, default=8, help="group+style captions for the diversity measure (0 skips it)")
    p.add_argument("--full-eval", action="store_true",
                   help="also score the training and held-out captions and run the CFG sweep (the README's whole table)")
    p.add_argument("--baseline", type=Path, default=None, help="an earlier eval.json: compare every gated number with it")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_recipe)
    return train


def main(argv: list[str] | None = None) -> int:
    # Shared CPUs: OpenMP threads that spin at barriers stall for seconds when another process takes a core.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="latentscape")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except LatentscapeError as exc:  # as the main CLI reports it: one sentence, exit status 2
        print(f"latentscape {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
