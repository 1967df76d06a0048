"""large_blocks_unmapped: while a long pass runs, large blocks get their own mapping (returned on free)."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latentscape.io import memory


class FakeMallopt:
    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    def __call__(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


@pytest.fixture
def fake(monkeypatch):
    recorder = FakeMallopt()
    monkeypatch.setattr(memory, "_mallopt", lambda: recorder)
    return recorder


def test_the_threshold_is_fixed_inside_and_set_to_the_dynamic_ceiling_after(fake):
    with memory.large_blocks_unmapped():
        assert fake.calls == [(memory.M_MMAP_THRESHOLD, 4 << 20)]
    assert fake.calls == [(memory.M_MMAP_THRESHOLD, 4 << 20), (memory.M_MMAP_THRESHOLD, 32 << 20)]


def test_nested_passes_set_it_once_and_an_error_still_restores_it(fake):
    with pytest.raises(RuntimeError, match="boom"):
        with memory.large_blocks_unmapped():
            with memory.large_blocks_unmapped(1 << 20):  # the outer pass's setting stands
                raise RuntimeError("boom")
    assert fake.calls == [(memory.M_MMAP_THRESHOLD, 4 << 20), (memory.M_MMAP_THRESHOLD, 32 << 20)]
    assert memory._depth == 0


def test_without_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(memory, "_mallopt", lambda: None)
    with memory.large_blocks_unmapped():
        assert memory._depth == 0


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mapped_bytes():
    """Bytes malloc holds in blocks of their own mapping (glibc >= 2.33), or None elsewhere."""
    if memory._mallopt() is None:
        return None
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = MallInfo2
    return lambda: libc.mallinfo2().hblkhd


def _large_block_goes_back() -> None:
    mapped = _mapped_bytes()
    big = np.ones(30 << 20, dtype=np.uint8)
    del big  # as torch does with a big tensor: glibc's threshold rises to 30 MiB
    with memory.large_blocks_unmapped():
        before = mapped()
        block = np.ones(5 << 20, dtype=np.uint8)
        assert mapped() - before >= 5 << 20  # its own mapping, not a piece of the heap
        del block
        assert mapped() - before < 1 << 20  # and unmapped again


def test_on_glibc_a_large_block_freed_inside_goes_back_to_the_os():
    """The real allocator: after a 30 MiB block was freed (which raises glibc's dynamic threshold past
    5 MiB), a 5 MiB array made inside the pass still is a mapping of its own, and freeing it unmaps it.
    Run in a fresh process: in a long test session a free heap chunk of 5 MiB left by earlier tests can
    serve the array before malloc considers a mapping at all, whatever the threshold."""
    if _mapped_bytes() is None:
        pytest.skip("needs glibc's malloc with mallinfo2")
    root = Path(__file__).resolve().parents[2]
    code = "from tests.io.test_memory import _large_block_goes_back; _large_block_goes_back()"
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
