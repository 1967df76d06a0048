"""Which ``--batch-size`` renders the README's main job fastest, and do its pixels stay the same?

    python bench/bench_batch_size.py                   # batch 8, 16, 24, alternating, 2 rounds
    python bench/bench_batch_size.py --sizes 8 24 --rounds 3

The main job: ``latentscape morph "grinning face, google style" "cat face, twitter style" --frames 24
--seed 0 -o morph.gif`` on the embedded model. Every round renders it once per batch size, in turn (so a
busy moment of a shared machine hits all sizes alike); prints each size's best and median wall time, its
speed against batch 8, and whether its frames are batch 8's to the pixel (the GIF is a function of the
frames and the infotext, which does not name the batch size: same pixels, same GIF bytes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it, before torch loads

KEYFRAMES = ("grinning face, google style", "cat face, twitter style")


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 24])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args(argv)
    import numpy as np

    import latentscape
    from latentscape.workflows.morph import MorphConfig, morph

    model = latentscape.load()
    config = MorphConfig(keyframes=KEYFRAMES, frames=args.frames, seed=0)
    morph(model, MorphConfig(keyframes=KEYFRAMES, frames=2, seed=0))  # warm-up
    times: dict[int, list[float]] = {b: [] for b in args.sizes}
    pixels: dict[int, bytes] = {}
    for _ in range(args.rounds):
        for b in args.sizes:
            start = time.perf_counter()
            out = morph(model, MorphConfig(**{**config.__dict__, "batch_size": b}))
            times[b].append(time.perf_counter() - start)
            pixels[b] = b"".join(np.asarray(im).tobytes() for im in out.images)
    base = min(times[args.sizes[0]])
    lines = [f"main job, {args.frames} frames, embedded model, {args.rounds} rounds alternating (best / median wall):"]
    for b in args.sizes:
        same = "same pixels" if pixels[b] == pixels[args.sizes[0]] else "DIFFERENT pixels"
        lines.append(f"  batch {b:3d}: {min(times[b]):6.2f} s / {statistics.median(times[b]):6.2f} s  "
                     f"{base / min(times[b]):.3f}x batch {args.sizes[0]}  {same}")
    for line in lines:
        print(line, flush=True)
    return lines


if __name__ == "__main__":
    main()
