"""The one place for image modes, EXIF orientation, sizes and the [0, 255] <-> [-1, 1] conversion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from latentscape.errors import LatentscapeError

ResizeMode = Literal["none", "stretch", "crop"]
RESIZE_MODES: tuple[str, ...] = ("none", "stretch", "crop")
WHITE = (255, 255, 255)


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open any image PIL reads as 8-bit RGB: EXIF orientation applied, transparency composited on white."""
    path = Path(path)
    if not path.is_file():
        raise LatentscapeError(f"image file '{path}' does not exist (expected a PNG, JPEG, WebP or other image file).")
    try:
        with Image.open(path) as im:
            im.load()
            image = ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise LatentscapeError(
            f"'{path}' is not an image that can be read ({type(exc).__name__}); accepted are PNG, JPEG, WebP, "
            "BMP, TIFF and other formats Pillow opens."
        ) from None
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (RGBA, LA, P, CMYK, I;16, I, F, 1, L ...) to RGB, alpha composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if (mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        arr = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode in ("P", "PA"):
        image = image.convert("RGBA" if mode == "PA" else "RGB")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def nearest_multiple(value: int, multiple: int) -> int:
    """The multiple of ``multiple`` nearest to ``value`` (halves round up; at least ``multiple``)."""
    return max(multiple, (value + multiple // 2) // multiple * multiple)


def fit_size(
    image: Image.Image,
    multiple: int,
    resize: str = "none",
    *,
    size: tuple[int, int] | None = None,
    name: str = "image",
) -> Image.Image:
    """Return ``image`` at a size the model accepts.

    ``size`` (W, H) asks for an exact size (stretched to it). Otherwise a size that is not a multiple of
    ``multiple`` is an error unless ``resize`` says what to do: ``stretch`` to the nearest valid size or
    ``crop`` the centre down to the largest valid size inside the image.
    """
    if resize not in RESIZE_MODES:
        raise LatentscapeError(f"--resize got '{resize}'; accepted values are {', '.join(RESIZE_MODES)}.")
    w, h = image.size
    if size is not None:
        check_size(*size, multiple=multiple)
        return image if (w, h) == tuple(size) else image.resize(tuple(size), Image.Resampling.LANCZOS)
    if w % multiple == 0 and h % multiple == 0:
        return image
    if resize == "stretch":
        return image.resize((nearest_multiple(w, multiple), nearest_multiple(h, multiple)), Image.Resampling.LANCZOS)
    if resize == "crop":
        cw, ch = max(multiple, w // multiple * multiple), max(multiple, h // multiple * multiple)
        if cw > w or ch > h:
            return image.resize((cw, ch), Image.Resampling.LANCZOS)
        left, top = (w - cw) // 2, (h - ch) // 2
        return image.crop((left, top, left + cw, top + ch))
    nw, nh = nearest_multiple(w, multiple), nearest_multiple(h, multiple)
    raise LatentscapeError(
        f"{name} is {w}x{h}, which is not a multiple of {multiple} for this model; the nearest valid size is "
        f"{nw}x{nh}: resize it, or pass --resize stretch (to {nw}x{nh}) or --resize crop (centre crop)."
    )


def check_size(width: int, height: int, multiple: int) -> None:
    """Raise a one-sentence error unless width and height are positive multiples of ``multiple``."""
    if width <= 0 or height <= 0 or width % multiple or height % multiple:
        nw, nh = nearest_multiple(max(width, 1), multiple), nearest_multiple(max(height, 1), multiple)
        raise LatentscapeError(
            f"size {width}x{height} is not a multiple of {multiple} for this model; the nearest valid size is {nw}x{nh}."
        )


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``512x512``) into (width, height)."""
    parts = text.lower().replace("*", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise LatentscapeError(f"--size got '{text}'; expected WIDTHxHEIGHT in pixels, e.g. 512x512.")
    return int(parts[0]), int(parts[1])


def pil_to_tensor(images: Sequence[Image.Image]):
    """RGB PIL images (same size) -> float32 tensor (B, 3, H, W) in [-1, 1], as diffusers' VaeImageProcessor."""
    import torch

    arr = np.stack([np.asarray(to_rgb(im), dtype=np.float32) / 255.0 for im in images])  # (B, H, W, 3)
    return torch.from_numpy(arr).permute(0, 3, 1, 2) * 2.0 - 1.0


def tensor_to_uint8(images) -> np.ndarray:
    """Tensor (B, 3, H, W) in [-1, 1] -> uint8 array (B, H, W, 3), rounded exactly as diffusers does."""
    arr = (images / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy()
    return (arr * 255).round().astype("uint8")


def tensor_to_pil(images) -> list[Image.Image]:
    """Tensor (B, 3, H, W) in [-1, 1] -> RGB PIL images."""
    return [Image.fromarray(a) for a in tensor_to_uint8(images)]
