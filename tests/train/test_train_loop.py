"""The training loop's precision choice."""

from __future__ import annotations

import torch

from latentscape.train import loop


def test_bf16_autocast_only_where_the_cpu_has_native_bf16(monkeypatch):
    """Emulated bf16 is ~10x slower than fp32 on CPUs without AMX/AVX512-BF16: autocast falls back to fp32 there."""
    cpu = torch.device("cpu")
    monkeypatch.setattr(loop, "cpu_flags", lambda: {"avx2", "fma"})
    with loop.autocast(cpu):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float32
    monkeypatch.setattr(loop, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    with loop.autocast(cpu):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16
    with loop.autocast(cpu, enabled=False):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float32
