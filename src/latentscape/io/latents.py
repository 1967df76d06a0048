"""Latent files: a ``.safetensors`` holding model-space latents plus what is needed to decode them."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from latentscape.errors import LatentscapeError
from latentscape.io.files import atomic_path
from latentscape.io.recipe_schema import schema_error
from latentscape.limits import check_latent_values, check_pixels
from latentscape.safetensors_header import FLOAT_DTYPES, read_header

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
    """Write ``latents`` with ``meta`` atomically, with normal permissions (0666 & ~umask, like every output)."""
    from safetensors.torch import save

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise LatentscapeError(f"latent output '{path}' must end in .safetensors.")
    metadata = {k: json.dumps(v) for k, v in asdict(meta).items()}
    data = save({LATENT_KEY: latents.detach().float().cpu().contiguous()}, metadata=metadata)
    with atomic_path(path) as tmp:  # safetensors' own save_file would create the file 0600
        tmp.write_bytes(data)
    return path


class _MetaSchema(BaseModel):
    """What ``save_latents`` writes into the header (each value JSON-encoded), typed."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
    family: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    model: Annotated[str, StringConstraints(max_length=4096)]
    channels: Annotated[int, Field(ge=1, le=1024)]
    scale: Annotated[float, Field(gt=0)]
    shift: float
    width: Annotated[int, Field(ge=1)]
    height: Annotated[int, Field(ge=1)]
    space: Literal["model"] = "model"
    source: Annotated[str, StringConstraints(max_length=4096)] = ""
    version: Annotated[str, StringConstraints(max_length=200)] = ""


def load_latents(path: str | os.PathLike) -> tuple[torch.Tensor, LatentMeta]:
    """A latent file's tensor (B, C, h, w) and metadata; the header is checked (size, offsets, shape, bounds,
    metadata types) before the tensor is read, and NaN/infinite values are refused."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise LatentscapeError(f"latent file '{path}' does not exist; expected a .safetensors file written by `latentscape encode`.")
    name = f"latent file '{path}'"
    try:
        header = read_header(path, name=name, bound="max_latent_header")
    except LatentscapeError as exc:
        if "not a valid .safetensors" in str(exc):  # the sentence every caller (and test) knows
            raise LatentscapeError(str(exc).replace("is not a valid .safetensors file", "is not a readable .safetensors latent file", 1)) from None
        raise
    info = header.tensors.get(LATENT_KEY)
    if info is None:
        raise LatentscapeError(f"'{path}' has no '{LATENT_KEY}' tensor; expected a file written by `latentscape encode`.")
    if info.dtype not in FLOAT_DTYPES:
        raise LatentscapeError(f"{name} holds {info.dtype} latents; accepted: a float tensor ({', '.join(FLOAT_DTYPES)}).")
    if len(info.shape) != 4 or 0 in info.shape:
        raise LatentscapeError(f"{name} holds latents of shape {info.shape}; accepted: (batch, channels, height, width), none of them 0.")
    check_latent_values(info.numel, name=name)
    meta = _meta(header.metadata, path, info.shape)
    try:
        with safe_open(str(path), framework="pt") as f:
            latents = f.get_tensor(LATENT_KEY)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise LatentscapeError(f"'{path}' is not a readable .safetensors latent file ({type(exc).__name__}).") from None
    bad = (~torch.isfinite(latents)).sum().item()
    if bad:
        raise LatentscapeError(f"{name} holds {bad:,} NaN or infinite values; accepted: finite latents (the file is damaged).")
    return latents, meta


def _meta(raw: dict[str, str], path: Path, shape: tuple[int, ...]) -> LatentMeta:
    source = f"latent file '{path}'"
    if not any(k in raw for k in ("family", "scale")):
        raise LatentscapeError(f"'{path}' lacks latentscape metadata (family, scale); expected a file written by `latentscape encode`.")
    fields = {}
    for key in LatentMeta.__dataclass_fields__:
        if key in raw:
            try:
                fields[key] = json.loads(raw[key])
            except (ValueError, RecursionError):
                raise LatentscapeError(f"{source} metadata field {key} is {raw[key][:40]!r}, which is not JSON.") from None
    try:
        _MetaSchema.model_validate(fields)
    except ValidationError as exc:
        raise schema_error(exc, source=source, prefix="", joiner=" metadata field ") from None
    meta = LatentMeta(**fields)
    if meta.channels != shape[1]:
        raise LatentscapeError(f"{source} says {meta.channels} channels but its latents have {shape[1]}; the file is damaged.")
    check_pixels(meta.width, meta.height, family=meta.family, what=f"{source} decodes to")
    return meta
