"""Peak memory of a morph against its frame count: a 192-frame and a 12-frame 512x512 render.

    python bench/bench_memory.py                        # 12 vs 192 frames at 512x512 (the issue's target)
    python bench/bench_memory.py --frames 3 12 --size 64  # toy size (what the tests run)
    python bench/bench_memory.py --src /path/to/other/src # the same measurement on another checkout's code

Each render runs in its own fresh Python process (so one's memory cannot hide in another's peak), on a tiny
SD-architecture model built in code (tests/tiny_models.py: random weights, a 4-channel VAE with a 1/8 latent,
so a 512x512 frame is a 64x64 latent) at ``--steps`` steps, written by ``render_morph`` as a GIF with its
frames folder, like ``latentscape morph ... -o morph.gif``. The peak is the process's maximum resident set
size (``resource.getrusage``, which covers everything: torch, the model, frames, the video writer).
Prints each peak, its part above the loaded model, the peak by the time the last frame is on disk (what
rendering took; the rest is the distance pass, the video and the manifest), and the ratio of the largest to
the smallest render (target: within 1.2x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.2


def child(frames: int, size: int, steps: int, fmt: str, batch: int | None = None) -> dict:
    """One render in this process; returns its peak RSS (MiB) before and after the render, and its time."""
    import resource

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.path.insert(0, str(ROOT / "tests"))
    import latentscape
    from latentscape.workflows.morph import MorphConfig, render_morph
    from tiny_models import make_sd

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

    with tempfile.TemporaryDirectory() as tmp:
        model = latentscape.load(str(make_sd(Path(tmp) / "sd")))
        config = MorphConfig(keyframes=("a cat", "a dog"), frames=frames, seed=0, steps=steps, width=size, height=size)
        if batch is not None:
            config = MorphConfig(**{**config.__dict__, "batch_size": batch})
        render_morph(model, MorphConfig(**{**config.__dict__, "frames": 2}), Path(tmp) / f"warm.{fmt}")  # warm-up
        loaded = peak()
        rendering = [loaded]  # the peak when the last frame is on disk: before distances, video and sheet

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "final" and done == total:
                rendering.append(peak())

        start = time.perf_counter()
        render_morph(model, config, Path(tmp) / f"morph.{fmt}", progress=progress)
        seconds = time.perf_counter() - start
    return {"frames": frames, "batch_size": config.batch_size, "loaded_mib": loaded, "rendering_mib": rendering[-1], "peak_mib": peak(), "seconds": seconds}


def measure(frames: int, size: int, steps: int, fmt: str, src: str | None, batch: int | None = None) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, __file__, "--child", str(frames), "--size", str(size), "--steps", str(steps), "--format", fmt]
    if batch is not None:
        cmd += ["--batch-size", str(batch)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {frames}-frame render failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[12, 192])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--format", default="gif", choices=("gif", "webp", "mp4"))
    parser.add_argument("--batch-size", type=int, help="frames per forward pass for every render (default: morph's "
                        "default, 24; a render of fewer frames then runs one smaller batch, which peaks lower)")
    parser.add_argument("--src", help="a checkout's src/ folder to measure instead of this one")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.size, args.steps, args.format, args.batch_size)))
        return []
    lines = [f"morph peak memory: {args.size}x{args.size}, {args.steps} steps, tiny SD model, .{args.format}"
             + (f", batch size {args.batch_size}" if args.batch_size else "")
             + (f", code from {args.src}" if args.src else "")]
    results = []
    for n in args.frames:
        r = measure(n, args.size, args.steps, args.format, args.src, args.batch_size)
        results.append(r)
        lines.append(f"  {n:5d} frames  peak {r['peak_mib']:7.1f} MiB  ({r['peak_mib'] - r['loaded_mib']:+7.1f} MiB over "
                     f"the loaded model; {r['rendering_mib']:7.1f} MiB by the last frame)  {r['seconds']:6.1f} s")
    low, high = min(results, key=lambda r: r["frames"]), max(results, key=lambda r: r["frames"])
    ratio = high["peak_mib"] / low["peak_mib"]
    lines.append(f"  ratio {high['frames']} / {low['frames']} frames: {ratio:.3f}x "
                 f"({'within' if ratio <= TARGET else 'over'} the {TARGET}x target)")
    for line in lines:
        print(line, flush=True)
    return lines


if __name__ == "__main__":
    main()
