"""The distance pass holds one chunk of frames, and runs its metrics with large blocks unmapped on free,
so its peak memory does not grow with the frame count (bench/bench_memory.py measures the peak itself)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from PIL import Image

from latentscape.io import memory
from latentscape.workflows import smoothness


def _frames(n: int, alive: list[int], refs: list):
    rng = np.random.default_rng(0)
    for _ in range(n):
        alive.append(sum(r() is not None for r in refs))  # frames still referenced when the next is read
        im = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        refs.append(weakref.ref(im))
        yield im


@pytest.mark.parametrize("closed", [False, True])
def test_no_more_than_one_chunk_of_frames_is_alive(closed):
    gc.disable()  # what is alive must be alive by reference, not by a collection not yet run
    try:
        alive: list[int] = []
        out = smoothness.adjacent_distances(_frames(40, alive, []), ["lab", "ssim"], closed, chunk=4)
    finally:
        gc.enable()
    assert len(out["lab"]) == (40 if closed else 39)
    assert max(alive) <= 3  # the chunk being filled; the previous chunk's images are gone, not kept as views


def test_the_metrics_run_inside_large_blocks_unmapped(monkeypatch):
    depths = []
    monkeypatch.setattr(memory, "_mallopt", lambda: (lambda param, value: 1))
    metric = smoothness.METRICS["lab"]
    monkeypatch.setitem(smoothness.METRICS, "lab", lambda x, y: (depths.append(memory._depth), metric(x, y))[1])
    smoothness.adjacent_distances(_frames(10, [], []), ["lab"], closed=True, chunk=4)
    assert depths == [1] * 4 and memory._depth == 0  # 3 chunks and the closing pair, each inside the pass
