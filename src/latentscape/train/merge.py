"""Weight-space ensemble of two exported models (WiSE-FT): a fine-tune's new abilities at part of its cost.

A fine-tune that learns something new (coarse captions) tends to lose some of what the model it started
from did well (exact base-name pictures). Interpolating the two sets of weights,
``(1 - alpha) * base + alpha * tuned``, keeps much of both when ``tuned`` was fine-tuned from ``base``
(Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"). The UNet and text encoder are merged;
everything else (VAE, tokenizer, scheduler, preview factors) comes from ``tuned``, whose folder is
copied and whose ``latentscape.json`` records the merge.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

from latentscape.errors import LatentscapeError
from latentscape.train.export import MANIFEST, folder_mb
from latentscape.train.loop import check_replaceable, replace_folder

MERGED = {"unet": "diffusion_pytorch_model.safetensors", "text_encoder": "model.safetensors"}
# keys of a component's config.json that name where it came from, not what it is
_PROVENANCE = ("_name_or_path", "_diffusers_version", "transformers_version")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _config(folder: Path, component: str) -> dict:
    config = json.loads((folder / component / "config.json").read_text())
    return {k: v for k, v in config.items() if k not in _PROVENANCE}


def check(base: Path, tuned: Path, alpha: float) -> None:
    """Refuse, before anything is read into memory or written, what cannot be merged."""
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise LatentscapeError(f"--alpha {alpha!r} is not allowed; it takes a number from 0 (the base model) to 1 (the fine-tune).")
    for flag, folder in (("--base", base), ("--tuned", tuned)):
        for component, weights in MERGED.items():
            for name in ("config.json", weights):
                f = Path(folder) / component / name
                if f.is_symlink() or not f.is_file():
                    raise LatentscapeError(f"{flag} '{folder}' has no {component}/{name}; pass an exported model folder "
                                           "(what `latentscape train export` writes).")
    for component in MERGED:
        if _config(base, component) != _config(tuned, component):
            raise LatentscapeError(f"--base and --tuned have different {component} configs; only a fine-tune and the "
                                   "model it started from (one architecture) can be merged.")


def merge(base: Path, tuned: Path, alpha: float, out: Path) -> Path:
    """Write ``out``: a copy of ``tuned`` whose UNet and text encoder are ``(1 - alpha) * base + alpha * tuned``
    (computed in float32, stored in ``tuned``'s dtypes)."""
    import torch
    from safetensors.torch import load_file, save_file

    base, tuned, out = Path(base), Path(tuned), Path(out)
    check(base, tuned, alpha)
    for folder in (out, out.with_name(out.name + ".partial"), out.with_name(out.name + ".old")):
        check_replaceable(folder)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(tuned, tmp, symlinks=False, ignore=shutil.ignore_patterns("*.partial", "*.old"))
    record = {"alpha": float(alpha), "base": base.name, "tuned": tuned.name, "components": sorted(MERGED)}
    for component, weights in MERGED.items():
        a, b = load_file(str(base / component / weights)), load_file(str(tuned / component / weights))
        if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
            shutil.rmtree(tmp)
            raise LatentscapeError(f"--base and --tuned have different {component} weights (names or shapes); only a "
                                   "fine-tune and the model it started from can be merged.")
        merged = {k: torch.lerp(a[k].float(), b[k].float(), float(alpha)).to(b[k].dtype) if b[k].is_floating_point() else b[k]
                  for k in b}
        save_file(merged, str(tmp / component / weights), metadata={"format": "pt"})
        record[f"{component}_sha256"] = {"base": _sha(base / component / weights), "tuned": _sha(tuned / component / weights)}
    manifest_path = tmp / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    trained = manifest.setdefault("trained", {})
    base_manifest = base / MANIFEST
    if base_manifest.is_file():
        record["base_diffusion"] = json.loads(base_manifest.read_text()).get("trained", {}).get("diffusion", {})
    trained["merge"] = record
    manifest_path.write_text(json.dumps(manifest, indent=2))
    replace_folder(tmp, out)
    return out


def describe(out: Path) -> str:
    return f"merged {out} ({folder_mb(out):.1f} MB)"
