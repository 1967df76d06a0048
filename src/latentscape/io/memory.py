"""Keeping a long pass over frames from leaving freed memory resident (glibc's malloc only).

glibc gives a request of at least its *mmap threshold* a mapping of its own, which ``free`` hands straight
back to the OS. The threshold starts at 128 KiB but, by default, rises to the size of every mapped block
that is freed (up to 32 MiB): once torch has freed one 25 MiB tensor, every later tensor up to that size
comes from the heap, whose freed holes stay resident and which a stream of differently sized temporaries
fragments further chunk after chunk. Measured on a morph's distance pass (lab + ssim, chunks of 8 frames
of 512x512): 12 frames +250 MiB, 48 frames +575 MiB over the same start — the peak grew with the frame
count although every chunk needs the same ~310 MiB; with a fixed 4 MiB threshold, 48 frames peak +330 MiB.

:func:`large_blocks_unmapped` fixes the threshold for the duration of such a pass and afterwards sets it to
32 MiB, where the dynamic threshold of a process that has run torch on images this size already sits.
Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
import threading
from typing import Callable, Iterator

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
LARGE = 4 << 20  # blocks of at least this many bytes: their own mapping while a pass runs
AFTER = 32 << 20  # glibc's ceiling for the dynamic threshold on 64-bit (4 MiB * sizeof(long))

_lock = threading.Lock()
_depth = 0  # passes inside large_blocks_unmapped now (nested or in other threads)


@functools.lru_cache(maxsize=1)
def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None when this process does not run on glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None  # musl and others: their malloc has no such threshold
    fn = libc.mallopt
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


@contextlib.contextmanager
def large_blocks_unmapped(threshold: int = LARGE) -> Iterator[None]:
    """Inside, blocks of at least ``threshold`` bytes are mapped on their own and unmapped when freed, so
    a pass that repeats the same large temporaries peaks at what one step needs, however many steps it
    runs. Process-wide (malloc has one setting); nested or concurrent passes share the outermost's."""
    global _depth
    mallopt = _mallopt()
    if mallopt is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            mallopt(M_MMAP_THRESHOLD, threshold)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                mallopt(M_MMAP_THRESHOLD, AFTER)
