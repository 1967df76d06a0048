"""The GPU fast path of a loaded model: batched VAE calls and an optionally ``torch.compile``'d denoiser.

- ``vae_batch``: images per VAE encode/decode call. On the CPU the default stays 1, so every image's decode is
  the same computation whatever job it is in (the exact one-hot / corner / endpoint claims rest on it); on an
  accelerator the default is :data:`GPU_VAE_BATCH`, and a chunk that runs out of memory is retried in halves
  (:meth:`latentscape.models.family.Family.decode`).
- ``compile``: ``torch.compile`` of the denoiser (a mode: ``default``, ``reduce-overhead`` = CUDA graphs for the
  fixed shapes of a job, ``max-autotune``, ``max-autotune-no-cudagraphs``; ``True`` = ``default``). On CUDA the
  denoiser is also put in ``channels_last`` memory format first, as diffusers recommends for compiled UNets.
  Compiling happens lazily at the first denoiser call of each input shape; results match the eager denoiser
  to rounding, not bit for bit.

Attention runs through PyTorch's ``scaled_dot_product_attention`` (diffusers' default processors on torch 2),
and half-precision loads keep an fp32 VAE where the VAE overflows in fp16 (:func:`latentscape.models.load.load`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import torch

from latentscape.errors import LatentscapeError

GPU_VAE_BATCH = 8
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
MAX_VAE_BATCH = 1024


def check_vae_batch(vae_batch) -> None:
    """``None`` or a whole number 1..1024; one sentence otherwise."""
    if vae_batch is None:
        return
    if isinstance(vae_batch, bool) or not isinstance(vae_batch, int) or not 1 <= vae_batch <= MAX_VAE_BATCH:
        raise LatentscapeError(f"vae_batch got {str(vae_batch)[:40]!r}; accepted: a whole number from 1 to {MAX_VAE_BATCH} "
                               "(images per VAE call), or None for the device's default.")


def _cpu_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU, if there is one."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def check_compile(compile, device: torch.device, backend: str | None) -> str | None:
    """The ``torch.compile`` mode to use (``None``: no compile), or one sentence saying why it cannot run here
    and what to do instead."""
    if compile is None or compile is False:
        return None
    mode = "default" if compile is True else compile
    if not isinstance(mode, str) or mode not in COMPILE_MODES:
        raise LatentscapeError(f"compile got {str(compile)[:40]!r}; accepted: true/false or a torch.compile mode "
                               f"({', '.join(COMPILE_MODES)}).", field="compile")
    if backend not in (None, "", "torch"):
        raise LatentscapeError(f"compile compiles the torch denoiser, but backend '{backend}' replaces it; "
                               "drop compile=True or use the torch backend.", field="compile")
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            raise LatentscapeError("compile on CUDA needs the triton package (torch.compile generates its GPU kernels "
                                   "with it): pip install triton, or drop compile=True.", field="compile")
    elif device.type == "cpu":
        if mode == "reduce-overhead":
            raise LatentscapeError("compile='reduce-overhead' records CUDA graphs, which need a CUDA device; "
                                   "on the CPU use compile='default'.", field="compile")
        if _cpu_compiler() is None:
            raise LatentscapeError("compile on the CPU needs a C++ compiler (torch.compile builds its CPU kernels in "
                                   "C++), and none was found (g++, c++, clang++ or $CXX): install one, or drop compile=True.",
                                   field="compile")
    else:
        raise LatentscapeError(f"compile is supported on cuda and cpu devices, not {device.type}; drop compile=True "
                               "(the model runs eagerly there).", field="compile")
    return mode


def apply_fast_path(adapter, *, vae_batch: int | None = None, compile_mode: str | None = None) -> None:
    """Set ``adapter``'s VAE batch and compile its denoiser (both already checked); record what differs from
    the exact CPU defaults in ``adapter.load_options``."""
    adapter.vae_batch = vae_batch if vae_batch is not None else (1 if adapter.device.type == "cpu" else GPU_VAE_BATCH)
    if adapter.vae_batch != 1:
        adapter.load_options["vae_batch"] = adapter.vae_batch
    if compile_mode is None:
        return
    denoiser = adapter.denoiser
    if adapter.device.type == "cuda":
        denoiser.to(memory_format=torch.channels_last)
    denoiser.compile(mode=compile_mode)  # in place: the module keeps its class, config and weights
    adapter.load_options["compile"] = compile_mode
