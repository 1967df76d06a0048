"""A morph's manifest: its recipe plus the state of every frame, written as frames complete, for resuming.

The manifest (``<output>.manifest.json`` from :func:`latentscape.workflows.morph.render_morph`) is the
morph's recipe carrier: videos cannot hold PNG text chunks, so ``latentscape replay`` reads it (or the
contact sheet PNG, which carries the same recipe). Layout::

    {"kind": "latentscape-morph", "format": 1, "recipe": {...Recipe...}, "frames_dir": "...", "keep_frames": bool,
     "stages": {"probe": {...}, "final": {"positions": [u...], "frames": [{"u", "a", "b", "t", "png",
     "sha256"} | null, ...]}}, "pacing": {...}, "output": {...} | null, "complete": false}

Frames are lossless PNGs ``frame_00000.png`` ... in ``frames_dir`` (perceptual pacing's probe frames in
its ``probe/`` subfolder); ``keep_frames`` records whether the user asked for them (``--save-frames``): a
resume keeps them if the interrupted run was to, whether or not it repeats ``--save-frames``. A frame counts as done when its PNG exists with the recorded SHA-256. The file is
replaced atomically after every batch, so an interrupt leaves a manifest that matches the frames on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io.files import atomic_path
from latentscape.io.images import load_image
from latentscape.io.recipe import Recipe, file_sha256
from latentscape.io.video import save_frames

KIND = "latentscape-morph"
FORMAT = 1
# parameters that change only how frames are packaged, not the frames: a resume may change them
OUTPUT_ONLY = ("fps", "pingpong")


def manifest_path(output: str | os.PathLike) -> Path:
    return Path(f"{output}.manifest.json")


class FrameStore:
    """Frames on disk plus the manifest that records them; ``save()`` after each batch."""

    def __init__(self, path: str | os.PathLike, frames_dir: str | os.PathLike, recipe: Recipe, *, keep_frames: bool):
        self.path = Path(path)
        self.frames_dir = Path(frames_dir)
        self.keep_frames = keep_frames
        self.data: dict[str, Any] = {
            "kind": KIND, "format": FORMAT, "recipe": json.loads(recipe.to_json()),
            "frames_dir": str(self.frames_dir.resolve()), "keep_frames": keep_frames,
            "stages": {}, "pacing": None, "output": None, "complete": False,
        }  # fmt: skip

    # --- opening --------------------------------------------------------------------------------------
    @classmethod
    def resume(cls, path: str | os.PathLike, recipe: Recipe) -> "FrameStore":
        """Reopen an interrupted render, refusing (one sentence) if it was made with other settings."""
        data = read_manifest(path)
        old = Recipe.from_json(json.dumps(data["recipe"]))
        check_same(old, recipe, path)
        default = Path(str(path).removesuffix(".manifest.json") + ".frames")
        frames_dir = Path(data.get("frames_dir") or default)
        keep = data.get("keep_frames")
        if not isinstance(keep, bool):  # a manifest from before "keep_frames": only --save-frames chose another folder
            keep = frames_dir.resolve() != default.resolve()
        store = cls(path, frames_dir, recipe, keep_frames=keep)
        store.data.update({k: data[k] for k in ("stages", "pacing") if k in data})
        return store

    # --- stages and frames ------------------------------------------------------------------------------
    def folder(self, stage: str) -> Path:
        return self.frames_dir if stage == "final" else self.frames_dir / stage

    def stage(self, stage: str, positions: Sequence[float]) -> dict[str, Any]:
        """The record of ``stage``; a stage recorded with other positions is started over."""
        record = self.data["stages"].get(stage)
        if record is None or record.get("positions") != list(positions):
            record = {"positions": list(positions), "frames": [None] * len(positions)}
            self.data["stages"][stage] = record
        return record

    def positions(self, stage: str) -> list[float] | None:
        record = self.data["stages"].get(stage)
        return None if record is None else list(record["positions"])

    def load(self, stage: str, index: int) -> Image.Image | None:
        """Frame ``index`` of ``stage`` if it is on disk as recorded, else None."""
        entry = self.data["stages"].get(stage, {}).get("frames", [])[index]
        if entry is None:
            return None
        png = self.folder(stage) / entry["png"]
        if not png.is_file() or file_sha256(png) != entry["sha256"]:
            return None
        return load_image(png)

    def put(self, stage: str, start: int, images: Sequence[Image.Image], points: Sequence[tuple[int, int, float]]) -> None:
        """Write frames ``start``... losslessly and record them (call :meth:`save` after the batch)."""
        record = self.data["stages"][stage]
        for i, path, (a, b, t) in zip(range(start, start + len(images)), save_frames(images, self.folder(stage), start=start), points):
            record["frames"][i] = {"u": record["positions"][i], "a": a, "b": b, "t": t, "png": path.name, "sha256": file_sha256(path)}

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1, ensure_ascii=False))


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise LatentscapeError(f"manifest '{path}' does not exist; --resume needs the manifest of an earlier run of the same command.")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise LatentscapeError(f"manifest '{path}' cannot be read as JSON; it is not a latentscape morph manifest.") from None
    if not isinstance(data, dict) or data.get("kind") != KIND or "recipe" not in data:
        raise LatentscapeError(f"'{path}' is not a latentscape morph manifest (no kind '{KIND}' with a recipe).")
    if data.get("format", 0) > FORMAT:
        raise LatentscapeError(f"manifest '{path}' has format {data.get('format')}, newer than this latentscape reads ({FORMAT}); upgrade latentscape.")
    return data


def read_manifest_recipe(path: str | os.PathLike) -> Recipe:
    """The recipe stored in a morph manifest."""
    data = read_manifest(path)
    try:
        return Recipe.from_json(json.dumps(data["recipe"]))
    except (TypeError, ValueError) as exc:
        raise LatentscapeError(f"the recipe in '{path}' is damaged ({exc}).") from None


def check_same(old: Recipe, new: Recipe, where: str | os.PathLike) -> None:
    """A resumed render must make the same frames: same model, inputs and every frame-deciding parameter."""
    if (old.model, old.family) != (new.model, new.family):
        raise LatentscapeError(f"--resume: '{where}' was rendered with model '{old.model}' but this run uses '{new.model}'; use the same --model or start over without --resume.")
    for key in sorted(set(old.params) | set(new.params)):
        if key in OUTPUT_ONLY:
            continue
        a, b = old.params.get(key), new.params.get(key)
        if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            raise LatentscapeError(f"--resume: '{where}' was rendered with {key} = {json.dumps(a)} but this run has {json.dumps(b)}; rerun with the same settings or start over without --resume.")
    if json.dumps(old.inputs, sort_keys=True) != json.dumps(new.inputs, sort_keys=True):
        raise LatentscapeError(f"--resume: a keyframe image changed since '{where}' was written (SHA-256 differs); start over without --resume.")
