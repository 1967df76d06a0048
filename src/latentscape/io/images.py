"""The one place for image modes, EXIF orientation, sizes and the [0, 255] <-> [-1, 1] conversion."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from latentscape.errors import LatentscapeError
from latentscape.limits import check_image_file, check_pixels, limit

ResizeMode = Literal["none", "stretch", "crop"]
RESIZE_MODES: tuple[str, ...] = ("none", "stretch", "crop")
WHITE = (255, 255, 255)


# Animated formats whose frame 0 would silently stand for the whole animation: refused (multi-page TIFFs
# and MPO photos, whose first page is the picture itself, are read as their first page).
ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")


@contextlib.contextmanager
def decode_limits() -> Iterator[None]:
    """While an untrusted image is read: PNG text chunks bounded by latentscape's limits (text-chunk bombs),
    and the pixel bound of :func:`open_untrusted` in place of Pillow's own (which would refuse a file the
    user allowed with ``LATENTSCAPE_MAX_IMAGE_PIXELS``, or only warn)."""
    saved = PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY, Image.MAX_IMAGE_PIXELS
    PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY = limit("max_text_chunk"), limit("max_text_memory")
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY, Image.MAX_IMAGE_PIXELS = saved


def open_untrusted(path: Path, name: str) -> Image.Image:
    """``Image.open`` with the file's pixel count checked from its header before anything is decoded.

    The caller closes the image (use it in a ``with``). Every way a damaged or hostile file makes Pillow
    fail becomes one :class:`LatentscapeError` sentence; call it (and the image's ``load()``) inside
    :func:`decode_limits` and :func:`pillow_errors`.
    """
    im = Image.open(path)
    try:
        check_image_file(*im.size, name=name)
    except LatentscapeError:
        im.close()
        raise
    return im


@contextlib.contextmanager
def pillow_errors(name: str, expected: str, hint: str = "") -> Iterator[None]:
    """Turn whatever Pillow raises on a damaged, truncated or hostile file into one sentence.

    Pillow's decoders raise many types on bad bytes (OSError, SyntaxError, struct.error, zlib.error,
    EOFError, IndexError, ...), so everything but our own sentences and interrupts is translated.
    ``hint`` (starting with "; ") is appended to the sentence.
    """
    try:
        yield
    except LatentscapeError:
        raise
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: any decoder failure is the file's
        if isinstance(exc, ValueError) and "MAX_TEXT" in str(exc):
            raise LatentscapeError(
                f"{name} has PNG text chunks above the limit of {limit('max_text_chunk'):,} bytes each and "
                f"{limit('max_text_memory'):,} in all (a text-chunk bomb); raise LATENTSCAPE_MAX_TEXT_CHUNK and "
                "LATENTSCAPE_MAX_TEXT_MEMORY if the file is trusted."
            ) from None
        why = "not an image format Pillow knows" if isinstance(exc, UnidentifiedImageError) else type(exc).__name__
        raise LatentscapeError(f"{name} is not {expected} that can be read ({why}){hint}.") from None


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open any image PIL reads as 8-bit RGB: EXIF orientation applied, transparency composited on white.

    The decoded size is checked from the header first (``LATENTSCAPE_MAX_IMAGE_PIXELS``); animated GIF,
    PNG and WebP files are refused (which frame is meant is the user's choice); a multi-page TIFF or an
    MPO photo gives its first page.
    """
    path = Path(path)
    if not path.is_file():
        raise LatentscapeError(f"image file '{path}' does not exist (expected a PNG, JPEG, WebP or other image file).")
    hint = "; accepted are PNG, JPEG, WebP, BMP, TIFF and other formats Pillow opens"
    with decode_limits(), pillow_errors(f"'{path}'", "an image", hint):
        with open_untrusted(path, f"image '{path}'") as im:
            if im.format in ANIMATED_FORMATS and getattr(im, "is_animated", False):
                raise LatentscapeError(
                    f"'{path}' is an animated {im.format} with {im.n_frames} frames; latentscape reads still images "
                    "only: save the frame you want as a PNG and pass that."
                )
            im.load()
            return to_rgb(ImageOps.exif_transpose(im))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (RGBA, LA, P, CMYK, I;16, I, F, 1, L ...) to RGB, alpha composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = arr.max(initial=0)
        if mode == "F" and peak <= 1.0:
            top = 1.0  # float images (TIFF, EXR-like) store [0, 1]
        else:
            top = 65535.0 if (mode.startswith("I;16") or peak > 255) else 255.0
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
    if size is None:
        check_pixels(w, h, what=f"{name} at")
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
    check_pixels(width, height)


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``512x512``) into (width, height): both at least 1, and within the pixel bound of
    the most permissive family (the model's own bound is checked once it is known)."""
    parts = text.lower().replace("*", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and len(p.strip()) <= 9 for p in parts):
        raise LatentscapeError(f"--size got '{text[:40]}'; expected WIDTHxHEIGHT in pixels, e.g. 512x512.")
    width, height = int(parts[0]), int(parts[1])
    if width < 1 or height < 1:
        raise LatentscapeError(f"--size got '{text}'; width and height must be at least 1 pixel, e.g. 512x512.")
    check_pixels(width, height, what="--size")
    return width, height


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
