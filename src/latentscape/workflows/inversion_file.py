"""Inversion files and the inversion cache: one ``.safetensors`` layout for both, validated on every read.

A file holds the inversion's starting noise under ``latents`` (so :func:`latentscape.io.latents.load_latents`
reads its shape and family like any latent file), ``image_latents`` (the encoded image, for the VAE
ceiling), and for ``exact`` the per-step noise ``step_noise`` (steps, B, C, h, w) with ``step_scales``
(steps,). Metadata: the :class:`~latentscape.io.latents.LatentMeta` fields (``space`` = ``"inversion"``)
and ``inversion``, a JSON object with method, sampler, steps, prompt, negative, CFG, refine, seed and the
cache key. Files come from outside, so a read checks names, dtypes, shapes, finiteness and the key.

The cache keys an inversion by (image pixels' SHA-256, model fingerprint, method, steps, refine, prompt,
negative, CFG, seed): in memory per process and on disk under ``$LATENTSCAPE_INVERSION_CACHE`` (default
``~/.cache/latentscape/inversions``), so a path through the same image twice, ``--resume`` and replays
invert once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import weakref
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch

from latentscape.errors import LatentscapeError
from latentscape.inversion import METHODS, Inversion
from latentscape.io.files import atomic_path
from latentscape.io.latents import LatentMeta
from latentscape.models.family import Family
from latentscape.sampling import StepNoise

log = logging.getLogger(__name__)

SPACE = "inversion"
FORMAT = 1
MEMORY_ITEMS = 32
_FINGERPRINTS: "weakref.WeakKeyDictionary[Family, str]" = weakref.WeakKeyDictionary()


def default_cache_dir() -> Path:
    """``$LATENTSCAPE_INVERSION_CACHE``, else ``$LATENTSCAPE_CACHE/inversions``, else ``~/.cache/latentscape/inversions``."""
    explicit = os.environ.get("LATENTSCAPE_INVERSION_CACHE")
    if explicit:
        return Path(explicit)
    root = os.environ.get("LATENTSCAPE_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "latentscape") / "inversions"


def model_fingerprint(model: Family) -> str:
    """A short hash of the model's id, dtype and a sample of every weight tensor (first 64 values and shape
    of each): another checkpoint under the same name gets other keys. Computed once per loaded model."""
    if model in _FINGERPRINTS:
        return _FINGERPRINTS[model]
    h = hashlib.sha256(f"{model.name}|{model.model_id}|{model.dtype}".encode())
    for name in sorted(k for k, v in vars(model.pipe).items() if isinstance(v, torch.nn.Module)):
        for key, tensor in getattr(model.pipe, name).state_dict().items():
            h.update(f"{name}.{key}{tuple(tensor.shape)}".encode())
            h.update(tensor.detach().flatten()[:64].float().cpu().numpy().tobytes())
    _FINGERPRINTS[model] = h.hexdigest()[:16]
    return _FINGERPRINTS[model]


def image_sha256(pixels: torch.Tensor) -> str:
    """SHA-256 of the (fitted) image pixels as the model sees them, shape included."""
    h = hashlib.sha256(str(tuple(pixels.shape)).encode())
    h.update(pixels.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_key(image_hash: str, model: Family, params: Mapping[str, Any]) -> str:
    fields = {"format": FORMAT, "image": image_hash, "model": model_fingerprint(model), **params}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


# ------------------------------------------------------------------------------------------ the file layout
def save_inversion(path: str | os.PathLike, inversion: Inversion, image_latents: torch.Tensor, meta: LatentMeta,
                   info: Mapping[str, Any]) -> Path:
    """Write an inversion file atomically (nothing half-written on failure)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise LatentscapeError(f"inversion output '{path}' must end in .safetensors.")
    tensors = {"latents": inversion.noise, "image_latents": image_latents}
    if inversion.step_noise is not None:
        tensors["step_noise"] = inversion.step_noise.noise
        tensors["step_scales"] = inversion.step_noise.scales
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}
    metadata = {k: json.dumps(v) for k, v in asdict(meta).items()}
    record = {"method": inversion.method, "sampler": inversion.sampler, "steps": inversion.steps,
              "cfg": inversion.guidance_scale, "embedded_guidance": inversion.embedded_guidance,
              "refine": inversion.refine, "seed": inversion.seed, **info}
    if inversion.step_seed is not None:
        record["step_seed"] = inversion.step_seed
    metadata[SPACE] = json.dumps(record)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def is_inversion_file(path: str | os.PathLike) -> bool:
    """Whether a readable ``.safetensors`` file carries inversion metadata (no tensors are read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return SPACE in (f.metadata() or {})
    except Exception:  # not ours to judge here: the caller's reader gives the sentence
        return False


def load_inversion(path: str | os.PathLike) -> tuple[Inversion, torch.Tensor, LatentMeta, dict[str, Any]]:
    """Read and validate an inversion file -> (inversion, image latents, latent meta, inversion record)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise LatentscapeError(f"inversion file '{path}' does not exist; expected a .safetensors file written by `latentscape invert`.")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            names = set(f.keys())
            tensors = {k: f.get_tensor(k) for k in names & {"latents", "image_latents", "step_noise", "step_scales"}}
    except Exception:
        raise LatentscapeError(f"'{path}' is not a readable .safetensors inversion file.") from None
    bad = f"'{path}' is not a valid inversion file"
    try:
        record = json.loads(raw[SPACE])
        meta = LatentMeta(**{k: json.loads(v) for k, v in raw.items() if k in LatentMeta.__dataclass_fields__})
    except (KeyError, TypeError, ValueError):
        raise LatentscapeError(f"{bad}: it lacks latentscape inversion metadata; expected a file written by `latentscape invert`.") from None
    if not isinstance(record, dict) or record.get("method") not in METHODS:
        raise LatentscapeError(f"{bad}: its method is not one of {', '.join(METHODS)}.")
    _check_record(record, bad)
    noise, image = tensors.get("latents"), tensors.get("image_latents")
    for name, t in (("latents", noise), ("image_latents", image)):
        if t is None or t.dtype != torch.float32 or t.ndim != 4 or not bool(torch.isfinite(t).all()):
            raise LatentscapeError(f"{bad}: '{name}' must be a finite float32 (B, C, h, w) tensor.")
    if image.shape != noise.shape:
        raise LatentscapeError(f"{bad}: 'image_latents' {tuple(image.shape)} and 'latents' {tuple(noise.shape)} differ in shape.")
    step_noise = None
    if record["method"] == "exact":
        z, s = tensors.get("step_noise"), tensors.get("step_scales")
        steps = record["steps"]
        if z is None or s is None or z.dtype != torch.float32 or s.dtype != torch.float32:
            raise LatentscapeError(f"{bad}: an exact inversion needs float32 'step_noise' and 'step_scales' tensors.")
        evaluations = len(s) if s.ndim == 1 else -1  # a second-order sampler (heun) steps 2·steps − 1 times
        if tuple(z.shape) != (evaluations, *noise.shape) or evaluations not in (steps, 2 * steps - 1):
            raise LatentscapeError(f"{bad}: 'step_noise' {tuple(z.shape)} / 'step_scales' {tuple(s.shape)} do not match {steps} steps of {tuple(noise.shape)}.")
        if not (bool(torch.isfinite(z).all()) and bool(torch.isfinite(s).all()) and bool((s > 0).all())):
            raise LatentscapeError(f"{bad}: its step noise must be finite with positive scales.")
        step_noise = StepNoise(noise=z, scales=s)
    inversion = Inversion(noise=noise, method=record["method"], sampler=record["sampler"], steps=record["steps"],
                          guidance_scale=float(record["cfg"]), embedded_guidance=record.get("embedded_guidance"),
                          refine=int(record.get("refine", 0)), seed=int(record.get("seed", 0)), step_noise=step_noise,
                          step_seed=record.get("step_seed"))
    return inversion, image, meta, record


def _known_sampler(name: Any) -> bool:
    from latentscape.samplers import resolve_sampler

    for flow in (False, True):
        try:
            resolve_sampler(name, flow)
            return isinstance(name, str)
        except (LatentscapeError, KeyError, TypeError, AttributeError):
            pass
    return False


def _check_record(record: dict, bad: str) -> None:
    if not (isinstance(record.get("steps"), int) and 1 <= record["steps"] <= 1000):
        raise LatentscapeError(f"{bad}: its steps must be a whole number from 1 to 1000.")
    if record.get("sampler") not in ("ddim", "flow_euler") and not (record.get("method") == "exact" and _known_sampler(record.get("sampler"))):
        raise LatentscapeError(f"{bad}: its sampler must be ddim or flow_euler (an exact inversion: any latentscape sampler).")
    step_seed = record.get("step_seed")
    if step_seed is not None and not (isinstance(step_seed, int) and not isinstance(step_seed, bool) and 0 <= step_seed < 2**64):
        raise LatentscapeError(f"{bad}: its step_seed must be a whole number >= 0.")
    if not isinstance(record.get("cfg"), (int, float)) or not record["cfg"] >= 0:
        raise LatentscapeError(f"{bad}: its cfg must be a number >= 0.")
    for name in ("prompt", "negative"):
        if not isinstance(record.get(name, ""), str):
            raise LatentscapeError(f"{bad}: its {name} must be text.")
    guidance = record.get("embedded_guidance")
    if guidance is not None and not isinstance(guidance, (int, float)):
        raise LatentscapeError(f"{bad}: its embedded_guidance must be a number.")


# --------------------------------------------------------------------------------------------------- cache
class InversionCache:
    """In memory (the last ``MEMORY_ITEMS``) and on disk (``folder``, None = memory only)."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder is not None else None
        self.memory: OrderedDict[str, tuple[Inversion, torch.Tensor]] = OrderedDict()
        self.hits = {"memory": 0, "disk": 0}

    def get(self, key: str) -> tuple[Inversion, torch.Tensor] | None:
        if key in self.memory:
            self.memory.move_to_end(key)
            self.hits["memory"] += 1
            return self.memory[key]
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            inversion, image, _, record = load_inversion(path)
            if record.get("key") != key:
                raise LatentscapeError(f"'{path}' holds the inversion for key {record.get('key')!r}, not {key!r}")
        except LatentscapeError as exc:  # a stale or tampered entry: invert again and overwrite it
            log.warning("ignoring cached inversion: %s", exc)
            return None
        self.hits["disk"] += 1
        self._remember(key, inversion, image)
        return inversion, image

    def put(self, key: str, inversion: Inversion, image: torch.Tensor, meta: LatentMeta, info: Mapping[str, Any]) -> None:
        self._remember(key, inversion, image)
        path = self._path(key)
        if path is None:
            return
        try:
            save_inversion(path, inversion, image, meta, {**info, "key": key})
        except OSError as exc:  # a read-only cache folder must not fail the job
            log.warning("could not write the inversion cache at %s: %s", path, exc)

    def _remember(self, key: str, inversion: Inversion, image: torch.Tensor) -> None:
        self.memory[key] = (inversion, image)
        self.memory.move_to_end(key)
        while len(self.memory) > MEMORY_ITEMS:
            self.memory.popitem(last=False)

    def _path(self, key: str) -> Path | None:
        return self.folder / f"{key}.safetensors" if self.folder is not None else None


_DEFAULT: dict[Path, InversionCache] = {}


def default_cache() -> InversionCache:
    """The process-wide cache for the current cache folder (re-read from the environment on each call)."""
    folder = default_cache_dir()
    if folder not in _DEFAULT:
        _DEFAULT[folder] = InversionCache(folder)
    return _DEFAULT[folder]
