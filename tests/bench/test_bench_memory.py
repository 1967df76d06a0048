"""The memory benchmark runs end to end at toy size (its renders in-process here, to stay fast)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_memory.py"


def test_memory_bench_reports_peaks_and_their_ratio(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_memory", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "measure", lambda frames, size, steps, fmt, src, batch=None: bench.child(frames, size, steps, fmt, batch))
    lines = bench.main(["--frames", "2", "5", "--size", "32", "--steps", "1"])
    text = "\n".join(lines)
    assert text.startswith("morph peak memory: 32x32, 1 steps")
    peaks = [float(p) for p in re.findall(r"^\s+\d+ frames\s+peak\s+([\d.]+) MiB", text, re.M)]
    assert len(peaks) == 2 and all(p > 50 for p in peaks)  # a process with torch loaded
    rendering = [float(p) for p in re.findall(r"([\d.]+) MiB by the last frame", text)]
    assert len(rendering) == 2 and all(50 < r <= p for r, p in zip(rendering, peaks))  # a peak so far
    ratio = float(re.search(r"ratio 5 / 2 frames: ([\d.]+)x", text).group(1))
    assert abs(ratio - peaks[1] / peaks[0]) < 1e-3


def test_memory_bench_batch_size_reaches_the_renders(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_memory", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    seen = []

    def run(frames, size, steps, fmt, src, batch=None):
        result = bench.child(frames, size, steps, fmt, batch)
        seen.append(result["batch_size"])
        return result

    monkeypatch.setattr(bench, "measure", run)
    lines = bench.main(["--frames", "2", "3", "--size", "32", "--steps", "1", "--batch-size", "2"])
    assert lines[0].endswith("batch size 2") and seen == [2, 2]
