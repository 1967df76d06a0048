"""GIF and WebP animations written frame by frame, byte for byte what Pillow's ``save_all`` writes.

Pillow's animated writers hold every frame until the end: the GIF writer keeps each frame (one byte per
pixel) to compare it with the next, and the WebP writer turns ``append_images`` into a list first. For a
long morph that is memory growing with the frame count. These writers take an iterator and keep one frame
(GIF: the frame not yet written, which a following identical frame lengthens, as Pillow merges them; WebP:
none, libwebp's encoder holds only the compressed frames). They reuse Pillow's own per-frame steps
(palette normalisation, the changed-area box, headers and LZW/VP8 coding), so the files are identical to
``Image.save(..., save_all=True)``'s; tests/io/test_animation.py checks that on every case this project
writes (merged duplicates, a single frame, odd and tiny sizes). Where this Pillow lacks one of those steps
the writers fall back to Pillow's ``save`` (same bytes, frames held in memory).
"""

from __future__ import annotations

from typing import IO, Iterator

from PIL import Image


def _gif_steps():
    """Pillow's GIF module if it has every per-frame step these writers use, else None."""
    from PIL import GifImagePlugin as gif

    names = ("_normalize_mode", "_normalize_palette", "_getbbox", "_get_global_header", "_write_frame_data")
    return gif if all(hasattr(gif, n) for n in names) else None


def write_gif(frames: Iterator[Image.Image], fp: IO[bytes], *, duration: int, loop: bool, comment: bytes | None) -> None:
    """Animated GIF of palette (``P``) frames, each shown ``duration`` ms; ``loop`` forever or play once.

    Mirrors Pillow's ``_write_multiple_frames`` for these options (no transparency, disposal or palette
    optimisation): the first frame carries the global header, every later one only the box that changed
    since the previous frame, with its own colour table; a frame identical to the previous one lengthens
    it instead of being written.
    """
    params: dict = {"duration": duration, "optimize": False}
    if loop:
        params["loop"] = 0  # no NETSCAPE2.0 block at all means "play once"
    if comment:
        params["comment"] = comment
    gif = _gif_steps()
    first = _bare(next(frames))
    if gif is None:
        first.save(fp, format="GIF", save_all=True, append_images=(_bare(f) for f in frames), **params)
        return
    pending: tuple[Image.Image, tuple | None, dict] | None = None  # the last distinct frame, not yet written
    previous: Image.Image | None = None
    written = 0
    for frame in _chain(first, frames):
        info = dict(params)
        im = gif._normalize_palette(gif._normalize_mode(_bare(frame).copy()), None, info)
        bbox = None
        if previous is not None:
            bbox = gif._getbbox(previous, im)[1]
            if not bbox:  # identical to the previous frame: show that one longer
                pending[2]["duration"] = pending[2].get("duration", 0) + info["duration"]
                continue
        previous = im
        if pending is not None:
            _write_gif_frame(gif, fp, *pending)
            written += 1
        pending = (im, bbox, info)
    assert pending is not None
    if written == 0:  # one distinct frame: Pillow writes a still image with the frames' total duration
        first.save(fp, format="GIF", save_all=True, append_images=[], **{**params, "duration": pending[2]["duration"]})
        return
    _write_gif_frame(gif, fp, *pending)
    fp.write(b";")  # end of file


def _write_gif_frame(gif, fp: IO[bytes], im: Image.Image, bbox: tuple | None, info: dict) -> None:
    if not bbox:  # the first frame: global header, whole canvas
        for block in gif._get_global_header(im, info):
            fp.write(block)
        offset = (0, 0)
    else:
        info["include_color_table"] = True
        if bbox != (0, 0, *im.size):
            im = im.crop(bbox)
        offset = bbox[:2]
    gif._write_frame_data(fp, im, offset, info)


def write_webp(frames: Iterator[Image.Image], fp: IO[bytes], *, duration: int, loop: bool, quality: int,
               exif: bytes | None) -> None:
    """Animated lossy WebP of RGB frames, each shown ``duration`` ms; ``loop`` forever (0) or play once (1).

    Mirrors Pillow's WebP ``_save_all`` for these options: one libwebp animation encoder fed frame by frame
    (keyframes every 3-5 frames, method 0), the EXIF attached when the animation is assembled."""
    from PIL import WebPImagePlugin as webp

    options = {"duration": duration, "quality": quality, "loop": 0 if loop else 1, **({"exif": exif} if exif else {})}
    first = _bare(next(frames))
    second = next(frames, None)
    encoder = getattr(getattr(webp, "_webp", None), "WebPAnimEncoder", None)
    if second is None or encoder is None:  # a single frame is a still WebP; an unknown Pillow does it itself
        rest = [] if second is None else _chain(second, frames)
        first.save(fp, format="WEBP", save_all=True, append_images=(_bare(f) for f in rest), **options)
        return
    # Pillow's defaults for lossy animations: transparent black background, kmin 3, kmax 5, alpha quality 100
    enc = encoder(first.size, 0, options["loop"], False, 3, 5, False, False)
    timestamp = 0
    for frame in _chain(first, _chain(second, frames)):
        enc.add(_bare(frame).getim(), round(timestamp), False, quality, 100, 0)
        timestamp += duration
    enc.add(None, round(timestamp), False, quality, 100, 0)
    data = enc.assemble("", exif or "", "")
    if data is None:
        raise OSError("cannot write file as WebP (encoder returned None)")
    fp.write(data)


def _bare(frame: Image.Image) -> Image.Image:
    """``frame`` without its metadata: what a frame came from (a PNG's text chunks, a GIF's background
    index) must not change the animation, so every frame is written as a freshly decoded one would be."""
    if frame.info:
        frame = frame.copy()
        frame.info = {}
    return frame


def _chain(first: Image.Image, rest: Iterator[Image.Image]) -> Iterator[Image.Image]:
    yield first
    yield from rest
