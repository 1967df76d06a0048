"""Frames in: a folder of images, an animated GIF / WebP / PNG, or a video (MP4, MOV, MKV, WebM, AVI).

Any tool's output, not only latentscape's: a folder's images are taken in natural name order
(``frame_2`` before ``frame_10``), animations frame by frame as displayed (Pillow applies GIF disposal),
videos decoded to RGB by imageio-ffmpeg's bundled ffmpeg. Every frame comes back as an 8-bit RGB PIL image,
transparency composited on white. Bad input is one sentence (:class:`LatentscapeError`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError

from latentscape.errors import LatentscapeError
from latentscape.io.images import to_rgb

ANIMATION_SUFFIXES = (".gif", ".webp", ".png", ".apng", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_FRAMES = 10_000
MAX_TOTAL_PIXELS = 256 * 2**20  # decoded frames held at once: 768 MiB of RGB
ACCEPTED = "a folder of images, an animated GIF/WebP/PNG, or a video (.mp4, .mov, .mkv, .webm, .avi)"


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class _Budget:
    """Refuses sequences too long or too large to hold, before decoding past the limit."""

    def __init__(self, source: Path):
        self.source, self.frames, self.pixels = source, 0, 0

    def add(self, size: tuple[int, int]) -> None:
        self.frames += 1
        self.pixels += size[0] * size[1]
        if self.frames > MAX_FRAMES:
            raise LatentscapeError(f"'{self.source}' has more than {MAX_FRAMES} frames; score at most {MAX_FRAMES} at a time.")
        if self.pixels > MAX_TOTAL_PIXELS:
            raise LatentscapeError(f"'{self.source}' holds more than {MAX_TOTAL_PIXELS // 2**20} megapixels of frames; "
                                   "score a shorter or smaller sequence.")


def _read_folder(folder: Path) -> list[Image.Image]:
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: _natural_key(p.name))
    budget = _Budget(folder)
    frames = []
    for path in files:
        try:
            with Image.open(path) as im:
                budget.add(im.size)
                im.load()
                frames.append(to_rgb(im))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise LatentscapeError(f"frame '{path}' cannot be read as an image ({type(exc).__name__}).") from None
    return frames


def _read_animation(path: Path) -> list[Image.Image]:
    budget = _Budget(path)
    frames = []
    try:
        with Image.open(path) as im:
            for frame in ImageSequence.Iterator(im):
                budget.add(frame.size)
                frames.append(to_rgb(frame.copy()))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise LatentscapeError(f"'{path}' cannot be read as an image or animation ({type(exc).__name__}).") from None
    return frames


def _read_video(path: Path) -> list[Image.Image]:
    import imageio_ffmpeg

    budget = _Budget(path)
    frames = []
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        width, height = meta["size"]
        for raw in reader:
            budget.add((width, height))
            frames.append(Image.frombytes("RGB", (width, height), bytes(raw)))
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as exc:
        raise LatentscapeError(f"'{path}' cannot be decoded as a video ({type(exc).__name__}); is it a complete, "
                               "supported video file?") from None
    finally:
        reader.close()
    return frames


def read_frames(path: str | os.PathLike, *, minimum: int = 1) -> list[Image.Image]:
    """Every frame of ``path`` as RGB PIL images of one size; at least ``minimum`` of them."""
    path = Path(path)
    if not path.exists():
        raise LatentscapeError(f"'{path}' does not exist; expected {ACCEPTED}.")
    suffix = path.suffix.lower()
    if path.is_dir():
        frames = _read_folder(path)
    elif suffix in VIDEO_SUFFIXES:
        frames = _read_video(path)
    elif suffix in ANIMATION_SUFFIXES:
        frames = _read_animation(path)
    else:
        raise LatentscapeError(f"'{path}' has an unknown extension '{path.suffix}'; expected {ACCEPTED}.")
    if len(frames) < minimum:
        what = "image files" if path.is_dir() else "frames"
        raise LatentscapeError(f"'{path}' has {len(frames)} {what}; at least {minimum} are needed.")
    sizes = sorted({im.size for im in frames})
    if len(sizes) > 1:
        listed = ", ".join(f"{w}x{h}" for w, h in sizes[:4]) + (" ..." if len(sizes) > 4 else "")
        raise LatentscapeError(f"the frames of '{path}' have {len(sizes)} different sizes ({listed}); all frames must be one size.")
    return frames
