"""``generate --from FILE``: start a render from a latent file instead of from seeded noise.

Two kinds of file, told apart by their header:

- an **inversion** (``latentscape invert``): its stored noise (and, for ``exact``, per-step noise) replayed
  with its own sampler and steps. With the caption and CFG it was inverted with, the render is the image
  again (``exact``: its VAE round trip to float error); with another prompt or CFG it is inversion-based
  editing: the structure comes from the image, the content from the new prompt. Prompt editing
  (``[caption:new prompt:N]``) keeps the first N steps on the original caption, so more of the image stays.
  The seed plays no part (the noise is stored) and ``strength`` is not used: every step is replayed.
- a **plain latent file** (``latentscape encode``): img2img in latent space, the latents noised to
  ``strength`` with the seed's noise and denoised under the prompt (0 keeps them: their VAE decode).

Files come from outside: :func:`read_start_header` checks the header (sizes, names, dtypes, shapes, the
metadata's types) before any tensor is read, and the model check names what the file was made with.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentscape.errors import LatentscapeError
from latentscape.limits import check_latent_values, check_pixels
from latentscape.safetensors_header import read_header

INVERSION_KEY = "inversion"  # the metadata key an inversion file carries (workflows/inversion_file.py)
INVERSION_METHODS = ("ddim", "flow", "exact")
INVERSION_SAMPLERS = ("ddim", "flow_euler")


@dataclass(frozen=True)
class StartHeader:
    """What a latent or inversion file's header says (nothing of its tensors has been read)."""

    path: str
    kind: str  # "inversion" or "latents"
    family: str
    model: str
    channels: int
    scale: float
    shift: float
    width: int
    height: int
    shape: tuple[int, int, int, int]  # (B, C, h, w) of the starting latents
    record: dict[str, Any] = field(default_factory=dict)  # inversion: method, sampler, steps, cfg, prompt, ...

    @property
    def items(self) -> int:
        return self.shape[0]

    def made_with(self) -> str:
        """How an inversion was made, as one phrase (``an exact inversion with 50 ddim steps``)."""
        r = self.record
        return f"an {r['method']} inversion with {r['steps']} {r['sampler']} steps"


def _bad(path: str, why: str) -> LatentscapeError:
    return LatentscapeError(f"'{path}' is not a valid latent or inversion file: {why}")


def read_start_header(path: str | os.PathLike) -> StartHeader:
    """Check a ``--from`` file's header (torch-free, no tensor read) and say what it holds."""
    shown = str(path)
    if not Path(path).is_file():
        raise LatentscapeError(f"from_latents '{shown}' does not exist; expected a .safetensors file written by "
                               "`latentscape encode` or `latentscape invert`.", field="from_latents")
    header = read_header(path, name=f"latent file '{shown}'", bound="max_latent_header")
    tensors, raw = header.tensors, header.metadata
    latents = tensors.get("latents")
    if latents is None:
        raise _bad(shown, "it has no 'latents' tensor.")
    if latents.dtype not in ("F16", "BF16", "F32", "F64") or len(latents.shape) != 4 or 0 in latents.shape:
        raise _bad(shown, f"its 'latents' are {latents.dtype} of shape {latents.shape}; expected a float (B, C, h, w) tensor.")
    check_latent_values(latents.numel, name=f"latent file '{shown}'")
    meta = {}
    for key in ("family", "model", "channels", "scale", "shift", "width", "height", "space"):
        try:
            meta[key] = json.loads(raw[key])
        except KeyError:
            raise _bad(shown, f"it lacks latentscape metadata ('{key}'); expected a file written by `latentscape encode` or `invert`.") from None
        except (ValueError, RecursionError):
            raise _bad(shown, f"its metadata '{key}' is not JSON.") from None
    _check_meta(shown, meta, latents.shape)
    kind = "inversion" if INVERSION_KEY in raw else "latents"
    record: dict[str, Any] = {}
    if kind == "inversion":
        record = _check_record(shown, raw[INVERSION_KEY], tensors, tuple(latents.shape))
    elif meta["space"] != "model":
        raise _bad(shown, f"its latents are in space {str(meta['space'])[:20]!r}; expected 'model'.")
    return StartHeader(path=shown, kind=kind, family=meta["family"], model=meta["model"], channels=meta["channels"],
                       scale=float(meta["scale"]), shift=float(meta["shift"]), width=meta["width"], height=meta["height"],
                       shape=tuple(latents.shape), record=record)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_meta(shown: str, meta: dict[str, Any], shape: tuple[int, ...]) -> None:
    if not (isinstance(meta["family"], str) and 0 < len(meta["family"]) <= 64 and isinstance(meta["model"], str) and len(meta["model"]) <= 4096):
        raise _bad(shown, "its family and model must be short text.")
    if not (_is_int(meta["channels"]) and meta["channels"] == shape[1]):
        raise _bad(shown, f"its metadata says {meta['channels']!r} channels but its latents have {shape[1]}.")
    if not (_is_number(meta["scale"]) and meta["scale"] > 0 and _is_number(meta["shift"])):
        raise _bad(shown, "its scale must be a number > 0 and its shift a number.")
    if not (_is_int(meta["width"]) and _is_int(meta["height"]) and meta["width"] >= 1 and meta["height"] >= 1):
        raise _bad(shown, "its width and height must be whole numbers >= 1.")
    if meta["width"] % shape[3] or meta["height"] % shape[2] or meta["width"] // shape[3] != meta["height"] // shape[2]:
        raise _bad(shown, f"its size {meta['width']}x{meta['height']} does not match latents of {shape[3]}x{shape[2]}.")
    check_pixels(meta["width"], meta["height"], family=meta["family"], what=f"latent file '{shown}' decodes to")


def _check_record(shown: str, text: str, tensors: dict, shape: tuple[int, ...]) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        raise _bad(shown, "its inversion record is not JSON.") from None
    if not isinstance(record, dict):
        raise _bad(shown, "its inversion record is not an object.")
    if record.get("method") not in INVERSION_METHODS or record.get("sampler") not in INVERSION_SAMPLERS:
        raise _bad(shown, f"its method must be one of {', '.join(INVERSION_METHODS)} and its sampler ddim or flow_euler.")
    if not (_is_int(record.get("steps")) and 1 <= record["steps"] <= 1000):
        raise _bad(shown, "its steps must be a whole number from 1 to 1000.")
    if not (_is_number(record.get("cfg")) and record["cfg"] >= 0):
        raise _bad(shown, "its cfg must be a number >= 0.")
    if not all(isinstance(record.get(k, ""), str) for k in ("prompt", "negative")):
        raise _bad(shown, "its prompt and negative must be text.")
    if record.get("embedded_guidance") is not None and not _is_number(record["embedded_guidance"]):
        raise _bad(shown, "its embedded_guidance must be a number.")
    for name in ("latents", "image_latents"):
        t = tensors.get(name)
        if t is None or t.dtype != "F32" or tuple(t.shape) != shape:
            raise _bad(shown, f"an inversion needs float32 '{name}' of shape {shape}.")
    if record["method"] == "exact":
        steps = record["steps"]
        z, s = tensors.get("step_noise"), tensors.get("step_scales")
        if z is None or s is None or z.dtype != "F32" or s.dtype != "F32" or tuple(z.shape) != (steps, *shape) or tuple(s.shape) != (steps,):
            raise _bad(shown, f"an exact inversion needs float32 'step_noise' ({steps}, {', '.join(map(str, shape))}) and 'step_scales' ({steps},).")
        check_latent_values(z.numel, name=f"the step noise of '{shown}'")
    return {"prompt": "", "negative": "", **record}


def check_model(head: StartHeader, model) -> None:
    """One sentence when the file was made for another family or latent format than ``model``."""
    lf = model.latent_format
    same = head.family == model.name and head.channels == lf.channels and abs(head.scale - lf.scale) < 1e-6 and abs(head.shift - lf.shift) < 1e-6
    if not same:
        what = "an inversion" if head.kind == "inversion" else "latents"
        raise LatentscapeError(
            f"the file '{head.path}' holds {what} of a {head.family} model ('{head.model}', {head.channels} channels, scale "
            f"{head.scale:g}), but model '{model.model_id}' is {model.name} ({lf.channels} channels, scale {lf.scale:g}); "
            f"use model='{head.model}' or a file made with this model.", field="model")
    down = lf.downscale
    if (head.shape[2] * down, head.shape[3] * down) != (head.height, head.width):
        raise _bad(head.path, f"its size {head.width}x{head.height} does not match latents of {head.shape[3]}x{head.shape[2]} "
                              f"at this model's downscale {down}.")


def load_start(head: StartHeader):
    """The tensors (after the header checks): the model-space latents (B, C, h, w), or the
    :class:`~latentscape.inversion.Inversion`."""
    if head.kind == "inversion":
        from latentscape.workflows.inversion_file import load_inversion

        return load_inversion(head.path)[0]
    from latentscape.io.latents import load_latents

    return load_latents(head.path)[0].float()
