"""Benchmark: one 64x64 image from the embedded model at 25 steps, CFG 7.5, on the CPU (target <= 1 s median).

    python bench/bench_embedded_cpu.py                 # 2 threads, 10 timed runs after 2 warm-ups
    python bench/bench_embedded_cpu.py --threads 1 --runs 20

Each run is the whole job: prompt encoding (cond + empty uncond), 25 UNet calls at batch 2 (CFG), the
Euler scheduler and the VAE decode. Timed twice in the same process: through plain diffusers
(``StableDiffusionPipeline.__call__``) and through latentscape (``load`` + the generate workflow), so the
two numbers come from the same machine state. Prints median / min / p90 and the ratio to the 1 s target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared CPUs: spinning OpenMP threads stall when a core is taken

import torch  # noqa: E402

PROMPT = "grinning face, google style"
TARGET_S = 1.0


def timed(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def report(name: str, times: list[float]) -> float:
    s = sorted(times)
    med = statistics.median(s)
    p90 = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
    print(f"{name:<12} median {med * 1000:7.1f} ms   min {s[0] * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   "
          f"median / target = {med / TARGET_S:.2f}")
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="pipeline folder (default: the embedded model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=7.5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from diffusers import StableDiffusionPipeline

    from latentscape.models.load import EMBEDDED_DIR

    folder = args.model or str(EMBEDDED_DIR)
    pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=torch.float32, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    print(f"model {folder}; {args.steps} steps, CFG {args.cfg}, 64x64, {args.threads} threads, "
          f"{args.runs} runs after {args.warmup} warm-ups")

    def run_diffusers():
        with torch.inference_mode():
            pipe(PROMPT, num_inference_steps=args.steps, guidance_scale=args.cfg, height=64, width=64,
                 generator=torch.Generator().manual_seed(0), output_type="np")

    results = {"diffusers": report("diffusers", timed(run_diffusers, args.runs, args.warmup))}

    try:
        import latentscape
        from latentscape.workflows.generate import GenerateConfig, generate
    except ImportError as exc:  # the workflow layer is optional for this benchmark
        print(f"latentscape generate unavailable ({exc}); diffusers number only")
    else:
        model = latentscape.load(folder, device="cpu")
        config = GenerateConfig(prompt=PROMPT, seed=0, steps=args.steps, cfg=args.cfg, sampler="euler")

        def run_latentscape():
            with torch.inference_mode():
                generate(model, config)

        results["latentscape"] = report("latentscape", timed(run_latentscape, args.runs, args.warmup))
    best = min(results.values())
    print(f"{'PASS' if best <= TARGET_S else 'OVER'}: best median {best:.3f} s vs target {TARGET_S:.1f} s")


if __name__ == "__main__":
    main()
