"""Upper bounds on what one job or one untrusted file may make latentscape allocate.

Every bound has a default, an environment variable that changes it for a whole session, and a keyword
argument on the function that checks it (the argument wins over the variable, the variable over the
default). The checks take sizes read from headers, so they run *before* any pixel, latent or tensor is
allocated. Pure: no torch, no files.

=================================  ==============================  =====================================
bound                              environment variable            default
=================================  ==============================  =====================================
pixels of one rendered image       ``LATENTSCAPE_MAX_PIXELS``      per family, :data:`FAMILY_MAX_PIXELS`
pixels of one decoded input file   ``LATENTSCAPE_MAX_IMAGE_PIXELS`` 64 Mpx (8192 x 8192)
values in one latent file          ``LATENTSCAPE_MAX_LATENT_VALUES`` 16 M (64 MB of fp32)
one PNG text chunk, decompressed   ``LATENTSCAPE_MAX_TEXT_CHUNK``  1 MiB
all PNG text chunks of one file    ``LATENTSCAPE_MAX_TEXT_MEMORY`` 8 MiB
latent file header (JSON)          ``LATENTSCAPE_MAX_LATENT_HEADER`` 1 MiB
model weights header (JSON)        ``LATENTSCAPE_MAX_MODEL_HEADER`` 64 MiB
=================================  ==============================  =====================================
"""

from __future__ import annotations

import logging
import os

from latentscape.errors import LatentscapeError

log = logging.getLogger(__name__)

MPX = 1 << 20  # one megapixel, as the limits count it (2**20 pixels: 1024 x 1024)

# The largest image a job renders or encodes, per family: 4 Mpx is 2048 x 2048, 16x the area SD1.x/2.x
# were trained at and 4x SDXL/SD3/FLUX's 1024 x 1024. The embedded emoji model is an "sd" model and shares
# its limit (a size it was not trained for only gets a warning, see warn_untrained_size).
FAMILY_MAX_PIXELS: dict[str, int] = {"sd": 4 * MPX, "sdxl": 4 * MPX, "sd3": 4 * MPX, "flux": 4 * MPX}

# name -> (environment variable, default, unit shown in messages)
LIMITS: dict[str, tuple[str, int, str]] = {
    "max_pixels": ("LATENTSCAPE_MAX_PIXELS", 0, "pixels"),  # 0: the family's default
    "max_image_pixels": ("LATENTSCAPE_MAX_IMAGE_PIXELS", 64 * MPX, "pixels"),
    "max_latent_values": ("LATENTSCAPE_MAX_LATENT_VALUES", 16 * MPX, "values"),
    "max_text_chunk": ("LATENTSCAPE_MAX_TEXT_CHUNK", 1 << 20, "bytes"),
    "max_text_memory": ("LATENTSCAPE_MAX_TEXT_MEMORY", 8 << 20, "bytes"),
    "max_latent_header": ("LATENTSCAPE_MAX_LATENT_HEADER", 1 << 20, "bytes"),
    "max_model_header": ("LATENTSCAPE_MAX_MODEL_HEADER", 64 << 20, "bytes"),
}

# A side this many times larger or smaller than the model's own is far outside what it was trained on.
UNTRAINED_SIDE_RATIO = 2.0
_WARNED: set[tuple] = set()  # (width, height, trained size, model) already warned about


def limit(name: str, override: int | None = None) -> int:
    """The value of bound ``name``: ``override`` if given, else its environment variable, else the default."""
    env, default, unit = LIMITS[name]
    if override is not None:
        return _positive(override, f"the {name} argument", unit)
    text = os.environ.get(env, "").strip()
    if not text:
        return default
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    return _positive(value, f"environment variable {env} ('{text[:40]}')", unit)


def _positive(value, what: str, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise LatentscapeError(f"{what} must be a whole number of {unit} > 0.")
    return value


def pixel_limit(family: str | None = None, override: int | None = None) -> int:
    """Pixels one rendered image may have for ``family`` (None: the most any family allows)."""
    value = limit("max_pixels", override)
    if value:
        return value
    return FAMILY_MAX_PIXELS.get(family or "", max(FAMILY_MAX_PIXELS.values()))


def mpx(pixels: int) -> str:
    """``4194304`` -> ``'4.19 Mpx'`` (millions of pixels, as cameras count them)."""
    value = pixels / 1e6
    return f"{value:,.0f} Mpx" if value >= 1000 else f"{value:.3g} Mpx"


def check_pixels(width: int, height: int, *, family: str | None = None, what: str = "size",
                 max_pixels: int | None = None) -> None:
    """Refuse a ``width`` x ``height`` render above the pixel bound for ``family``, before anything is allocated."""
    bound = pixel_limit(family, max_pixels)
    if width * height > bound:
        who = f"{family} models" if family else "any model"
        raise LatentscapeError(
            f"{what} {width}x{height} is {mpx(width * height)}, above the {mpx(bound)} limit for {who}; "
            f"use a smaller size, or raise the limit with the environment variable LATENTSCAPE_MAX_PIXELS (in pixels)."
        )


def check_image_file(width: int, height: int, *, name: str, max_image_pixels: int | None = None) -> None:
    """Refuse an input image whose header says it decodes to more pixels than the bound (decompression bombs)."""
    bound = limit("max_image_pixels", max_image_pixels)
    if width <= 0 or height <= 0:
        raise LatentscapeError(f"{name} says it is {width}x{height} pixels, which no image is; the file is damaged.")
    if width * height > bound:
        raise LatentscapeError(
            f"{name} is {width}x{height} = {mpx(width * height)}, above the {mpx(bound)} limit on input images "
            "(a decompression bomb, or a very large photo); scale it down first, or raise the limit with the "
            "environment variable LATENTSCAPE_MAX_IMAGE_PIXELS (in pixels)."
        )


def check_latent_values(count: int, *, name: str, max_latent_values: int | None = None) -> None:
    """Refuse a latent tensor with more values than the bound (checked from a file's header)."""
    bound = limit("max_latent_values", max_latent_values)
    if count > bound:
        raise LatentscapeError(
            f"{name} holds {count:,} latent values, above the limit of {bound:,}; raise it with the environment "
            "variable LATENTSCAPE_MAX_LATENT_VALUES if the file is trusted."
        )


def check_header_bytes(size: int, *, name: str, bound_name: str, override: int | None = None) -> None:
    """Refuse a file header (safetensors JSON) longer than bound ``bound_name`` before reading it."""
    bound = limit(bound_name, override)
    if size > bound:
        env = LIMITS[bound_name][0]
        raise LatentscapeError(
            f"{name} declares a {size:,}-byte header, above the limit of {bound:,} bytes (a damaged or hostile file); "
            f"raise it with the environment variable {env} if the file is trusted."
        )


def check_render_size(width: int, height: int, *, family: str, trained: tuple[int, int], model: str) -> None:
    """A job's resolved size: refused above the family's pixel bound, a warning when far from ``trained``."""
    check_pixels(width, height, family=family)
    warn_untrained_size(width, height, trained=trained, model=model)


def untrained_size(width: int, height: int, trained: tuple[int, int]) -> bool:
    """Whether a side is more than :data:`UNTRAINED_SIDE_RATIO` times larger or smaller than the model's own."""
    tw, th = trained
    ratios = (width / tw, height / th)
    return any(r > UNTRAINED_SIDE_RATIO or r < 1 / UNTRAINED_SIDE_RATIO for r in ratios)


def warn_untrained_size(width: int, height: int, *, trained: tuple[int, int], model: str) -> bool:
    """Log a warning (the CLI shows it) when ``width`` x ``height`` is far from the size the model was made for.

    Returns whether it warned. Models render at sizes they were not trained for slowly and badly
    (repeated subjects, texture noise), but it is the user's choice, so this is not an error.
    """
    if not untrained_size(width, height, trained) or (width, height, trained, model) in _WARNED:
        return False
    _WARNED.add((width, height, trained, model))  # once per process: a job resolves its size more than once
    log.warning("size %dx%d is far from the %dx%d that model '%s' was trained for: expect repeated or broken shapes "
                "(and a slow render); %dx%d is its own size.", width, height, *trained, model, *trained)
    return True
