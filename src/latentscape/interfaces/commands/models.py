"""`models`: the families latentscape supports and the models installed on this machine."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="families and installed models", description="List supported model families and the models found on this machine.")
    p.add_argument("--scan", action="append", default=[], help="also look for diffusers folders under this folder (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_models)


def _folder_size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def find_models(scan: list[str]) -> list[dict]:
    from latentscape.models.load import EMBEDDED_DIR, PIPELINE_FAMILIES

    found = []
    if (EMBEDDED_DIR / "model_index.json").is_file():
        found.append({"name": "embedded", "family": "sd", "path": str(EMBEDDED_DIR), "size_mb": round(_folder_size_mb(EMBEDDED_DIR), 1)})
    roots = [Path(p) for p in scan]
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    if hub.is_dir():
        roots.append(hub)
    for root in roots:
        for index in sorted(root.rglob("model_index.json")) if root.is_dir() else []:
            try:
                cls = json.loads(index.read_text()).get("_class_name", "")
            except (OSError, ValueError):
                continue
            family = PIPELINE_FAMILIES.get(cls)
            if family:
                name = index.parent.parent.parent.name.removeprefix("models--").replace("--", "/") if "snapshots" in index.parts else str(index.parent)
                found.append({"name": name, "family": family, "path": str(index.parent), "pipeline": cls})
    return found


def run_models(args: argparse.Namespace) -> int:
    from latentscape.models.latent_format import FORMATS
    from latentscape.models.load import family_classes
    from latentscape.samplers import sampler_names

    families = []
    for name, cls in family_classes().items():
        lf = FORMATS[name]
        families.append({"family": name, "pipeline": cls.pipeline_class, "latent_channels": lf.channels,
                         "size_multiple": lf.size_multiple, "scale": lf.scale, "shift": lf.shift,
                         "default_cfg": cls.default_cfg, "samplers": sampler_names(cls.is_flow)})
    installed = find_models(args.scan)
    if args.json:
        print(json.dumps({"families": families, "installed": installed}, indent=2))
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
    return 0
