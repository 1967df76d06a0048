"""A morph's manifest: its recipe plus the state of every frame, written as frames complete, for resuming.

The manifest (``<output>.manifest.json`` from :func:`latentscape.workflows.morph.render_morph`) is the
morph's recipe carrier: videos cannot hold PNG text chunks, so ``latentscape replay`` reads it (or the
contact sheet PNG, which carries the same recipe). Layout::

    {"kind": "latentscape-morph", "format": 1, "recipe": {...Recipe...}, "frames_dir": "...", "keep_frames": bool,
     "stages": {"probe": {...}, "final": {"positions": [u...], "frames": [{"u", "a", "b", "t", "png",
     "sha256"} | null, ...]}}, "pacing": {...}, "output": {...} | null, "complete": false}

Frames are lossless PNGs ``frame_00000.png`` ... in the final frames folder: the user's ``save_frames``
folder (kept), else the output's own working folder ``<output>.frames/`` (removed once the video exists).
Perceptual pacing's probe frames always go to ``<output>.frames/probe/``, never into a folder of the user's.
``keep_frames`` records whether the user asked for the frames. A frame counts as done when its PNG exists
with the recorded SHA-256. The file is replaced atomically after every batch, so an interrupt leaves a
manifest that matches the frames on disk.

A manifest is untrusted input (anyone can edit it): :func:`read_manifest` checks every field's type, list
lengths and frame file names before anything uses it, and ``frames_dir`` is never a reason to read, write or
delete a folder: the folders come from the output path and the user's ``save_frames`` only. Cleaning up
deletes only this project's frame files in the output's own working folder, and the folder only if that
leaves it empty.
"""

from __future__ import annotations

import json
import math
import os
import re
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
STAGES = ("probe", "final")
# parameters that change only how frames are packaged, not the frames: a resume may change them
OUTPUT_ONLY = ("fps", "pingpong")
# the files a frame folder of ours may hold: frames, and the temp names io.files.atomic_path gives them
FRAME_FILE = re.compile(r"frame_\d{5,}\.png")
FRAME_PARTIAL = re.compile(r"\.frame_\d{5,}\.[0-9a-f]{8}\.partial\.png")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def manifest_path(output: str | os.PathLike) -> Path:
    return Path(f"{output}.manifest.json")


def work_folder(output: str | os.PathLike) -> Path:
    """The output's own frames folder ``<output>.frames/``: the only folder a morph ever removes."""
    return Path(f"{output}.frames")


def foreign_files(folder: Path) -> list[Path]:
    """What ``folder`` holds besides this project's frame files (and its ``probe/`` folder of them)."""
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        if p.name == "probe" and p.is_dir() and not p.is_symlink():
            out += foreign_files(p)
        elif p.is_symlink() or not p.is_file() or not (FRAME_FILE.fullmatch(p.name) or FRAME_PARTIAL.fullmatch(p.name)):
            out.append(p)
    return out


def remove_frames(folder: Path) -> bool:
    """Delete this project's frame files in ``folder`` (never anything else, never through a symlink), then
    the folder if that left it empty. Returns whether the folder is gone."""
    if folder.is_symlink() or not folder.is_dir():
        return not folder.exists()
    for p in folder.iterdir():
        if not p.is_symlink() and p.is_file() and (FRAME_FILE.fullmatch(p.name) or FRAME_PARTIAL.fullmatch(p.name)):
            p.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:  # something of someone else's is in there: leave it
        return False
    return True


class FrameStore:
    """Frames on disk plus the manifest that records them; ``save()`` after each batch.

    ``output`` is the video the frames are for: its ``<output>.frames/`` folder holds the probe frames and,
    unless ``frames_dir`` (the user's ``save_frames``) says otherwise, the final frames.
    """

    def __init__(self, path: str | os.PathLike, output: str | os.PathLike, recipe: Recipe, *,
                 frames_dir: str | os.PathLike | None = None):
        self.path = Path(path)
        self.work = work_folder(output)
        self.keep_frames = frames_dir is not None
        self.frames_dir = Path(frames_dir) if frames_dir is not None else self.work
        self.data: dict[str, Any] = {
            "kind": KIND, "format": FORMAT, "recipe": json.loads(recipe.to_json()),
            "frames_dir": str(self.frames_dir.resolve()), "keep_frames": self.keep_frames,
            "stages": {}, "pacing": None, "output": None, "complete": False,
        }  # fmt: skip

    # --- opening --------------------------------------------------------------------------------------
    @classmethod
    def resume(cls, path: str | os.PathLike, output: str | os.PathLike, recipe: Recipe, *,
               frames_dir: str | os.PathLike | None = None) -> "FrameStore":
        """Reopen an interrupted render, refusing (one sentence) if it was made with other settings or kept
        its frames in a folder other than the one this run names (the manifest's word is not enough)."""
        data = read_manifest(path)
        old = Recipe.from_json(json.dumps(data["recipe"]))
        check_same(old, recipe, path)
        store = cls(path, output, recipe, frames_dir=frames_dir)
        recorded = data.get("frames_dir")
        if recorded is not None and not data.get("complete") and Path(recorded).resolve() != store.frames_dir.resolve():
            kept = data.get("keep_frames") is True
            hint = f"pass save_frames '{recorded}' to resume it" if kept else "resume with the same settings"
            raise LatentscapeError(
                f"the interrupted render of '{path}' keeps its frames in '{recorded}', not in '{store.frames_dir}'; "
                f"{hint} (a frames folder is used only when it is named for this run).")
        store.data.update({k: data[k] for k in ("stages", "pacing") if data.get(k) is not None})
        return store

    # --- stages and frames ------------------------------------------------------------------------------
    def folder(self, stage: str) -> Path:
        return self.frames_dir if stage == "final" else self.work / stage

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

    def frame_path(self, stage: str, index: int) -> Path:
        """Where frame ``index`` of ``stage`` is written (the name is ours, whatever the manifest says)."""
        return self.folder(stage) / f"frame_{index:05d}.png"

    def load(self, stage: str, index: int) -> Image.Image | None:
        """Frame ``index`` of ``stage`` if it is on disk as recorded, else None."""
        entry = self.data["stages"].get(stage, {}).get("frames", [])[index]
        if entry is None:
            return None
        png = self.frame_path(stage, index)
        if png.is_symlink() or not png.is_file() or file_sha256(png) != entry["sha256"]:
            return None
        return load_image(png)

    def put(self, stage: str, start: int, images: Sequence[Image.Image], points: Sequence[tuple[int, int, float]],
            recipe_of=None) -> None:
        """Write frames ``start``... losslessly and record them (call :meth:`save` after the batch);
        ``recipe_of(index)``: each frame PNG's recipe (infotext + JSON, see ``io.video.save_frames``)."""
        record = self.data["stages"][stage]
        saved = save_frames(images, self.folder(stage), start=start, recipe_of=recipe_of)
        for i, path, (a, b, t) in zip(range(start, start + len(images)), saved, points):
            record["frames"][i] = {"u": record["positions"][i], "a": a, "b": b, "t": t, "png": path.name, "sha256": file_sha256(path)}

    def clean_up(self) -> None:
        """After the video is written: remove the probe frames, and the final ones unless they are kept."""
        remove_frames(self.work / "probe")
        if not self.keep_frames:
            remove_frames(self.work)
            self.data["frames_dir"] = None

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1, ensure_ascii=False))


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest at ``path``, its every field checked (one sentence naming the first bad one)."""
    path = Path(path)
    if not path.is_file():
        raise LatentscapeError(f"manifest '{path}' does not exist; --resume needs the manifest of an earlier run of the same command.")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        raise LatentscapeError(f"manifest '{path}' cannot be read as JSON; it is not a latentscape morph manifest.") from None
    if not isinstance(data, dict) or data.get("kind") != KIND or not isinstance(data.get("recipe"), dict):
        raise LatentscapeError(f"'{path}' is not a latentscape morph manifest (no kind '{KIND}' with a recipe object).")
    fmt = data.get("format", 0)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise LatentscapeError(f"manifest '{path}' has format {json.dumps(fmt)}; accepted: a whole number up to {FORMAT}.")
    if fmt > FORMAT:
        raise LatentscapeError(f"manifest '{path}' has format {fmt}, newer than this latentscape reads ({FORMAT}); upgrade latentscape.")
    problem = _manifest_problem(data)
    if problem:
        raise LatentscapeError(f"manifest '{path}' is damaged: {problem}; start over without --resume.")
    return data


def _manifest_problem(data: dict[str, Any]) -> str | None:
    """The first field of a manifest that is not what this module writes, in words; None when all are."""
    types = {"frames_dir": (str, type(None)), "keep_frames": (bool, type(None)), "complete": (bool, type(None)),
             "pacing": (dict, type(None)), "output": (dict, type(None)), "stages": (dict, type(None))}
    for key, accepted in types.items():
        if key in data and not isinstance(data[key], accepted):
            names = " or ".join("null" if t is type(None) else {"str": "a string", "bool": "true/false", "dict": "an object"}[t.__name__] for t in accepted)
            return f"{key} is {_kind(data[key])}, expected {names}"
    for name, record in (data.get("stages") or {}).items():
        where = f"stages.{name}"
        if name not in STAGES:
            return f"{where} is not a stage (accepted: {', '.join(STAGES)})"
        if not isinstance(record, dict):
            return f"{where} is {_kind(record)}, expected an object"
        positions, frames = record.get("positions"), record.get("frames")
        if not isinstance(positions, list) or not all(_number(u) for u in positions):
            return f"{where}.positions is not a list of finite numbers"
        if not isinstance(frames, list) or len(frames) != len(positions):
            got = f"{len(frames)} entries" if isinstance(frames, list) else _kind(frames)
            return f"{where}.frames has {got}, expected a list of {len(positions)} (one per position)"
        for i, entry in enumerate(frames):
            if entry is None:
                continue
            if not isinstance(entry, dict):
                return f"{where}.frames[{i}] is {_kind(entry)}, expected an object or null"
            if entry.get("png") != f"frame_{i:05d}.png":
                return f"{where}.frames[{i}].png is {json.dumps(entry.get('png'))[:80]}, expected \"frame_{i:05d}.png\""
            if not isinstance(entry.get("sha256"), str) or not _SHA256.fullmatch(entry["sha256"]):
                return f"{where}.frames[{i}].sha256 is not a SHA-256 in hex"
            for key in ("u", "t"):
                if not _number(entry.get(key)):
                    return f"{where}.frames[{i}].{key} is {_kind(entry.get(key))}, expected a finite number"
            for key in ("a", "b"):
                if not isinstance(entry.get(key), int) or isinstance(entry.get(key), bool) or entry[key] < 0:
                    return f"{where}.frames[{i}].{key} is {_kind(entry.get(key))}, expected a keyframe index"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    name = {"str": "a string", "bool": "true/false", "dict": "an object", "list": "a list", "int": "a number", "float": "a number"}
    return name.get(type(value).__name__, type(value).__name__)


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
    if _hashes(old.inputs) != _hashes(new.inputs):
        raise LatentscapeError(f"--resume: a keyframe image changed since '{where}' was written (SHA-256 differs); start over without --resume.")


def _hashes(inputs: Any) -> dict[str, list[Any]]:
    """Each input role's SHA-256s: what decides the frames (the paths may be recorded differently)."""
    return {role: [e.get("sha256") if isinstance(e, dict) else e for e in (item if isinstance(item, list) else [item])]
            for role, item in dict(inputs).items()}
