"""Benchmark: how well each inversion method brings real images back, against the VAE round-trip ceiling.

    python bench/bench_inversion.py                       # 64 held-out emoji, 25 and 50 steps, embedded model
    python bench/bench_inversion.py --images 16 --steps 25 --refine 0,2

For each held-out image of the emoji data (``~/.cache/latentscape/emoji/emoji64.npz``, the seeded 5 % split
of :mod:`latentscape.train.data`): encode it (posterior mean), invert the latent with each method, replay
the inversion with the one loop, decode, and compare with the original pixels (8-bit, as a saved PNG
would be). The ceiling is ``decode(encode(image))``: no inversion can beat the VAE. Each image is inverted
under its own caption at CFG 1 (``--caption empty``: the empty prompt). Time is the inversion plus the
replay, per image, with ``--batch`` images per model call on this machine's CPU threads.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI: spinning OpenMP threads stall on a shared CPU

import torch  # noqa: E402


def scores(model, latents: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image PSNR and SSIM of ``decode(latents)`` against ``pixels`` (both 8-bit quantised)."""
    from latentscape.train.metrics import psnr, quantize, ssim

    out = quantize(model.decode(latents).float().cpu())
    ref = quantize(pixels)
    return psnr(out, ref), ssim(out, ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", default="25,50")
    parser.add_argument("--methods", default="ddim,exact")
    parser.add_argument("--refine", default="0,2", help="fixed-point iterations tried for ddim/flow")
    parser.add_argument("--caption", choices=["own", "empty"], default="own")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from latentscape.inversion import invert_latents, replay
    from latentscape.models.load import load
    from latentscape.train import data

    model = load(args.model, device="cpu")
    test = data.load().test
    n = min(args.images, len(test))
    pixels = data.to_tensor(test.images[:n])
    captions = [str(c) for c in test.captions[:n]] if args.caption == "own" else [""] * n
    latents = model.encode_images(pixels).float()
    ceiling_psnr, ceiling_ssim = scores(model, latents, pixels)
    print(f"model {args.model} ({model.name}, {model.prediction_type}), {n} held-out images "
          f"{pixels.shape[-1]}x{pixels.shape[-2]}, caption: {args.caption}, CFG 1, torch threads {torch.get_num_threads()}")
    print(f"VAE round trip (ceiling): PSNR {ceiling_psnr.mean():.2f} dB, SSIM {ceiling_ssim.mean():.4f}")
    print("| method | steps | refine | evals/step | PSNR dB | gap to ceiling dB | SSIM | s/image |")
    print("|---|---|---|---|---|---|---|---|")
    for steps in [int(s) for s in args.steps.split(",")]:
        for method in args.methods.split(","):
            for refine in [int(r) for r in args.refine.split(",")] if method != "exact" else [0]:
                rec, start = [], time.perf_counter()
                for s in range(0, n, args.batch):
                    cond = model.encode_prompts(captions[s : s + args.batch])
                    inv = invert_latents(model, latents[s : s + args.batch], cond, method=method, steps=steps, refine=refine)
                    rec.append(replay(model, inv, cond).float())
                seconds = (time.perf_counter() - start) / n
                p, q = scores(model, torch.cat(rec), pixels)
                evals = (1 + refine) + 1 if method != "exact" else 2
                print(f"| {method} | {steps} | {refine if method != 'exact' else '-'} | {evals} | {p.mean():.2f} | "
                      f"{p.mean() - ceiling_psnr.mean():+.2f} | {q.mean():.4f} | {seconds:.3f} |", flush=True)


if __name__ == "__main__":
    main()
