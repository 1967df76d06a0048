"""Frame distances for perceptual pacing: LPIPS where its weights are on this machine, else an offline proxy.

- ``lpips``: LPIPS (Zhang et al. 2018, AlexNet variant) from the ``lpips`` package. Used only when the
  package is installed and torchvision's AlexNet checkpoint is already in the torch hub cache
  (``torch.hub.get_dir()/checkpoints``): nothing is ever downloaded.
- ``lab``: the offline proxy, :func:`latentscape.core.pacing.lab_distance`: mean CIELAB ΔE*ab over three
  scales. No weights, deterministic, and it sees both colour shifts (which LPIPS partly ignores) and
  layout changes (through the coarse scales); it is blind to texture semantics, which matter little for
  pacing a morph whose frames share one model's style.
- ``auto`` (the default): ``lpips`` when available, else ``lab``.

Smoothness reports add a second, independent distance, ``ssim`` (1 − SSIM over three scales,
:func:`latentscape.core.smoothness.ssim_distance`), which no pacing optimises.

Distances are computed from the 8-bit frames exactly as saved, so a resumed render measures the same
numbers as an uninterrupted one.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from latentscape.core.pacing import lab_distance, lab_feature_distance, lab_features
from latentscape.core.smoothness import (SmoothnessReport, adjacent_pairs, ssim_distance, ssim_feature_distance, ssim_features,
                                         step_stats)
from latentscape.errors import LatentscapeError

DISTANCES = ("auto", "lab", "lpips")
ALEXNET_CHECKPOINT = "alexnet-owt-7be5be79.pth"  # what torchvision (and so lpips) loads for AlexNet

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (B, 3, H, W) in [0, 1] twice -> (B,)


def lpips_available() -> bool:
    """The lpips package is importable and torchvision's AlexNet weights are in the local torch hub cache."""
    import importlib.util

    if importlib.util.find_spec("lpips") is None or importlib.util.find_spec("torchvision") is None:
        return False
    return (Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_CHECKPOINT).is_file()


def resolve_distance(name: str) -> str:
    """``auto`` -> the metric this machine will use; an unavailable ``lpips`` is a one-sentence error."""
    if name not in DISTANCES:
        raise LatentscapeError(f"--distance got '{name}'; accepted: {', '.join(DISTANCES)}.")
    if name == "auto":
        return "lpips" if lpips_available() else "lab"
    if name == "lpips" and not lpips_available():
        raise LatentscapeError(
            "--distance lpips needs the lpips package and torchvision's AlexNet weights in the local torch hub cache "
            f"({ALEXNET_CHECKPOINT}); use --distance lab (the offline proxy) or auto."
        )
    return name


@functools.lru_cache(maxsize=1)
def _lpips_model():
    import lpips

    return lpips.LPIPS(net="alex", verbose=False).eval()


def _lpips(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return _lpips_model()(x.float() * 2 - 1, y.float() * 2 - 1).flatten().double()


STRUCTURAL = "ssim"  # the report's second distance
METRICS: dict[str, Distance] = {"lab": lab_distance, "lpips": _lpips, STRUCTURAL: ssim_distance}


def _tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0 for im in images])  # (B, H, W, 3)
    return torch.from_numpy(arr).permute(0, 3, 1, 2)


FEATURES = {"lab": (lab_features, lab_feature_distance), STRUCTURAL: (ssim_features, ssim_feature_distance)}


def image_features(image: Image.Image, metric: str):
    """The per-image part of ``metric`` for one image (None for a distance without one, e.g. lpips)."""
    return FEATURES[metric][0](_tensor([image])) if metric in FEATURES else None


def feature_distances(pairs: Sequence[tuple[object, object]], metric: str, chunk: int = 64) -> list[float]:
    """:func:`pair_distances` from per-image features (:func:`image_features`): each image converted once,
    however many pairs it is in (the same numbers to float32 rounding)."""
    fn = FEATURES[metric][1]
    out: list[float] = []
    for i in range(0, len(pairs), chunk):
        part = pairs[i:i + chunk]
        out += fn(_cat([p[0] for p in part]), _cat([p[1] for p in part])).tolist()
    return out


def _cat(items):
    """Concatenate along the batch a list of equally structured (nested lists / tuples of) tensors."""
    first = items[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(items)
    return type(first)(_cat([it[k] for it in items]) for k in range(len(first)))


def pair_distances(pairs: Sequence[tuple[Image.Image, Image.Image]], metric: str, chunk: int = 16) -> list[float]:
    """The distance of each (image, image) pair, ``chunk`` pairs per call of the metric."""
    fn = METRICS[metric]
    out: list[float] = []
    for i in range(0, len(pairs), chunk):
        part = pairs[i:i + chunk]
        out += fn(_tensor([p[0] for p in part]), _tensor([p[1] for p in part])).tolist()
    return out


def consecutive_distances(images: Sequence[Image.Image], metric: str, closed: bool = False, chunk: int = 16) -> list[float]:
    """Distance from each frame to the next (closed paths: and from the last back to the first)."""
    pairs = list(zip(images, images[1:])) + ([(images[-1], images[0])] if closed else [])
    return pair_distances(pairs, metric, chunk)


def smoothness_report(
    images: Sequence[Image.Image],
    metric: str,
    *,
    closed: bool = False,
    model_evaluations: int | None = None,
    full_render_evaluations: int | None = None,
) -> SmoothnessReport:
    """Smoothness of ``images`` by ``metric`` (a resolved perceptual distance) and by the structural one."""
    names = [metric] + ([STRUCTURAL] if metric != STRUCTURAL else [])
    pairs = [(images[i], images[j]) for i, j in adjacent_pairs(len(images), closed)]
    stats = {name: step_stats(pair_distances(pairs, name), frames=len(images)) for name in names}
    return SmoothnessReport(stats, len(images), model_evaluations, full_render_evaluations)
