"""The prepared GPU benchmark runs end to end at toy size on the CPU, so it is ready when a GPU is lent."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_gpu.py"


def test_gpu_bench_runs_at_toy_size_on_cpu():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    lines = bench.main(["--toy", "--device", "cpu", "--frames", "3", "--steps", "1", "--size", "32",
                        "--batch-size", "2", "--repeats", "1"])
    text = "\n".join(lines)
    for arch in ("sd15", "sdxl"):
        assert re.search(rf"^{arch}: 32x32, 3 frames, 1 steps", text, re.M)
    rows = re.findall(r"^  (latentscape|diffusers batched)\s+[\d.]+ s\s+([\d.]+) frames/s\s+([\d.]+)x batched", text, re.M)
    assert [r[0] for r in rows] == ["latentscape", "diffusers batched"] * 2
    assert all(float(r[1]) > 0 for r in rows)
    assert [float(r[2]) for r in rows][1::2] == [1.0, 1.0]  # the baseline is its own unit
