"""`models`: the families latentscape supports and the models installed on this machine."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="families and installed models", description="List supported model families and the models found on this machine.")
    p.add_argument("--scan", action="append", default=[], help="also look for diffusers folders under this folder (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_models)


MAX_SCAN_DEPTH = 8  # the hub cache puts model_index.json 4 folders down: models--org--name/snapshots/REV/
MAX_SCAN_ENTRIES = 200_000  # folders and files looked at per --scan root


def _folder_size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def _index_files(root: Path) -> tuple[list[Path], int]:
    """Every ``model_index.json`` under ``root`` (symlinked folders followed once, loops and unreadable
    folders skipped, depth and entry count bounded) and how many folders could not be read."""
    found, unreadable, seen, looked = [], 0, set(), 0
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue  # a symlink loop, or a folder reached twice
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            unreadable += 1
            continue
        subfolders = []
        for entry in entries:
            looked += 1
            if looked > MAX_SCAN_ENTRIES:
                return sorted(found), unreadable
            try:
                if entry.name == "model_index.json" and entry.is_file():
                    found.append(Path(entry.path))
                elif depth < MAX_SCAN_DEPTH and entry.is_dir():
                    subfolders.append((entry.is_symlink(), entry.name, Path(entry.path)))
            except OSError:
                unreadable += 1
        # real folders are visited before symlinks to them, so a model is listed under its own path
        stack.extend((path, depth + 1) for _, _, path in sorted(subfolders, reverse=True))
    return sorted(found), unreadable


def find_models(scan: list[str]) -> tuple[list[dict], int]:
    """The embedded model and pipelines under each ``scan`` folder and in the Hugging Face hub cache, and
    how many folders could not be read (skipped)."""
    from latentscape.errors import LatentscapeError
    from latentscape.models.registry import EMBEDDED_DIR, PIPELINE_FAMILIES, read_json_object

    found, skipped = [], 0
    if (EMBEDDED_DIR / "model_index.json").is_file():
        found.append({"name": "embedded", "family": "sd", "path": str(EMBEDDED_DIR), "size_mb": round(_folder_size_mb(EMBEDDED_DIR), 1)})
    for p in scan:
        if not Path(p).exists():
            raise LatentscapeError(f"scan folder '{p}' does not exist.")
        if not Path(p).is_dir():
            raise LatentscapeError(f"scan folder '{p}' is a file, not a folder; pass the folder that holds your models.")
        if not os.access(p, os.R_OK | os.X_OK):
            raise LatentscapeError(f"scan folder '{p}' cannot be read (permission denied).")
    roots = [Path(p) for p in scan]
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    if hub.is_dir():
        roots.append(hub)
    for root in roots:
        indexes, unreadable = _index_files(root)
        skipped += unreadable
        for index in indexes:
            try:
                cls = read_json_object(index, "a pipeline index").get("_class_name", "")
            except LatentscapeError:
                continue  # not a pipeline we can use: skipped, as any other stray file
            family = PIPELINE_FAMILIES.get(cls) if isinstance(cls, str) else None
            if family:
                name = index.parent.parent.parent.name.removeprefix("models--").replace("--", "/") if "snapshots" in index.parts else str(index.parent)
                found.append({"name": name, "family": family, "path": str(index.parent), "pipeline": cls})
    return found, skipped


def run_models(args: argparse.Namespace) -> int:
    from latentscape.models.latent_format import FORMATS
    from latentscape.models.registry import FAMILIES
    from latentscape.samplers import sampler_names

    families = []
    for name, info in FAMILIES.items():  # plain data: listing families imports no torch
        lf = FORMATS[name]
        families.append({"family": name, "pipeline": info.pipeline_class, "latent_channels": lf.channels,
                         "size_multiple": lf.size_multiple, "scale": lf.scale, "shift": lf.shift,
                         "default_cfg": info.default_cfg, "samplers": sampler_names(info.is_flow)})
    installed, skipped = find_models(args.scan)
    if args.json:
        from latentscape.interfaces.common import emit, json_result

        emit(args, json_result(args, "models", [], None, families=families, installed=installed, unreadable_folders=skipped), "")
        return 0
    print("families:")
    for f in families:
        print(f"  {f['family']:<5} {f['pipeline']:<26} {f['latent_channels']:>2} ch, sides multiple of {f['size_multiple']:>2}, "
              f"scale {f['scale']:g} shift {f['shift']:g}, cfg {f['default_cfg']:g}; samplers: {', '.join(f['samplers'])}")
    print("installed:")
    if not installed:
        print("  (none: the embedded model is missing and no diffusers folders were found)")
    for m in installed:
        extra = f", {m['size_mb']} MB" if "size_mb" in m else ""
        print(f"  {m['name']:<24} {m['family']:<5} {m['path']}{extra}")
    if skipped:
        print(f"({skipped} folder(s) could not be read and were skipped)")
    return 0
