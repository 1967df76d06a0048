"""A model's short hash as AUTOMATIC1111 writes it (``Model hash`` in infotext): the first 10 hex digits of
the SHA-256 of the checkpoint file.

- a single-file checkpoint: that file, exactly as A1111 and civitai hash it;
- a diffusers folder (and the embedded model, which is one): the denoiser's weights, the file
  ``unet/diffusion_pytorch_model.safetensors`` (or ``transformer/...``) hashed the same way, so
  ``sha256sum`` of that file starts with the hash. A denoiser saved in several shards is hashed as its
  shards' bytes in file-name order. The denoiser is what makes one checkpoint differ from another of the
  same family (VAE and text encoders are often shared), and its file does not change when other
  components are swapped or re-saved;
- a hub id: no hash (diffusers' cache layout is not ours to read).

Hashing a multi-GB checkpoint takes seconds, so each file's SHA-256 is cached by path, size and
modification time: in memory for the process, and in ``$LATENTSCAPE_CACHE/model-hashes.json`` (else
``~/.cache/latentscape/model-hashes.json``) across runs. Nothing is hashed at import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

DENOISER_FOLDERS = ("unet", "transformer")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")
SHORT = 10
_memory: dict[tuple[str, int, int], str] = {}


def cache_file() -> Path:
    root = os.environ.get("LATENTSCAPE_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "latentscape") / "model-hashes.json"


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _read_disk() -> dict:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_disk(data: dict) -> None:
    """Best effort: a read-only or full cache folder only costs the next run a re-hash."""
    target = cache_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".model-hashes.", suffix=".partial")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        os.replace(tmp, target)
    except OSError as exc:
        log.debug("model hash cache not written (%s)", exc)


def files_sha256(paths: list[Path]) -> str:
    """SHA-256 (hex) of the files' bytes, one after the other; each file's own digest cached when alone."""
    if len(paths) == 1:
        key = _key(paths[0])
        if key in _memory:
            return _memory[key]
        disk = _read_disk()
        entry = disk.get(key[0])
        if isinstance(entry, dict) and entry.get("size") == key[1] and entry.get("mtime_ns") == key[2] \
                and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64:
            _memory[key] = entry["sha256"]
            return entry["sha256"]
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    digest = h.hexdigest()
    if len(paths) == 1:
        _memory[key] = digest
        disk = {k: v for k, v in _read_disk().items() if Path(k).is_file()}  # forget files that are gone
        disk[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
        _write_disk(disk)
    return digest


def denoiser_weights(folder: Path) -> list[Path]:
    """The denoiser's weight files of a diffusers folder, in name order ([] when it has none)."""
    for name in DENOISER_FOLDERS:
        sub = folder / name
        if sub.is_dir():
            files = sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)
            # one format only: a folder with both .safetensors and .bin copies is hashed by its safetensors
            safetensors = [p for p in files if p.suffix.lower() == ".safetensors"]
            return safetensors or files
    return []


def model_hash(source: str | os.PathLike) -> str | None:
    """A1111's short hash of a checkpoint file or of a diffusers folder's denoiser (see the module), or None."""
    path = Path(source)
    try:
        if path.is_file():
            return files_sha256([path])[:SHORT]
        if path.is_dir():
            files = denoiser_weights(path)
            return files_sha256(files)[:SHORT] if files else None
    except OSError as exc:
        log.warning("could not hash model '%s' (%s); its infotext has no Model hash", path, exc)
    return None
