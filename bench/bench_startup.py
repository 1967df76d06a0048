"""Benchmark: start-up. How long a user waits before anything happens (targets: help < 0.5 s, models < 1 s).

    python bench/bench_startup.py [--runs 5]

Each command runs as a fresh process, the way a user types it; the median and best of ``--runs`` are
printed. A 1-image ``generate`` is split into its phases inside one fresh process: importing the package
and the libraries the run needs, loading the embedded model, and rendering (25 steps) + writing the PNG.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "latentscape --help": ["--help"],
    "latentscape morph --help": ["morph", "--help"],
    "latentscape models": ["models"],
}

PHASES = r"""
import time, sys
t0 = time.perf_counter()
from latentscape.interfaces.cli import set_thread_policy
set_thread_policy(None)
import torch, diffusers  # what any render imports
from latentscape.workflows.generate import GenerateConfig, generate
t1 = time.perf_counter()
import latentscape
model = latentscape.load()
t2 = time.perf_counter()
out = generate(model, GenerateConfig(prompt="cat face, google style", seed=1))
out.images[0].save(sys.argv[1])
t3 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {t3 - t2:.3f}")
"""


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    cli = [sys.executable, "-m", "latentscape.interfaces.cli"]
    for name, argv in COMMANDS.items():
        times = [wall(cli + argv) for _ in range(args.runs)]
        print(f"{name:28s} median {statistics.median(times):6.2f} s  best {min(times):6.2f} s")
    phases = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = subprocess.run([sys.executable, "-c", PHASES, f"{tmp}/{i}.png"], check=True, capture_output=True, text=True)
            phases.append([float(v) for v in out.stdout.split()])
    med = [statistics.median(col) for col in zip(*phases)]
    print(f"1-image generate (median of {args.runs}): imports {med[0]:.2f} s, model load {med[1]:.2f} s, "
          f"render + write {med[2]:.2f} s, total {sum(med):.2f} s")


if __name__ == "__main__":
    main()
