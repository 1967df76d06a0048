"""Benchmark: the README's main job on a shared CPU, OpenMP's spinning default against the CLI's passive policy.

    python bench/bench_threads.py                 # 1 competing CPU-bound process, 2 runs per setting
    python bench/bench_threads.py --busy 0        # an idle machine

Each setting runs ``latentscape morph`` (24 frames, 25 steps, the embedded model) as a fresh process, the way
a user runs it, while ``--busy`` other processes keep cores busy. ``active`` is what torch does without the
CLI's policy (``OMP_WAIT_POLICY=ACTIVE``: idle OpenMP workers spin); ``passive`` is the CLI's default.
The settings alternate and each one's median and worst wall time are printed; the two GIFs must be identical.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MORPH = ["morph", "grinning face, google style", "cat face, twitter style", "--seed", "0", "-q"]


def _spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10000))


def run(policy: str, out: Path, threads: int | None) -> float:
    env = dict(os.environ, OMP_WAIT_POLICY=policy.upper())
    cmd = [sys.executable, "-m", "latentscape.interfaces.cli", *MORPH, "-o", str(out)]
    if threads:
        cmd += ["--threads", str(threads)]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", type=int, default=1, help="competing CPU-bound processes")
    p.add_argument("--runs", type=int, default=2, help="runs per setting, alternating")
    p.add_argument("--threads", type=int, default=None, help="--threads for latentscape (default: torch's)")
    args = p.parse_args()

    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for s in spinners:
        s.start()
    times: dict[str, list[float]] = {"active": [], "passive": []}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for i in range(args.runs):
                for policy in times:
                    times[policy].append(run(policy, Path(tmp) / f"{policy}-{i}.gif", args.threads))
        finally:
            stop.set()
            for s in spinners:
                s.join()
        same = (Path(tmp) / "active-0.gif").read_bytes() == (Path(tmp) / "passive-0.gif").read_bytes()
    print(f"latentscape morph main job, {os.cpu_count()} CPUs, {args.busy} competing process(es), {args.runs} runs each")
    for policy, ts in times.items():
        print(f"OMP_WAIT_POLICY={policy:8s} median {statistics.median(ts):6.1f} s  worst {max(ts):6.1f} s")
    print(f"passive / active median: {statistics.median(times['active']) / statistics.median(times['passive']):.2f}x faster; "
          f"GIFs identical: {same}")


if __name__ == "__main__":
    main()
