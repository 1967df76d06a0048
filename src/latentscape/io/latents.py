"""Latent files: a ``.safetensors`` holding model-space latents plus what is needed to decode them."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from latentscape.errors import LatentscapeError
from latentscape.io.files import atomic_path

LATENT_KEY = "latents"


@dataclass(frozen=True)
class LatentMeta:
    """Stored beside the tensor: which family/model made it and the scale it is in."""

    family: str
    model: str
    channels: int
    scale: float
    shift: float
    width: int
    height: int
    space: str = "model"  # model-space: (z_vae − shift)·scale, what the denoiser sees
    source: str = ""
    version: str = ""


def save_latents(path: str | os.PathLike, latents: torch.Tensor, meta: LatentMeta) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise LatentscapeError(f"latent output '{path}' must end in .safetensors.")
    metadata = {k: json.dumps(v) for k, v in asdict(meta).items()}
    with atomic_path(path) as tmp:
        save_file({LATENT_KEY: latents.detach().float().cpu().contiguous()}, str(tmp), metadata=metadata)
    return path


def load_latents(path: str | os.PathLike) -> tuple[torch.Tensor, LatentMeta]:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise LatentscapeError(f"latent file '{path}' does not exist; expected a .safetensors file written by `latentscape encode`.")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            if LATENT_KEY not in f.keys():
                raise LatentscapeError(f"'{path}' has no '{LATENT_KEY}' tensor; expected a file written by `latentscape encode`.")
            latents = f.get_tensor(LATENT_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, LatentscapeError):
            raise
        raise LatentscapeError(f"'{path}' is not a readable .safetensors latent file ({type(exc).__name__}).") from None
    try:
        fields = {k: json.loads(v) for k, v in raw.items() if k in LatentMeta.__dataclass_fields__}
        meta = LatentMeta(**fields)
    except (TypeError, ValueError):
        raise LatentscapeError(f"'{path}' lacks latentscape metadata (family, scale); expected a file written by `latentscape encode`.") from None
    return latents, meta
