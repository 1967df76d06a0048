"""Benchmark: a 24-frame morph, latentscape against the fairest diffusers baseline, in one run.

    python bench/bench_morph.py                      # the embedded model, on the CPU
    python bench/bench_morph.py --model path/to/sd   # any SD1.x/2.x diffusers folder
    python bench/bench_morph.py --busy 1             # with one competing CPU-bound process running

Sides, timed alternately in the same process (best of ``--repeats`` each):

- ``latentscape``: ``morph`` with uniform pacing (``--batch-size`` frames per forward, cond and uncond together);
- ``diffusers batched``: what a competent diffusers user writes — encode the two prompts once, interpolate
  the embeddings and the noise for every frame, and call ``StableDiffusionPipeline`` once per chunk of
  ``--batch-size`` frames with batched ``prompt_embeds`` / ``negative_prompt_embeds`` / ``latents``;
- ``diffusers naive``: one pipeline call per frame (prompts re-encoded each time), for reference only.

All render the same frames (same noise slerp, conditioning lerp, sampler, steps, CFG, size); the script
checks the endpoint frames agree. Ratios are against the batched baseline. The FLOP limit comes from
``torch.utils.flop_counter`` (one frame's text encoding share, UNet calls and VAE decode) and a matmul peak
measured in the same run: ``fraction of limit`` = achieved FLOP/s / peak FLOP/s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what the latentscape CLI sets; both sides share it

import numpy as np  # noqa: E402
import torch  # noqa: E402

PROMPTS = ("grinning face, google style", "cat face, twitter style")


def load_pipeline(folder: str):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def frame_inputs(pipe, frames: int, seed: int, size: tuple[int, int]):
    """Per-frame prompt embeddings, negative embeddings and noise, interpolated as latentscape does."""
    from latentscape.core.interpolate import lerp, slerp

    w, h = size
    shape = (1, pipe.unet.config.in_channels, h // pipe.vae_scale_factor, w // pipe.vae_scale_factor)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    a, neg = pipe.encode_prompt(PROMPTS[0], "cpu", 1, True, "")
    b, _ = pipe.encode_prompt(PROMPTS[1], "cpu", 1, True, "")
    ts = [i / (frames - 1) for i in range(frames)]
    embeds = torch.cat([lerp(a, b, t) for t in ts])
    return embeds, neg.expand(frames, -1, -1), torch.cat([slerp(noise, noise, t) for t in ts])


def diffusers_batched(pipe, frames: int, steps: int, cfg: float, seed: int, size: tuple[int, int], batch: int):
    w, h = size
    embeds, negs, latents = frame_inputs(pipe, frames, seed, size)
    images = []
    for s in range(0, frames, batch):
        out = pipe(prompt_embeds=embeds[s:s + batch], negative_prompt_embeds=negs[s:s + batch],
                   latents=latents[s:s + batch], num_inference_steps=steps, guidance_scale=cfg, height=h, width=w,
                   output_type="np")
        images += [(im * 255).round().astype(np.uint8) for im in out.images]
    return images


def diffusers_naive(pipe, frames: int, steps: int, cfg: float, seed: int, size: tuple[int, int], batch: int):
    """One pipeline call per frame, prompts encoded for every frame (what one writes first)."""
    from latentscape.core.interpolate import lerp, slerp

    w, h = size
    shape = (1, pipe.unet.config.in_channels, h // pipe.vae_scale_factor, w // pipe.vae_scale_factor)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    images = []
    for i in range(frames):
        t = i / (frames - 1)
        a, neg = pipe.encode_prompt(PROMPTS[0], "cpu", 1, True, "")
        b, _ = pipe.encode_prompt(PROMPTS[1], "cpu", 1, True, "")
        out = pipe(prompt_embeds=lerp(a, b, t), negative_prompt_embeds=neg, latents=slerp(noise, noise, t),
                   num_inference_steps=steps, guidance_scale=cfg, height=h, width=w, output_type="np")
        images.append((out.images[0] * 255).round().astype(np.uint8))
    return images


def latentscape_morph(model, frames: int, steps: int, cfg: float, seed: int, size: tuple[int, int], batch: int):
    from latentscape.workflows.morph import MorphConfig, morph

    config = MorphConfig(keyframes=PROMPTS, frames=frames, steps=steps, cfg=cfg, seed=seed, width=size[0],
                         height=size[1], batch_size=batch)
    return [np.asarray(im) for im in morph(model, config).images]


def flops_per_frame(pipe, steps: int, cfg: float, size: tuple[int, int]) -> dict[str, float]:
    """FLOPs of one frame: ``steps`` UNet calls (2 rows with CFG) and one VAE decode (text encoding is per
    keyframe, shared by all frames, and left out)."""
    from torch.utils.flop_counter import FlopCounterMode

    w, h = size
    f = pipe.vae_scale_factor
    rows = 2 if cfg > 1 else 1
    x = torch.randn(rows, pipe.unet.config.in_channels, h // f, w // f)
    ctx = torch.randn(rows, pipe.tokenizer.model_max_length, pipe.text_encoder.config.hidden_size)
    with torch.no_grad():
        with FlopCounterMode(display=False) as unet_count:
            pipe.unet(x, torch.tensor(500), encoder_hidden_states=ctx)
        with FlopCounterMode(display=False) as vae_count:
            pipe.vae.decode(x[:1])
    unet, vae = unet_count.get_total_flops() * steps, vae_count.get_total_flops()
    return {"unet": float(unet), "vae": float(vae), "total": float(unet + vae)}


def matmul_peak(threads: int, n: int = 1536, repeats: int = 8) -> float:
    """Best fp32 matmul FLOP/s on this CPU now, with the threads torch uses."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def _spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10000))


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded", help="'embedded' or an SD1.x/2.x diffusers folder")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", default=None, help="WxH (default: the model's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per side, alternating; the best counts")
    p.add_argument("--naive", action="store_true", help="also time the naive per-frame loop (slow)")
    p.add_argument("--busy", type=int, default=0, help="competing CPU-bound processes during the timed runs")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import latentscape
    from latentscape.models.load import EMBEDDED_DIR

    model = latentscape.load(args.model, device="cpu")
    folder = str(EMBEDDED_DIR) if args.model in ("embedded", "default") else args.model
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else model.default_size()
    pipe = load_pipeline(folder)

    sides = {"latentscape": (latentscape_morph, model), "diffusers batched": (diffusers_batched, pipe)}
    if args.naive:
        sides["diffusers naive"] = (diffusers_naive, pipe)
    for fn, target in sides.values():  # warm-up: first-call allocations and lazy imports, not timed
        fn(target, 2, 1, args.cfg, args.seed, size, args.batch_size)

    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for s in spinners:
        s.start()
    try:
        best = {name: float("inf") for name in sides}
        images = {}
        for _ in range(args.repeats):
            for name, (fn, target) in sides.items():
                images[name], t = timed(fn, target, args.frames, args.steps, args.cfg, args.seed, size, args.batch_size)
                best[name] = min(best[name], t)
        peak = matmul_peak(torch.get_num_threads())
    finally:
        stop.set()
        for s in spinners:
            s.join()

    flops = flops_per_frame(pipe, args.steps, args.cfg, size)
    diff = max(int(np.abs(images["latentscape"][i].astype(int) - images[n][i].astype(int)).max())
               for n in sides for i in (0, -1))
    print(f"model {model.model_id} ({model.name}), {size[0]}x{size[1]}, {args.frames} frames, {args.steps} steps, "
          f"CFG {args.cfg}, batch {args.batch_size}, torch threads {torch.get_num_threads()}, CPU, "
          f"{args.busy} competing process(es)")
    print(f"FLOPs per frame: {flops['total'] / 1e9:.2f} G ({100 * flops['unet'] / flops['total']:.0f} % UNet); "
          f"fp32 matmul peak now: {peak / 1e9:.1f} GFLOP/s -> limit {peak / flops['total']:.2f} frames/s")
    base = args.frames / best["diffusers batched"]
    for name, t in best.items():
        fps = args.frames / t
        print(f"{name:18s} {t:7.2f} s  {fps:6.2f} frames/s  {fps / base:5.2f}x batched  "
              f"{100 * fps * flops['total'] / peak:5.1f} % of limit")
    print(f"endpoint frames agree to {diff}/255")


if __name__ == "__main__":
    main()
