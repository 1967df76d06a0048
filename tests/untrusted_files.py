"""Builders for hostile and damaged files: safetensors with any header, PNGs whose header lies about their
size, text-chunk bombs, PNGs carrying any recipe text. Used by the io/models tests and the fuzz test."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin


def safetensors_bytes(header: dict | list | str | bytes, data: bytes = b"", *, length: int | None = None) -> bytes:
    """An 8-byte length, the header (a JSON value, or raw bytes/str as given) and ``data``."""
    if isinstance(header, bytes):
        raw = header
    elif isinstance(header, str):
        raw = header.encode()
    else:
        raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def latent_file_bytes(latents: np.ndarray, metadata: dict[str, object] | None = None, *, dtype: str = "F32",
                      raw_metadata: dict[str, str] | None = None) -> bytes:
    """A latent file as ``save_latents`` writes it: a ``latents`` tensor and JSON-encoded metadata values."""
    arr = np.ascontiguousarray(latents, dtype={"F32": np.float32, "F16": np.float16, "I32": np.int32}[dtype])
    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    meta.update(raw_metadata or {})
    data = arr.tobytes()
    header = {"__metadata__": meta, "latents": {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [0, len(data)]}}
    return safetensors_bytes(header, data)


def good_latent_meta(channels: int = 4, width: int = 32, height: int = 32) -> dict[str, object]:
    return {"family": "sd", "model": "m", "channels": channels, "scale": 0.18215, "shift": 0.0,
            "width": width, "height": height, "space": "model", "source": "", "version": "0"}


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR says ``width`` x ``height`` (a decompression bomb's header) over one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b"")


def png_with_text(path: Path, chunks: dict[str, str], *, compressed: bool = False, size: tuple[int, int] = (8, 8)) -> Path:
    """A small PNG carrying the given text chunks (zTXt when ``compressed``: a text-chunk bomb compresses well)."""
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        if compressed:
            info.add_text(key, value, zip=True)
        else:
            info.add_itxt(key, value)
    Image.new("RGB", size, (200, 30, 30)).save(path, format="PNG", pnginfo=info)
    return path


def animated_gif_bytes(frames: int = 3) -> bytes:
    buf = io.BytesIO()
    images = [Image.new("RGB", (8, 8), (40 * i, 0, 0)) for i in range(frames)]
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=100)
    return buf.getvalue()
