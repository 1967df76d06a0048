"""Recipes: the full, replayable description of an output, written into every PNG.

Two PNG text chunks: ``parameters`` in AUTOMATIC1111's infotext form (so A1111's PNG Info and civitai read
it) and ``latentscape`` with the full JSON recipe that ``latentscape replay`` reproduces exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
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

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, *, source: str = "the recipe") -> "Recipe":
        """Parse and validate (:mod:`latentscape.io.recipe_schema`); a one-sentence error names the bad field."""
        from latentscape.io.recipe_schema import parse_recipe_json

        data = parse_recipe_json(text, source=source)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def infotext(self) -> str:
        """AUTOMATIC1111 infotext: prompt, optional negative line, then ``Key: value`` pairs."""
        p = self.params
        lines = [str(p.get("prompt", ""))]
        if p.get("negative"):
            lines.append(f"Negative prompt: {p['negative']}")
        width, height = p.get("width"), p.get("height")
        fields = {
            "Steps": p.get("steps"),
            "Sampler": self.sampler_label or p.get("sampler"),
            "CFG scale": p.get("cfg"),
            "Seed": self.seed,
            "Size": f"{width}x{height}" if width and height else None,
            "Model": Path(str(self.model)).name or self.model,
            **dict(self.infotext_extra),
            "Version": f"latentscape {self.versions.get('latentscape', '')}".strip(),
        }
        lines.append(", ".join(f"{k}: {_a1111_value(v)}" for k, v in fields.items() if v is not None))
        return "\n".join(lines)


def _a1111_value(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


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
