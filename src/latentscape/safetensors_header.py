"""Check a ``.safetensors`` file's header before any library maps it: one sentence for every way it is bad.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes
of JSON (an object mapping tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` plus an
optional ``"__metadata__"`` object of strings), then the tensor bytes, which the offsets index relative to
the end of the header, in full and without overlaps. Reading only the header allocates at most the header
bound (``limits.check_header_bytes``), whatever the file claims. Pure stdlib.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentscape.errors import LatentscapeError
from latentscape.limits import check_header_bytes

# bytes per element; sub-byte and exotic float formats are checked for bounds and overlaps only
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
MAX_DIMS = 16


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Header:
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]


def read_header(path: str | os.PathLike, *, name: str, bound: str = "max_model_header") -> Header:
    """The checked header of the file at ``path``; ``name`` is how the error sentences call it, ``bound``
    the :mod:`latentscape.limits` bound on the header's length."""
    path = Path(path)
    bad = f"{name} is not a valid .safetensors file"
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(0)
            if size < 8:
                raise LatentscapeError(f"{bad}: it is {size} bytes long, shorter than the 8-byte header length.")
            n = int.from_bytes(f.read(8), "little")
            if 8 + n > size:
                raise LatentscapeError(
                    f"{bad}: its first 8 bytes announce a {n:,}-byte header but only {size - 8:,} bytes follow "
                    "(truncated, or another kind of file).")
            check_header_bytes(n, name=name, bound_name=bound)
            raw = f.read(n)
    except OSError as exc:
        raise LatentscapeError(f"{name} cannot be read ({type(exc).__name__}: {exc.strerror or exc}).") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise LatentscapeError(f"{bad}: its header is not JSON text.") from None
    if not isinstance(data, dict):
        raise LatentscapeError(f"{bad}: its header is JSON but not an object of tensors.")
    return _check(data, size - 8 - n, bad)


def _check(data: dict[str, Any], data_size: int, bad: str) -> Header:
    metadata = data.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise LatentscapeError(f"{bad}: its __metadata__ is not an object of strings.")
    tensors: dict[str, TensorInfo] = {}
    for key, entry in data.items():
        what = f"{bad}: tensor '{key[:60]}'"
        if not isinstance(entry, dict):
            raise LatentscapeError(f"{what} is described by {type(entry).__name__}, not an object.")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or not dtype:
            raise LatentscapeError(f"{what} has no dtype.")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise LatentscapeError(f"{what} has shape {json.dumps(shape)[:60]}; expected a list of at most {MAX_DIMS} whole numbers >= 0.")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise LatentscapeError(f"{what} has data_offsets {json.dumps(offsets)[:60]}; expected [begin, end].")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise LatentscapeError(f"{what} lies at bytes {begin}..{end}, outside the file's {data_size:,} data bytes (truncated, or damaged).")
        if dtype in DTYPE_BYTES and end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise LatentscapeError(
                f"{what} is {dtype} of shape {tuple(shape)} ({math.prod(shape) * DTYPE_BYTES[dtype]:,} bytes) but spans {end - begin:,} bytes.")
        tensors[key] = TensorInfo(dtype, tuple(shape), begin, end)
    position = 0
    for key, t in sorted(tensors.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if t.begin < position:
            raise LatentscapeError(f"{bad}: tensor '{key[:60]}' overlaps the tensor before it.")
        if t.begin > position:
            raise LatentscapeError(f"{bad}: bytes {position}..{t.begin} before tensor '{key[:60]}' belong to no tensor.")
        position = t.end
    if position != data_size:
        raise LatentscapeError(f"{bad}: its last {data_size - position:,} bytes belong to no tensor.")
    return Header(tensors=tensors, metadata=dict(metadata))
