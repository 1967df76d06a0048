"""The files a recipe names: a replay reads only its recorded, hash-checked inputs, finds them when they moved,
and a new output records them so that it replays from another folder.

A recipe is untrusted input: anyone can write a PNG whose recipe names ``/etc/shadow`` as an init image. So
every path the workflow's config would read (:func:`named_paths`) must be one of the recipe's ``inputs``
(path and SHA-256), must exist as a regular file and must hash to the recorded SHA-256; anything else is
refused in one sentence before a model loads.

An input entry written by :func:`anchor_inputs` (format of recipes written from this version on)::

    {"path": "the path as the job got it", "sha256": "...", "relative": "../in/cat.png", "absolute": "/home/u/in/cat.png", "size": 1234}

``relative`` is relative to the output's folder, so an output and its inputs can move together; ``absolute``
is a hint. Older recipes hold ``path`` and ``sha256`` only (``path`` relative to where the job ran). A replay
looks, in order, at the output's folder + ``relative``, ``absolute``, ``path``; then by SHA-256 among the
files of each search folder (``--inputs DIR``, then the output's own folder).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from latentscape.errors import LatentscapeError
from latentscape.io.recipe import Recipe, file_sha256
from latentscape.workflows.keyframes import Keyframe

# config fields that hold one file path / a list of file paths / a folder whose files the job reads
FILE_FIELDS = ("init_image", "emoji_data", "from_latents")
FILE_LIST_FIELDS = ("images",)
SEARCH_LIMIT = 5000  # files looked at per search folder (by size first; only same-size files are hashed)


@dataclass(frozen=True)
class InputFile:
    """One recorded input: its role, the path the job got (as in the params), its hash and where to look."""

    role: str
    path: str
    sha256: str
    relative: str | None = None
    absolute: str | None = None
    size: int | None = None


def recorded_inputs(recipe: Recipe) -> list[InputFile]:
    """The recipe's ``inputs`` as :class:`InputFile` entries (one sentence on a malformed entry)."""
    out = []
    for role, item in dict(recipe.inputs).items():
        for entry in item if isinstance(item, list) else [item]:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str) or not isinstance(entry.get("sha256"), str):
                raise LatentscapeError(f"the recipe's inputs.{role} is not a list of {{path, sha256}} objects; the recipe is damaged.")
            size = entry.get("size")
            out.append(InputFile(role, entry["path"], entry["sha256"], _str(entry.get("relative")), _str(entry.get("absolute")),
                                 size if isinstance(size, int) and not isinstance(size, bool) else None))
    return out


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def named_paths(config: Any) -> list[tuple[str, str]]:
    """(field, path) for every file ``config`` makes its workflow read: keyframe images, ``init_image``,
    ``images``, the image operands of a ``math`` expression, ``emoji_data``."""
    out: list[tuple[str, str]] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, Keyframe) and value.image is not None:
            out.append((f"{f.name}.image", value.image))
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                if isinstance(item, Keyframe) and item.image is not None:
                    out.append((f"{f.name}[{i}].image", item.image))
                elif f.name in FILE_LIST_FIELDS and isinstance(item, str):
                    out.append((f"{f.name}[{i}]", item))
        elif f.name in FILE_FIELDS and isinstance(value, str):
            out.append((f.name, value))
        elif f.name == "expression" and isinstance(value, str):
            from latentscape.core.expr import parse

            out += [("expression", str(t.operand.value)) for t in parse(value) if t.operand.kind == "image"]
    return out


def locate(entry: InputFile, *, base: Path | None, search: Sequence[Path]) -> Path | None:
    """Where ``entry``'s file is now (a regular file with the recorded SHA-256), or None."""
    places = []
    if base is not None and entry.relative is not None:
        places.append(base / entry.relative)
    places += [Path(p) for p in (entry.absolute, entry.path) if p]
    for place in places:
        if _matches(place, entry):
            return place
    for folder in search:
        for candidate in _files(folder):
            if (entry.size is None or candidate.stat().st_size == entry.size) and _matches(candidate, entry):
                return candidate
    return None


def _matches(path: Path, entry: InputFile) -> bool:
    try:
        return path.is_file() and (entry.size is None or path.stat().st_size == entry.size) and file_sha256(path) == entry.sha256
    except OSError:
        return False


def _files(folder: Path) -> Iterable[Path]:
    """Up to :data:`SEARCH_LIMIT` regular files under ``folder`` (hidden ones skipped)."""
    seen = 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            seen += 1
            if seen > SEARCH_LIMIT:
                return
            path = Path(root) / name
            if path.is_file():
                yield path


def resolve_inputs(recipe: Recipe, config: Any, *, recipe_file: str | os.PathLike | None = None,
                   search: Sequence[str | os.PathLike] = ()) -> Any:
    """``config`` with every file it names checked against the recipe's inputs and pointed at where that
    file is now; one sentence for a path the recipe does not record, a missing file or a changed one.

    ``recipe_file`` is the output the recipe came from (its folder anchors relative paths and is searched
    last); ``search`` are more folders to look in by SHA-256 (``--inputs DIR``).
    """
    entries = recorded_inputs(recipe)
    base = Path(recipe_file).parent if recipe_file is not None else None
    folders = [Path(s) for s in search] + ([base] if base is not None else [])
    found: dict[str, Path] = {}
    for entry in entries:
        place = locate(entry, base=base, search=folders)
        if place is None:
            where = f"; looked by SHA-256 in {', '.join(repr(str(f)) for f in folders)}" if folders else ""
            changed = Path(entry.path).is_file()
            raise LatentscapeError(
                f"the recipe's {entry.role} '{entry.path}' "
                + ("has changed since the output was made (SHA-256 differs)" if changed else "no longer exists")
                + f"{where}; pass inputs (a folder holding the original file) or restore it.")
        found[entry.path] = place
    for field, path in named_paths(config):
        if path not in found:
            raise LatentscapeError(
                f"the recipe's params.{field} names '{path}', which is not one of its recorded inputs; a replay reads only "
                "files the recipe records with their SHA-256.")
    images_dir = getattr(config, "images_dir", None)
    if images_dir is not None and not getattr(config, "images", ()):
        raise LatentscapeError("the recipe's params.images is empty but params.images_dir is set; a replay maps only the files the recipe records.")
    _check_folder_inputs(config, entries, found)
    moved = {k: str(v) for k, v in found.items() if str(v) != k}
    return with_paths(config, moved) if moved else config


def _check_folder_inputs(config: Any, entries: list[InputFile], found: Mapping[str, Path]) -> None:
    """A CLIP model folder (``clip_model``) is read whole: each of its files must be a recorded input."""
    folder = getattr(config, "clip_model", None)
    if folder is None or getattr(config, "adherence", None) not in ("auto", "clip"):  # sweep reads it for these only
        return
    root = Path(folder)
    recorded = {found[e.path].resolve() for e in entries if e.role == "CLIP model file"}
    present = {p.resolve() for p in root.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)} if root.is_dir() else set()
    if not recorded or present != recorded:
        raise LatentscapeError(
            f"the recipe's params.clip_model '{folder}' does not hold exactly the CLIP model files the recipe records; a replay "
            "reads only recorded files.")


def with_paths(config: Any, moved: Mapping[str, str]) -> Any:
    """``config`` with each path in ``moved`` replaced by where the file is now."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, Keyframe) and value.image in moved:
            changes[f.name] = dataclasses.replace(value, image=moved[value.image])
        elif isinstance(value, tuple) and any(isinstance(v, (Keyframe, str)) for v in value):
            items = tuple(dataclasses.replace(v, image=moved[v.image]) if isinstance(v, Keyframe) and v.image in moved
                          else moved.get(v, v) if f.name in FILE_LIST_FIELDS and isinstance(v, str) else v for v in value)
            if items != value:
                changes[f.name] = items
        elif f.name in FILE_FIELDS and value in moved:
            changes[f.name] = moved[value]
        elif f.name == "expression" and isinstance(value, str):
            from latentscape.core.expr import Term, format_terms, parse

            terms = parse(value)
            if any(t.operand.kind == "image" and t.operand.value in moved for t in terms):
                terms = [Term(t.coefficient, dataclasses.replace(t.operand, value=moved[t.operand.value]))
                         if t.operand.kind == "image" and t.operand.value in moved else t for t in terms]
                changes[f.name] = format_terms(terms)
    return dataclasses.replace(config, **changes) if changes else config


def anchor_inputs(recipe: Recipe, output: str | os.PathLike) -> Recipe:
    """``recipe`` with each input also recorded relative to ``output``'s folder, by absolute path and size."""
    if not recipe.inputs:
        return recipe
    folder = Path(output).resolve().parent

    def anchored(entry: Any) -> Any:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
            return entry
        path = Path(entry["path"]).resolve()
        extra: dict[str, Any] = {"absolute": str(path)}
        try:
            extra["relative"] = Path(os.path.relpath(path, folder)).as_posix()
        except ValueError:  # another drive (Windows): no relative path
            pass
        if path.is_file():
            extra["size"] = path.stat().st_size
        return {**dict(entry), **extra}

    inputs = {role: [anchored(e) for e in item] if isinstance(item, list) else anchored(item) for role, item in recipe.inputs.items()}
    return dataclasses.replace(recipe, inputs=inputs)
