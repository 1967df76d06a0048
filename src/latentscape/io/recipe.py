"""Recipes: the full, replayable description of an output, written into every PNG.

Two PNG text chunks: ``parameters`` in AUTOMATIC1111's infotext form (so A1111's PNG Info and civitai read
it) and ``latentscape`` with the full JSON recipe that ``latentscape replay`` reproduces exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from PIL import Image, PngImagePlugin

from latentscape.errors import LatentscapeError
from latentscape.io.files import atomic_path

RECIPE_CHUNK = "latentscape"
A1111_CHUNK = "parameters"
RECIPE_FORMAT = 1


def versions() -> dict[str, str]:
    """Versions that decide the pixels: latentscape, torch, diffusers, transformers."""
    import diffusers
    import torch
    import transformers

    from latentscape import __version__

    return {"latentscape": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Recipe:
    """Everything needed to make one output again.

    ``params`` is the workflow's config (plain JSON values, seed already resolved); ``seed`` and
    ``batch_index`` say which item of the batch this output is (replay reruns the batch for bit-exactness);
    ``inputs`` records input files by path and SHA-256; ``infotext_extra`` holds extra A1111 fields;
    ``load`` how the model was loaded beyond its id (a single file's ``config`` folder, the ``dtype``).
    ``schedule_label`` is A1111's ``Schedule type`` for the sampler's schedule, ``model_hash`` A1111's short
    model hash, ``prompt_line`` the infotext's prompt when it is not ``params["prompt"]`` (blend, map, ...).
    These three only shape the infotext; recipes without them (older versions) stay readable.
    """

    workflow: str
    model: str
    family: str
    params: Mapping[str, Any]
    seed: int
    batch_index: int = 0
    inputs: Mapping[str, Any] = field(default_factory=dict)
    infotext_extra: Mapping[str, Any] = field(default_factory=dict)
    sampler_label: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)
    load: Mapping[str, Any] = field(default_factory=dict)
    format: int = RECIPE_FORMAT
    schedule_label: str = ""
    model_hash: str = ""
    prompt_line: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, *, source: str = "the recipe") -> "Recipe":
        """Parse and validate (:mod:`latentscape.io.recipe_schema`); a one-sentence error names the bad field."""
        from latentscape.io.recipe_schema import parse_recipe_json

        data = parse_recipe_json(text, source=source)
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        # the infotext-only fields are not in the schema: untrusted, so keep only well-formed values
        for key in ("schedule_label", "prompt_line"):
            if key in fields and not (isinstance(fields[key], str) and len(fields[key]) <= 100_000):
                fields.pop(key)
        if "model_hash" in fields and not (isinstance(fields["model_hash"], str) and MODEL_HASH.fullmatch(fields["model_hash"])):
            fields.pop("model_hash")
        return cls(**fields)

    def infotext(self) -> str:
        """AUTOMATIC1111 infotext: prompt, optional negative line, then one line of ``Key: value`` pairs.

        The last line has the fields A1111 needs to make the same image: ``RNG: CPU`` (latentscape draws
        every noise with a CPU generator, which is what A1111 calls CPU RNG; without it A1111 assumes GPU
        noise), ``Schedule type``, ``Model hash``. Values are written bare, never JSON-quoted: civitai,
        sd-parsers and sd-prompt-reader cut a quoted value at its first comma, so every value is freed of
        ``,`` ``:`` quotes and newlines (:func:`infotext_value`). ``Version`` keeps its ``latentscape``
        prefix: a bare version number reads as an old A1111 and switches on its back-compat options.
        """
        p = self.params
        prompt = self.prompt_line if self.prompt_line is not None else p.get("prompt", "")
        lines = [_prompt_text(prompt)]
        if p.get("negative"):
            lines.append(f"Negative prompt: {_prompt_text(p['negative'])}")
        width, height = p.get("width"), p.get("height")
        fields = {
            "Steps": p.get("steps"),
            "Sampler": self.sampler_label or p.get("sampler"),
            "Schedule type": self.schedule_label or None,
            "CFG scale": p.get("cfg"),
            "Seed": self.seed,
            "Size": f"{width}x{height}" if width and height else None,
            "Model hash": self.model_hash or None,
            "Model": Path(str(self.model)).name or self.model,
            "RNG": "CPU",
            **dict(self.infotext_extra),
            "Version": f"latentscape {self.versions.get('latentscape', '')}".strip(),
        }
        lines.append(", ".join(f"{infotext_key(k)}: {infotext_value(v)}" for k, v in fields.items() if v is not None))
        return "\n".join(lines)


MODEL_HASH = re.compile(r"[0-9a-f]{10}")
_KEY_CHARS = re.compile(r"[^\w \-/]")


def _prompt_text(text: Any) -> str:
    """A prompt as an infotext line: line breaks become spaces (A1111 joins the prompt's lines anyway, and a
    prompt line that looked like ``Negative prompt:`` or a parameters line would be misread)."""
    return " ".join(str(text).split("\n")).replace("\r", " ")


def infotext_key(key: str) -> str:
    """A field name A1111's parser accepts: word characters, spaces, ``-`` and ``/``, starting with a word character."""
    cleaned = _KEY_CHARS.sub(" ", str(key)).strip() or "Field"
    return cleaned if re.match(r"\w", cleaned) else f"X{cleaned}"


def infotext_value(value: Any) -> str:
    """A value that every infotext parser reads whole: numbers as A1111 writes them; text with the
    characters parsers split on replaced (``,`` -> ``;``, ``:`` -> `` -``, ``"`` -> ``'``, ``\\`` -> ``/``,
    line breaks -> spaces), never JSON-quoted."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else str(int(value))
    text = str(value)
    for bad, good in (("\r\n", " "), ("\n", " "), ("\r", " "), (",", ";"), (":", " -"), ('"', "'"), ("\\", "/")):
        text = text.replace(bad, good)
    return " ".join(text.split())


def save_png(image: Image.Image, path: str | os.PathLike, recipe: Recipe | None) -> Path:
    """Write ``image`` to ``path`` atomically with both recipe chunks."""
    path = Path(path)
    info = PngImagePlugin.PngInfo()
    if recipe is not None:
        info.add_text(A1111_CHUNK, recipe.infotext())
        info.add_itxt(RECIPE_CHUNK, recipe.to_json())
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return path


def read_recipe(path: str | os.PathLike) -> Recipe:
    """The JSON recipe stored in a PNG written by latentscape, validated by the recipe schema."""
    from latentscape.io.images import decode_limits, open_untrusted, pillow_errors

    path = Path(path)
    if not path.is_file():
        raise LatentscapeError(f"'{path}' does not exist; expected a PNG made by latentscape.")
    with decode_limits(), pillow_errors(f"'{path}'", "an image", "; expected a PNG made by latentscape"):
        with open_untrusted(path, f"image '{path}'") as im:
            text = im.text.get(RECIPE_CHUNK) if hasattr(im, "text") else None
    if not text:
        raise LatentscapeError(f"'{path}' holds no latentscape recipe (no '{RECIPE_CHUNK}' PNG chunk); only images made by latentscape can be replayed.")
    return Recipe.from_json(text, source=f"the recipe in '{path}'")
