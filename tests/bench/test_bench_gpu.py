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
    assert text.count("VAE batch 1; host syncs per denoising step: n/a (not CUDA)") == 2  # the CPU default


def test_gpu_bench_compile_path_at_toy_size_on_cpu(monkeypatch):
    """``--compile`` goes through load()'s compile (checked, in place, recorded); the compile itself is faked here
    (inductor on this CPU takes minutes), so this checks the wiring, not inductor."""
    import torch

    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append((type(self).__name__, kw["mode"])))
    lines = bench.main(["--toy", "--device", "cpu", "--arch", "sd15", "--frames", "2", "--steps", "1", "--size", "32",
                        "--batch-size", "2", "--repeats", "1", "--compile", "--compile-mode", "default", "--vae-batch", "2"])
    text = "\n".join(lines)
    assert compiled == [("UNet2DConditionModel", "default")]
    assert "VAE batch 2;" in text and re.search(r"^  compile \+ warm-up: [\d.]+ s", text, re.M)
    assert re.search(r"^  latentscape \+ compile\s+[\d.]+ s", text, re.M)
