"""latentscape: hold and steer the latent space of latent diffusion models.

The public Python API. Heavy imports (torch, diffusers) happen lazily inside the functions.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "LatentscapeError"]

from latentscape.errors import LatentscapeError


def load(model: str | None = None, **kwargs):
    """Load a model: ``None``/``"embedded"``, a local diffusers folder, a hub id or a single file.

    See :func:`latentscape.models.load.load` for the keyword arguments.
    """
    from latentscape.models.load import load as _load

    return _load(model, **kwargs)
