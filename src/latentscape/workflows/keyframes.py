"""Points in latent space that users name: a prompt, a seed, an image, or a prompt with a seed.

Command-line syntax (one argument each):
- ``"grinning face, google style"``   a prompt (noise from the default seed)
- ``seed:42``                         a seed (conditioning from the nearest prompt)
- ``"cat face, twitter style@42"``    a prompt with its own seed (``PROMPT@SEED``)
- ``image:path.png`` or a path (see :func:`looks_like_path`): an image (VAE-encoded); a path that does not
  exist is an error, never a prompt
- ``prompt:TEXT``                     a prompt, whatever it looks like
- a JSON file (``--keyframes path.json``, :func:`load_keyframe_document`): a list of keyframes (objects with
  ``prompt``, ``seed``, ``image``, ``cfg`` and an optional ``frame`` pin, or strings), or Deforum's frame map
  ``{"0": "...", "48": {...}}`` pinning each keyframe to its frame; either alone or as ``"keyframes"`` of an
  object that may also hold ``"schedules"`` (value schedules over frames) and ``"seed_behavior"``
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from latentscape.core.seeds import SEED_LIMIT
from latentscape.errors import LatentscapeError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
_SEED = re.compile(r"^seed:(-?\d+)$", re.IGNORECASE)
_PROMPT_SEED = re.compile(r"^(?P<prompt>.*\S)\s*@\s*(?P<seed>\d+)$", re.DOTALL)
KEYFRAME_HELP = ("a prompt, seed:N, PROMPT@SEED, prompt:TEXT, image:PATH or an image file path")


@dataclass(frozen=True)
class Keyframe:
    """A named point: any of prompt / seed / image; what is missing is filled by :func:`resolve`."""

    prompt: str | None = None
    seed: int | None = None
    image: str | None = None
    cfg: float | None = None  # optional per-keyframe CFG (interpolated along a path)
    frame: int | None = None  # morph: the frame this keyframe is pinned to (None: placed by the path's timing)

    @property
    def kind(self) -> str:
        if self.image is not None:
            return "image"
        if self.prompt is not None and self.seed is not None:
            return "prompt+seed"
        return "prompt" if self.prompt is not None else "seed"

    def label(self) -> str:
        if self.image is not None:
            return Path(self.image).name
        parts = [self.prompt or ""] + ([f"seed {self.seed}"] if self.seed is not None else [])
        return " @ ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def check_seed(seed: int | str, where: str) -> int:
    """``seed`` (an int or its digits) if a torch generator takes it (0 to 2**64 - 1) or it is -1 (random);
    else a one-sentence error. Overlong digit strings are refused before ``int()`` (which caps digits)."""
    if isinstance(seed, str) and len(seed.lstrip("-").lstrip("0")) > len(str(SEED_LIMIT)):
        shown = seed if len(seed) <= 40 else f"{seed[:12]}...{seed[-4:]} ({len(seed)} digits)"
        raise LatentscapeError(f"{where}: seed {shown} is out of range; expected 0 to {SEED_LIMIT}, or -1 for random.")
    value = int(seed)
    if value != -1 and not 0 <= value <= SEED_LIMIT:
        raise LatentscapeError(f"{where}: seed {value} is out of range; expected 0 to {SEED_LIMIT}, or -1 for random.")
    return value


def parse_keyframe(text: str) -> Keyframe:
    """One command-line argument -> a :class:`Keyframe` (see the module docstring for the syntax)."""
    if not isinstance(text, str) or not text.strip():
        raise LatentscapeError(f"keyframe '{text}' is empty; expected {KEYFRAME_HELP}.")
    text = text.strip()
    if m := _SEED.match(text):
        return Keyframe(seed=check_seed(m.group(1), f"keyframe '{text}'"))
    if text.lower().startswith("image:"):
        return Keyframe(image=text[len("image:"):])
    if text.lower().startswith("png:"):  # a PNG's generation settings (prompt, seed, cfg), not its pixels
        from latentscape.workflows.a1111_replay import keyframe_from_png

        return keyframe_from_png(text[len("png:"):])
    if text.lower().startswith("prompt:"):
        prompt = text[len("prompt:"):].strip()
        if not prompt:
            raise LatentscapeError(f"keyframe '{text}' is an empty prompt; expected {KEYFRAME_HELP}.")
        return Keyframe(prompt=prompt)
    if looks_like_path(text):
        if not Path(text).is_file():
            what = "is a folder" if Path(text).is_dir() else "does not exist"
            raise LatentscapeError(f"keyframe '{text}' looks like an image path but {what}; give an existing image file, "
                                   f"or write prompt:{text} to use the text as a prompt.")
        return Keyframe(image=text)
    if m := _PROMPT_SEED.match(text):
        return Keyframe(prompt=m.group("prompt"), seed=check_seed(m.group("seed"), f"keyframe '{text}'"))
    if re.match(r"^[a-z]+:\S", text, re.IGNORECASE) and not text.lower().startswith(("seed:", "image:")) and " " not in text.split(":", 1)[0]:
        kind = text.split(":", 1)[0]
        raise LatentscapeError(f"keyframe '{text}' has an unknown kind '{kind}:'; expected {KEYFRAME_HELP}.")
    return Keyframe(prompt=text)


def looks_like_path(text: str) -> bool:
    """The rule that tells an image path from a prompt: the text ends in an image extension (``cat.png``),
    or names an existing file, or has a path separator, no whitespace and an existing folder before its last
    separator (``shots/cat``). So "AC/DC logo" and "AC/DC" (no folder AC) stay prompts; ``prompt:TEXT``
    forces a prompt."""
    if text.lower().endswith(IMAGE_EXTENSIONS) or Path(text).is_file():
        return True
    separators = {"/", os.sep}
    if not any(sep in text for sep in separators) or any(c.isspace() for c in text):
        return False
    parent = Path(text).parent
    return str(parent) not in ("", ".") and parent.is_dir()


def keyframe_from_dict(item: Any, where: str, *, pinned: bool = False) -> Keyframe:
    """A keyframe from a JSON string or object; ``pinned`` (morph paths) also accepts a ``frame`` pin."""
    if isinstance(item, str):
        return parse_keyframe(item)
    if not isinstance(item, dict):
        raise LatentscapeError(f"{where} is a {type(item).__name__}; expected an object with prompt/seed/image/cfg or a string.")
    accepted = ("prompt", "seed", "image", "cfg") + (("frame",) if pinned else ())
    unknown = sorted(set(item) - set(accepted) - ({"frame"} if item.get("frame") is None else set()))  # recipes write frame: null
    if unknown:
        raise LatentscapeError(f"{where} has unknown keys {', '.join(unknown)}; accepted: {', '.join(accepted)}.")
    if not any(item.get(k) is not None for k in ("prompt", "seed", "image")):
        raise LatentscapeError(f"{where} names no prompt, seed or image.")
    try:
        keyframe = Keyframe(
            prompt=None if item.get("prompt") is None else str(item["prompt"]),
            seed=None if item.get("seed") is None else int(item["seed"]),
            image=None if item.get("image") is None else str(item["image"]),
            cfg=None if item.get("cfg") is None else float(item["cfg"]),
        )
    except (TypeError, ValueError, OverflowError):
        raise LatentscapeError(f"{where} has a seed or cfg that is not a number.") from None
    if keyframe.seed is not None:
        check_seed(keyframe.seed, where)
    if item.get("frame") is not None:
        keyframe = replace(keyframe, frame=check_frame(item["frame"], where))
    return keyframe


def check_frame(value: Any, where: str) -> int:
    """A frame pin: a whole number from 0 (JSON ``4.0`` is 4); else a one-sentence error."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"\d+", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LatentscapeError(f"{where} has frame {json.dumps(value) if isinstance(value, (str, bool, float)) or value is None else value}; "
                               "frames are whole numbers from 0.")
    return value


@dataclass(frozen=True)
class KeyframeDocument:
    """A keyframe file: the keyframes (with any frame pins), value schedules as given, the seed behaviour."""

    keyframes: list[Keyframe]
    schedules: dict[str, Any]
    seed_behavior: str | None = None


def load_keyframe_file(path: str | os.PathLike) -> list[Keyframe]:
    """The keyframes of a keyframe file (see :func:`load_keyframe_document`)."""
    return load_keyframe_document(path).keyframes


DOCUMENT_KEYS = ("keyframes", "schedules", "seed_behavior")


def load_keyframe_document(path: str | os.PathLike) -> KeyframeDocument:
    """A JSON list of keyframes (objects or strings, each may carry a ``frame`` pin), a frame map
    ``{"0": KEYFRAME, "48": KEYFRAME}`` (Deforum's prompts: every keyframe pinned to its frame), or an object
    ``{"keyframes": LIST-OR-MAP, "schedules": {...}, "seed_behavior": "..."}``. Duplicate, decreasing or
    non-integer frame keys are refused; image paths are relative to the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(), object_pairs_hook=_no_duplicate_keys)
    except OSError:
        raise LatentscapeError(f"keyframe file '{path}' cannot be read.") from None
    except _DuplicateKey as exc:
        raise LatentscapeError(f"keyframe file '{path}' gives the key \"{exc.args[0]}\" twice in one object; each frame (and key) may appear once.") from None
    except (ValueError, RecursionError) as exc:
        raise LatentscapeError(f"keyframe file '{path}' is not valid JSON ({exc}).") from None
    schedules, behavior = {}, None
    if isinstance(data, dict) and "keyframes" in data:
        unknown = sorted(set(data) - set(DOCUMENT_KEYS))
        if unknown:
            raise LatentscapeError(f"keyframe file '{path}' has unknown keys {', '.join(unknown)}; accepted: {', '.join(DOCUMENT_KEYS)}.")
        schedules = data.get("schedules") or {}
        if not isinstance(schedules, dict):
            raise LatentscapeError(f"keyframe file '{path}': schedules is a {type(schedules).__name__}; expected an object of name: schedule.")
        behavior = data.get("seed_behavior")
        if behavior is not None and not isinstance(behavior, str):
            raise LatentscapeError(f"keyframe file '{path}': seed_behavior is a {type(behavior).__name__}; expected a name.")
        data = data["keyframes"]
    if isinstance(data, dict):
        keyframes = _frame_map(data, path)
    elif isinstance(data, list):
        keyframes = [keyframe_from_dict(item, f"keyframe {i + 1} in '{path}'", pinned=True) for i, item in enumerate(data)]
    else:
        raise LatentscapeError(f"keyframe file '{path}' must hold a JSON list of keyframes, a {{\"FRAME\": keyframe}} map "
                               "or {\"keyframes\": ...}.")
    base = path.parent
    keyframes = [replace(k, image=str(base / k.image)) if k.image and not Path(k.image).is_absolute() else k for k in keyframes]
    return KeyframeDocument(keyframes, dict(schedules), behavior)


def _frame_map(data: dict[str, Any], path: Path) -> list[Keyframe]:
    """``{"0": KEYFRAME, "48": KEYFRAME}`` -> keyframes pinned to those frames, in the file's order."""
    out: list[Keyframe] = []
    for key, item in data.items():
        where = f"keyframe \"{key}\" in '{path}'"
        if not re.fullmatch(r"\s*\d+\s*", key):
            raise LatentscapeError(f"keyframe file '{path}' has the key \"{key[:40]}\"; a frame map's keys are whole frame numbers "
                                   "from 0 (or write {\"keyframes\": ..., \"schedules\": ...}).")
        frame = int(key)
        keyframe = keyframe_from_dict(item, where, pinned=True)
        if keyframe.frame is not None and keyframe.frame != frame:
            raise LatentscapeError(f"{where} also says frame {keyframe.frame}; give the frame once.")
        if out and frame == out[-1].frame:
            raise LatentscapeError(f"keyframe file '{path}' gives frame {frame} twice; each frame holds one keyframe.")
        if out and frame < out[-1].frame:  # type: ignore[operator]
            raise LatentscapeError(f"keyframe file '{path}' lists frame {frame} after frame {out[-1].frame}; list the frames in increasing order.")
        out.append(replace(keyframe, frame=frame))
    return out


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def resolve(keyframes: Sequence[Keyframe], default_prompt: str | None, default_seed: int) -> list[Keyframe]:
    """Fill each keyframe's missing prompt and seed.

    A missing prompt comes from the nearest earlier keyframe with one (else the nearest later one, else
    ``default_prompt``, else ""); a missing seed is ``default_seed``. Images keep their prompt empty unless
    given one (then it steers the image).
    """
    prompts = [k.prompt for k in keyframes]
    out = []
    for i, k in enumerate(keyframes):
        prompt = k.prompt
        if prompt is None and k.image is None:
            earlier = [p for p in prompts[:i] if p is not None]
            later = [p for p in prompts[i + 1:] if p is not None]
            prompt = earlier[-1] if earlier else later[0] if later else (default_prompt or "")
        out.append(replace(k, prompt=prompt if prompt is not None else (default_prompt or ""),
                           seed=k.seed if k.seed is not None else default_seed))
    return out
