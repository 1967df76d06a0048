"""Benchmark: start-up. How long a user waits before anything happens (targets: help < 0.5 s, models < 1 s).

    python bench/bench_startup.py [--runs 3]

Every measurement is a fresh process, the way a user types a command; each line gives the median and best
of ``--runs`` wall-clock seconds and the median CPU seconds (user + system) of the process, which a shared
machine's other load moves much less than the wall clock. Lines:

- ``--help``, ``morph --help``, ``models`` and a whole 1-image ``generate`` on the embedded model, as typed;
- the 1-image generate split into its phases inside one process: importing the package and the libraries
  any render imports, loading the embedded model (which imports the model classes), and rendering
  (25 steps) + writing the PNG;
- the import of the modules a generate needs, one after the other in one process: torch, what diffusers and
  transformers import of torch beyond it (``torch._dynamo``, sympy), transformers' CLIP, diffusers' UNet and
  VAE modules (with the packages diffusers imports around them), and the SD pipeline module.
"""

from __future__ import annotations

import argparse
import os
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
GENERATE = ["generate", "grinning face", "--seed", "0", "-q", "-o"]

# each script prints one "wall cpu" pair per phase; cpu is the process's user + system time
CLOCK = r"""
import resource, sys, time
def mark(out=[]):
    r = resource.getrusage(resource.RUSAGE_SELF)
    out.append((time.perf_counter(), r.ru_utime + r.ru_stime))
    if len(out) > 1:
        print(f"{out[-1][0] - out[-2][0]:.4f} {out[-1][1] - out[-2][1]:.4f}")
mark()
"""

PHASES = CLOCK + r"""
from latentscape.interfaces.cli import set_thread_policy
set_thread_policy(None)
import torch, diffusers  # what any render imports
from latentscape.workflows.generate import GenerateConfig, generate
mark()
import latentscape
model = latentscape.load()
mark()
out = generate(model, GenerateConfig(prompt="cat face, google style", seed=1))
out.images[0].save(sys.argv[1])
mark()
"""
PHASE_NAMES = ("imports", "model load", "render + write")

IMPORTS = CLOCK + r"""
import torch
mark()
import torch._dynamo
mark()
import transformers.models.clip.modeling_clip, transformers.models.clip.tokenization_clip
mark()
import diffusers.models.unets.unet_2d_condition, diffusers.models.autoencoders.autoencoder_kl
mark()
import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion
mark()
"""
IMPORT_NAMES = ("torch", "+ torch._dynamo", "+ transformers CLIP", "+ diffusers UNet/VAE", "+ SD pipeline module")


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one fresh process."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def phased(argv: list[str]) -> list[tuple[float, float]]:
    """(wall, cpu) of each phase a script marks."""
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    return [(float(w), float(c)) for w, c in (line.split() for line in out.stdout.split("\n") if line.strip())]


def line(name: str, samples: list[tuple[float, float]]) -> str:
    walls, cpus = [w for w, _ in samples], [c for _, c in samples]
    return f"{name:34s} median {statistics.median(walls):6.2f} s  best {min(walls):6.2f} s  cpu {statistics.median(cpus):6.2f} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    cli = [sys.executable, "-m", "latentscape.interfaces.cli"]
    print(f"{args.runs} fresh processes each; wall clock median/best, CPU (user + system) median")
    for name, argv in COMMANDS.items():
        print(line(name, [timed(cli + argv) for _ in range(args.runs)]))
    with tempfile.TemporaryDirectory() as tmp:
        print(line("1-image generate (CLI, whole)", [timed(cli + GENERATE + [f"{tmp}/g{i}.png"]) for i in range(args.runs)]))
        phases = [phased([sys.executable, "-c", PHASES, f"{tmp}/{i}.png"]) for i in range(args.runs)]
    for k, name in enumerate(PHASE_NAMES):
        print(line(f"  generate: {name}", [run[k] for run in phases]))
    imports = [phased([sys.executable, "-c", IMPORTS]) for _ in range(args.runs)]
    for k, name in enumerate(IMPORT_NAMES):
        print(line(f"  import {name}", [run[k] for run in imports]))


if __name__ == "__main__":
    main()
