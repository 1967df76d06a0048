"""The one registry of model families: what each family is, in plain data (no torch, no diffusers).

The adapters (sd.py, sdxl.py, sd3.py, flux.py) take their class facts from here, ``load`` maps pipeline
classes to families with it, and the ``models`` verb lists families without importing torch.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentscape.errors import LatentscapeError

EMBEDDED_DIR = Path(__file__).parent / "embedded"
EMBEDDED_NAMES = (None, "", "embedded", "default")
MAX_JSON_BYTES = 1 << 20  # model_index.json, latentscape.json: a few KB in every real model


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    pipeline_class: str  # diffusers' text-to-image pipeline class
    adapter: str  # "module:Class" of the latentscape adapter
    is_flow: bool = False  # flow matching (SD3, FLUX) rather than eps/v prediction
    default_cfg: float = 7.5


FAMILIES: dict[str, FamilyInfo] = {
    f.name: f
    for f in (
        FamilyInfo("sd", "StableDiffusionPipeline", "latentscape.models.sd:StableDiffusion"),
        FamilyInfo("sdxl", "StableDiffusionXLPipeline", "latentscape.models.sdxl:StableDiffusionXL"),
        FamilyInfo("sd3", "StableDiffusion3Pipeline", "latentscape.models.sd3:StableDiffusion3", is_flow=True, default_cfg=7.0),
        FamilyInfo("flux", "FluxPipeline", "latentscape.models.flux:Flux", is_flow=True, default_cfg=3.5),
    )
}

# diffusers pipeline class (as in model_index.json) -> family name; img2img/inpaint variants share components.
PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionImg2ImgPipeline": "sd",
    "StableDiffusionInpaintPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusionXLInpaintPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
    "StableDiffusion3Img2ImgPipeline": "sd3",
    "FluxPipeline": "flux",
    "FluxImg2ImgPipeline": "flux",
}


def adapter_class(family: str) -> type:
    """The adapter class of ``family`` (imports torch and diffusers: only when a model is used)."""
    module, name = FAMILIES[family].adapter.split(":")
    return getattr(importlib.import_module(module), name)


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (at most :data:`MAX_JSON_BYTES`); one sentence if it is anything else."""
    try:
        size = path.stat().st_size
        raw = path.read_bytes() if size <= MAX_JSON_BYTES else b""
        data = json.loads(raw.decode("utf-8")) if size <= MAX_JSON_BYTES else None
    except FileNotFoundError:
        raise LatentscapeError(f"'{path}' is missing; expected {what}.") from None
    except OSError as exc:
        raise LatentscapeError(f"'{path}' cannot be read ({exc.strerror or type(exc).__name__}); expected {what}.") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise LatentscapeError(f"'{path}' is not JSON; expected {what}.") from None
    if size > MAX_JSON_BYTES:
        raise LatentscapeError(f"'{path}' is {size:,} bytes, too large for {what} (at most {MAX_JSON_BYTES:,}).")
    if not isinstance(data, dict):
        raise LatentscapeError(f"'{path}' holds a JSON {type(data).__name__}; expected {what} (a JSON object).")
    return data
