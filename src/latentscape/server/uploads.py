"""Images and files that come in a request body as base64: decoded, bounded, checked and stored under a
name the server makes (``data/uploads/<job>/input-N.png``). No request ever names a server path or a URL."""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from pathlib import Path

from latentscape.errors import LatentscapeError

UPLOAD_PREFIX = "upload:"  # how a stored request refers to a decoded upload (never valid base64, so never forged)
_DATA_URL = re.compile(r"^data:([a-z]+/[a-z0-9.+-]+)?(;[a-z0-9=.-]+)*;base64,", re.IGNORECASE)
_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


def decode_base64(text: object, *, field: str, max_bytes: int) -> bytes:
    """``text`` (plain base64 or a ``data:...;base64,`` URL) -> bytes, or a one-sentence error naming ``field``."""
    if not isinstance(text, str) or not text.strip():
        raise LatentscapeError(f"{field} must be a base64 string (a PNG, JPEG or WebP file); got {type(text).__name__}.")
    body = _DATA_URL.sub("", text.strip(), count=1)
    if re.match(r"^[a-z][a-z0-9+.-]*://", body, re.IGNORECASE) or body.startswith(("/", "~")):
        raise LatentscapeError(f"{field} looks like a URL or a path; the server reads no URLs or files: send the image itself as base64.")
    if len(body) > (max_bytes * 4) // 3 + 8:
        raise LatentscapeError(f"{field} is larger than the {max_bytes:,}-byte limit on uploaded files.")
    try:
        data = base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise LatentscapeError(f"{field} is not valid base64; send the file's bytes base64-encoded.") from None
    if len(data) > max_bytes:
        raise LatentscapeError(f"{field} is {len(data):,} bytes, above the {max_bytes:,}-byte limit on uploaded files.")
    return data


def check_image_bytes(data: bytes, *, field: str, max_pixels: int) -> tuple[str, tuple[int, int]]:
    """The file suffix for an uploaded image and its size, after the header checks (a PNG, JPEG or WebP of at
    most ``max_pixels`` pixels); a one-sentence error otherwise. Decodes nothing beyond the header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, size = im.format, im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise LatentscapeError(f"{field} is not a readable image; accepted: a base64 PNG, JPEG or WebP file.") from None
    if fmt not in _FORMATS:
        raise LatentscapeError(f"{field} is a {fmt} image; accepted: PNG, JPEG or WebP.")
    if size[0] * size[1] > max_pixels:
        raise LatentscapeError(f"{field} is {size[0]}x{size[1]} pixels, above the server's limit of {max_pixels:,} pixels per uploaded image.")
    return _FORMATS[fmt], size


def store_upload(folder: Path, index: int, data: bytes, suffix: str) -> str:
    """Write ``data`` as ``folder/input-<index><suffix>`` (fsynced) and return the stored reference."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"input-{index}{suffix}"
    path = folder / name
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return UPLOAD_PREFIX + name


def upload_path(folder: Path, reference: str) -> str:
    """The server path of a stored reference (``upload:input-0.png``), checked to stay inside ``folder``."""
    name = reference[len(UPLOAD_PREFIX):]
    if not re.fullmatch(r"input-\d+\.[a-z]+", name):
        raise LatentscapeError(f"the stored request names an upload '{name}' the server did not make.")
    return str(folder / name)
