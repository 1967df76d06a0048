"""Helpers for the exploration-workflow tests: one loaded tiny model per family, standalone references."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import latentscape
from latentscape.workflows.generate import GenerateConfig, generate

FAMILIES = ("tiny_sd", "tiny_sd_v", "tiny_sdxl", "tiny_sd3", "tiny_flux", "tiny_flux_schnell")
FAST = dict(steps=2, width=32, height=32)  # every family runs at 32x32 (FLUX's side multiple is 16)
_MODELS: dict[str, object] = {}


def load_family(request: pytest.FixtureRequest, fixture: str):
    """The tiny model of ``fixture``, loaded once per test session."""
    if fixture not in _MODELS:
        _MODELS[fixture] = latentscape.load(str(request.getfixturevalue(fixture)))
    return _MODELS[fixture]


def pixels(images) -> np.ndarray:
    images = images if isinstance(images, (list, tuple)) else [images]
    return np.stack([np.asarray(im.convert("RGB")) for im in images]).astype(np.int16)


def max_diff(a, b) -> int:
    return int(np.abs(pixels(a) - pixels(b)).max())


def assert_same(a, b, tol: int = 1) -> None:
    """Equal up to ``tol``/255 per channel (batched vs single forwards differ by float rounding only)."""
    d = max_diff(a, b)
    assert d <= tol, f"max pixel difference {d} > {tol}"


def standalone(model, prompt: str, seed: int, cfg: float | None = 5.0, **kw) -> Image.Image:
    """The reference: ``generate`` of one prompt and seed."""
    return generate(model, GenerateConfig(prompt=prompt, seed=seed, cfg=cfg, **{**FAST, **kw})).images[0]
