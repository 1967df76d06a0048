"""Image keyframes: read them all, check they share one size (or bring them to it with --resize)."""

from __future__ import annotations

from typing import Sequence

from PIL import Image

from latentscape.io.images import fit_size, load_image
from latentscape.errors import LatentscapeError
from latentscape.workflows.keyframes import Keyframe

RESIZE_HINT = "pass --resize stretch (scale) or --resize crop (centre crop, then scale)"


def _to_size(image: Image.Image, size: tuple[int, int], resize: str) -> Image.Image:
    if image.size == size:
        return image
    if resize == "crop":
        w, h = image.size
        target = size[0] / size[1]
        cw, ch = (round(h * target), h) if w / h > target else (w, round(w / target))
        left, top = (w - cw) // 2, (h - ch) // 2
        image = image.crop((left, top, left + cw, top + ch))
    return image.resize(size, Image.Resampling.LANCZOS)


def load_keyframe_images(
    keyframes: Sequence[Keyframe],
    width: int | None,
    height: int | None,
    resize: str,
    multiple: int | None,
) -> tuple[dict[int, Image.Image], tuple[int, int] | None]:
    """Read every image keyframe (a clear error for a missing or unreadable file) and return them at one size.

    The size is ``width`` x ``height`` when given, else the first image's. An image of another size is an
    error naming both sizes unless ``resize`` is ``stretch`` or ``crop``. ``multiple`` (the model's size
    multiple; None skips the check) applies the same rule as ``generate``'s img2img. Returns
    ({keyframe index: image}, (width, height)) or ({}, None) when no keyframe is an image.
    """
    images = {i: load_image(kf.image) for i, kf in enumerate(keyframes) if kf.image is not None}
    if not images:
        return {}, None
    first = min(images)
    if width and height:
        size, what = (int(width), int(height)), "--size"
    else:
        size, what = images[first].size, f"keyframe image '{keyframes[first].image}'"
    if resize not in ("stretch", "crop"):
        for i, im in images.items():
            if im.size != size:
                raise LatentscapeError(
                    f"keyframe image '{keyframes[i].image}' is {im.width}x{im.height} but {what} is {size[0]}x{size[1]}; "
                    f"image keyframes must share one size: resize them, or {RESIZE_HINT} to bring them to {size[0]}x{size[1]}."
                )
    natural = images[first].size
    if multiple is not None and not (width and height):  # as generate's img2img: fit to the model's multiple
        size = fit_size(images[first], multiple, resize, name=f"keyframe image '{keyframes[first].image}'").size
        return {i: fit_size(im, multiple, resize) if im.size == natural else _to_size(im, size, resize)
                for i, im in images.items()}, size
    return {i: _to_size(im, size, resize) for i, im in images.items()}, size
