"""Load a model into its family adapter: the embedded default, a local diffusers folder, a hub id
(when online) or a single checkpoint file plus a config folder."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import torch

from latentscape.errors import LatentscapeError
from latentscape.models.components import build_pipeline
from latentscape.models.family import Family
from latentscape.models.latent_format import FORMATS
from latentscape.models.model_hash import model_hash
from latentscape.models.registry import (  # noqa: F401 (EMBEDDED_DIR, read_json_object: re-exported)
    EMBEDDED_DIR, EMBEDDED_NAMES, FAMILIES, MAX_JSON_BYTES, PIPELINE_FAMILIES, adapter_class, read_json_object,
)
from latentscape.safetensors_header import read_header

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def family_classes() -> dict[str, type[Family]]:
    return {name: adapter_class(name) for name in FAMILIES}


def auto_device(device: str | torch.device | None) -> torch.device:
    """The device asked for (checked to exist), else the best available: CUDA, then MPS, then CPU."""
    if device is not None:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise LatentscapeError(f"device got '{device}'; expected cpu, cuda, cuda:N or mps.", field="device") from None
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise LatentscapeError(f"device {device} was asked for, but this torch build sees no CUDA GPU; use device='cpu'.", field="device")
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise LatentscapeError(f"device {device} does not exist: {torch.cuda.device_count()} CUDA device(s) are visible.", field="device")
        elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise LatentscapeError(f"device {device} was asked for, but MPS is not available here; use device='cpu'.", field="device")
        elif dev.type not in ("cpu", "cuda", "mps"):
            raise LatentscapeError(f"device got '{device}'; expected cpu, cuda, cuda:N or mps.", field="device")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, str(dtype))


def auto_dtype(dtype: str | torch.dtype | None, device: torch.device, family: str) -> torch.dtype:
    """fp32 on CPU; half precision on accelerators (bf16 for SD3/FLUX, which overflow in fp16)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        if dtype not in DTYPES:
            raise LatentscapeError(f"dtype got '{dtype}'; accepted: fp32, fp16, bf16.", field="dtype")
        return DTYPES[dtype]
    if device.type == "cpu":
        return torch.float32
    return torch.bfloat16 if family in ("sd3", "flux") else torch.float16


def sniff_file(path: Path) -> str:
    """'safetensors' or 'pickle' by the file's first bytes (never by its extension)."""
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "safetensors"
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def family_of_state_keys(keys: list[str]) -> str:
    """Guess the family of an original-layout checkpoint from its tensor names."""
    text = "\n".join(keys[:20000])
    if "double_blocks." in text or "single_transformer_blocks." in text:
        return "flux"
    if "joint_blocks." in text or "transformer_blocks.0.attn.add_q_proj" in text:
        return "sd3"
    if "conditioner.embedders.1" in text or "add_embedding.linear_1" in text:
        return "sdxl"
    return "sd"


def _model_index(folder: Path) -> dict[str, Any]:
    return read_json_object(folder / "model_index.json", "a diffusers pipeline index (model_index.json)")


def _pipeline_class_of(folder: Path) -> str:
    name = _model_index(folder).get("_class_name")
    if not isinstance(name, str):
        raise LatentscapeError(f"'{folder}/model_index.json' has no '_class_name' string; expected a diffusers pipeline folder.")
    return name


def _missing_components(folder: Path) -> dict[str, None]:
    """Components saved as ``[null, null]`` (e.g. SD3 without T5) must be passed as None to load."""
    return {k: None for k, v in _model_index(folder).items() if isinstance(v, list) and v == [None, None]}


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_folder_weights(folder: Path, allow_pickle: bool) -> None:
    """Before diffusers sees a pipeline folder: every component's ``.safetensors`` header is valid, and a
    component whose only weights are pickles (sniffed by content) is refused unless ``allow_pickle``."""
    for component, entry in _model_index(folder).items():
        sub = folder / component
        if component.startswith("_") or not (isinstance(entry, list) and entry and entry[0] is not None) or not sub.is_dir():
            continue
        files = [f for f in sorted(sub.iterdir()) if f.is_file()]
        safetensors = [f for f in files if f.suffix == ".safetensors"]
        for f in safetensors:
            read_header(f, name=f"weights file '{f}'", bound="max_model_header")
        pickles = [f for f in files if f.suffix in PICKLE_SUFFIXES and sniff_file(f) == "pickle"]
        if pickles and not safetensors and not allow_pickle:
            raise LatentscapeError(
                f"component '{component}' of '{folder}' has only pickle weights ('{pickles[0].name}'), which can run "
                "arbitrary code when loaded; convert them to .safetensors, or pass allow_pickle=True if you trust the source.",
                field="allow_pickle",
            )


def _from_pretrained(cls, source: str, dtype: torch.dtype, family: str, allow_pickle: bool = False, **kwargs):
    extra: dict[str, Any] = _missing_components(Path(source)) if Path(source).is_dir() else {}
    if family == "sd":
        extra.update(safety_checker=None, requires_safety_checker=False)
    if not allow_pickle:
        extra["use_safetensors"] = True  # diffusers and transformers then never fall back to .bin pickles
    return cls.from_pretrained(source, dtype=dtype, **extra, **kwargs)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (HF_HUB_OFFLINE=1 means no)."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _from_hub(cls, source: str, dtype: torch.dtype, family: str, allow_pickle: bool = False):
    """From the local hub cache if it is there, else from the hub (when reachable)."""
    try:
        return _from_pretrained(cls, source, dtype, family, allow_pickle, local_files_only=True)
    except Exception:
        if not hub_reachable():
            raise
        return _from_pretrained(cls, source, dtype, family, allow_pickle)


def _hub_config(source: str) -> dict:
    from diffusers import DiffusionPipeline

    try:
        return DiffusionPipeline.load_config(source, local_files_only=True)
    except Exception:
        if not hub_reachable():
            raise
        return DiffusionPipeline.load_config(source)


def _offline_error(source: str, exc: Exception) -> LatentscapeError:
    return LatentscapeError(
        f"could not fetch model '{source}' from the Hugging Face hub ({type(exc).__name__}): this machine is offline "
        "or the id is wrong and it is not in the local cache; pass a local diffusers folder, a .safetensors file, "
        "or 'embedded'."
    )


def _rgb_preview(path: Path, channels: int) -> tuple[list | None, list | None]:
    """``latent_rgb_factors`` ((channels, 3) numbers) and ``latent_rgb_bias`` (3) from a ``latentscape.json``."""
    meta = read_json_object(path, "latentscape's model notes (an object with latent_rgb_factors)")
    factors, bias = meta.get("latent_rgb_factors"), meta.get("latent_rgb_bias")

    def numbers(row, n):
        return (isinstance(row, list) and len(row) == n
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row))

    if factors is not None and not (isinstance(factors, list) and len(factors) == channels and all(numbers(r, 3) for r in factors)):
        raise LatentscapeError(f"'{path}' has latent_rgb_factors that are not {channels} rows of 3 finite numbers (one row per latent channel).")
    if bias is not None and not numbers(bias, 3):
        raise LatentscapeError(f"'{path}' has a latent_rgb_bias that is not 3 finite numbers.")
    return factors, bias


def load(
    model: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    config: str | os.PathLike | None = None,
    allow_pickle: bool = False,
    offload: bool = False,
    backend: str | None = None,
    vae_batch: int | None = None,
    compile: bool | str = False,
    preview_decoder: str | os.PathLike | bool | None = None,
) -> Family:
    """Load ``model`` and return its family adapter.

    - ``None`` / ``"embedded"``: the model shipped inside latentscape (no download).
    - a folder with ``model_index.json``: any SD1.x/2.x, SDXL, SD3 or FLUX diffusers folder (SD and SDXL folders
      with one ``.safetensors`` per model, the embedded one among them, are built component by component:
      :mod:`latentscape.models.components`, the same pipeline as ``from_pretrained`` makes, in less time).
    - a single checkpoint file (``.safetensors``; pickles only with ``allow_pickle=True``) plus ``config``,
      a diffusers folder (or hub id, when online) describing its architecture.
    - a hub id ``org/name``: passed to diffusers (needs the network or the local cache).

    Device and dtype are automatic (fp32 on CPU, fp16/bf16 on GPU with an fp32 VAE where the VAE needs it)
    and can be overridden. ``offload=True`` moves each component to the GPU only while it runs.
    ``backend`` runs the denoiser with another engine (:mod:`latentscape.models.backends`; default ``torch``, exact).
    GPU fast path (:mod:`latentscape.models.fast`): ``vae_batch`` images per VAE call (default 1 on the CPU, which
    keeps every image's decode the same computation in any job; 8 on accelerators), ``compile=True`` (or a
    ``torch.compile`` mode) compiles the denoiser. ``preview_decoder``: a local TAESD-family folder for live
    previews (:mod:`latentscape.models.preview`; default: the embedded model's own when one is shipped, ``False``: none).
    """
    import diffusers

    from latentscape.models.backends import apply_backend, check_backend
    from latentscape.models.fast import apply_fast_path, check_compile, check_vae_batch

    check_backend(backend)  # an unknown backend or a missing package fails before the model loads
    check_vae_batch(vae_batch)

    name = None if model is None else str(model)
    if name in EMBEDDED_NAMES:
        if not (EMBEDDED_DIR / "model_index.json").is_file():
            raise LatentscapeError(
                "the embedded model is not in this installation (src/latentscape/models/embedded is empty); "
                "pass model=FOLDER (a diffusers folder) or train it with `latentscape train`.",
                field="model",
            )
        source, model_id = str(EMBEDDED_DIR), "embedded"
    else:
        source, model_id = name, name
    path = Path(source)
    dev = auto_device(device)
    compile_mode = check_compile(compile, dev, backend)

    if path.is_dir():
        class_name = _pipeline_class_of(path)
        family = PIPELINE_FAMILIES.get(class_name)
        if family is None:
            raise LatentscapeError(
                f"'{path}' holds a {class_name[:80]}, which latentscape does not support; accepted: SD1.x/2.x, SDXL, SD3 and FLUX pipelines."
            )
        dt = auto_dtype(dtype, dev, family)
        cls = getattr(diffusers, family_classes()[family].pipeline_class)
        check_folder_weights(path, allow_pickle)
        try:
            pipe = build_pipeline(cls, path, _model_index(path), family, dt) or _from_pretrained(cls, str(path), dt, family, allow_pickle)
        except Exception as exc:  # noqa: BLE001 - a damaged folder fails inside diffusers/transformers in many ways
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise LatentscapeError(f"could not load the diffusers folder '{path}' (is it complete?): {first}") from None
        model_id = model_id if model_id == "embedded" else str(path.resolve())
    elif path.is_file():
        try:
            kind = sniff_file(path)
        except OSError as exc:
            raise LatentscapeError(f"model file '{path}' cannot be read ({exc.strerror or type(exc).__name__}).") from None
        if kind == "pickle" and not allow_pickle:
            raise LatentscapeError(
                f"'{path}' is a pickle checkpoint, which can run arbitrary code when loaded; convert it to .safetensors "
                "or pass allow_pickle=True if you trust its source.",
                field="allow_pickle",
            )
        if kind == "unknown":
            raise LatentscapeError(f"'{path}' is neither a .safetensors nor a PyTorch checkpoint file.")
        if config is None:
            raise LatentscapeError(
                f"single-file checkpoint '{path}' needs config=FOLDER: a diffusers folder (or hub id) of the same architecture.",
                field="config",
            )
        if kind == "safetensors":
            header = read_header(path, name=f"checkpoint '{path}'", bound="max_model_header")
            if not header.tensors:
                raise LatentscapeError(f"checkpoint '{path}' holds no tensors; expected a model's weights.")
            family = family_of_state_keys(list(header.tensors))
        else:
            family = "sd"
        if Path(config).is_dir():
            family = PIPELINE_FAMILIES.get(_pipeline_class_of(Path(config)), family)
        dt = auto_dtype(dtype, dev, family)
        cls = getattr(diffusers, family_classes()[family].pipeline_class)
        extra = {"safety_checker": None, "requires_safety_checker": False} if family == "sd" else {}
        try:
            pipe = cls.from_single_file(str(path), config=str(config), dtype=dt, local_files_only=Path(config).is_dir(), **extra)
        except Exception as exc:  # noqa: BLE001 - diffusers meets missing or mis-shaped tensors with many types
            # (SingleFileComponentError, RuntimeError from meta tensors, KeyError, ValueError...): all the file's fault
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise LatentscapeError(f"could not load single file '{path}' with config '{config}' (is it a complete {family} checkpoint?): {detail}") from None
        model_id = str(path.resolve())
        config = str(Path(config).resolve()) if Path(config).exists() else str(config)
    elif HUB_ID.match(source):
        try:
            config_dict = _hub_config(source)
        except Exception as exc:  # hub/network errors come in many types
            raise _offline_error(source, exc) from None
        family = PIPELINE_FAMILIES.get(config_dict.get("_class_name", ""))
        if family is None:
            raise LatentscapeError(f"hub model '{source}' is a {config_dict.get('_class_name')}, which latentscape does not support.")
        dt = auto_dtype(dtype, dev, family)
        cls = getattr(diffusers, family_classes()[family].pipeline_class)
        try:
            pipe = _from_hub(cls, source, dt, family, allow_pickle)
        except Exception as exc:
            raise _offline_error(source, exc) from None
    else:
        raise LatentscapeError(
            f"model '{source}' is not 'embedded', an existing diffusers folder, a .safetensors file or a hub id (org/name)."
        )

    if offload and dev.type == "cuda":
        pipe.enable_model_cpu_offload()
    else:
        pipe.to(dev)
    if dt == torch.float16 and getattr(pipe.vae.config, "force_upcast", False):
        pipe.vae.to(torch.float32)  # SD/SDXL VAEs overflow in fp16
    pipe.set_progress_bar_config(disable=True)

    latent_format = FORMATS[family].from_vae_config(pipe.vae.config)
    extra_file = path / "latentscape.json" if path.is_dir() else None
    if extra_file is not None and extra_file.is_file():
        factors, bias = _rgb_preview(extra_file, latent_format.channels)
        if factors:
            latent_format = latent_format.with_rgb(factors, bias)
    adapter = family_classes()[family](pipe, latent_format, model_id=model_id, device=dev, dtype=dt)
    adapter.load_options = {"config": None if config is None else str(config), "dtype": dtype_name(dt)}
    adapter.model_hash = model_hash(path) if (path.is_dir() or path.is_file()) else None  # A1111's "Model hash"
    apply_backend(adapter, backend)
    apply_fast_path(adapter, vae_batch=vae_batch, compile_mode=compile_mode)
    _attach_preview(adapter, preview_decoder, embedded=model_id == "embedded")
    log.info("loaded %s (%s) on %s as %s", model_id, family, dev, dt)
    return adapter


def _attach_preview(adapter: Family, folder: str | os.PathLike | bool | None, embedded: bool) -> None:
    """Load the preview decoder asked for (the embedded model's own by default; ``False``: none)."""
    from latentscape.models.preview import EMBEDDED_PREVIEW, load_preview_decoder

    if folder is False:
        return
    if folder is None or folder is True:
        if not (embedded and (EMBEDDED_PREVIEW / "config.json").is_file()):
            if folder is True:
                raise LatentscapeError(f"preview_decoder=True asks for the embedded model's distilled decoder ({EMBEDDED_PREVIEW}), "
                                       "which this model or installation does not have; pass a local TAESD-family folder.")
            return
        folder = EMBEDDED_PREVIEW
    adapter.preview_decoder = load_preview_decoder(folder, family=adapter.name, channels=adapter.latent_format.channels,
                                                   device=adapter.device, dtype=adapter.dtype)
