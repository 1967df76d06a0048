"""Animations out: mp4 (H.264), gif and webp written atomically, ping-pong ordering, and PNG frame folders."""

from __future__ import annotations

import contextlib
import numbers
import os
import re
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io.animation import write_gif, write_webp
from latentscape.io.files import atomic_path
from latentscape.io.frame_files import FrameFiles
from latentscape.io.images import load_image, to_rgb

if TYPE_CHECKING:
    from latentscape.io.recipe import Recipe

Frame = Image.Image | np.ndarray  # a PIL image (any mode, converted to RGB) or a uint8 (H, W, 3) array
T = TypeVar("T")

VIDEO_FORMATS: tuple[str, ...] = (".mp4", ".gif", ".webp")
MP4_CRF = 18  # x264 constant-quality level: visually near-lossless, the usual "high quality" choice
WEBP_QUALITY = 90
MIN_FRAME_MS = 20  # browsers replace GIF delays under 20 ms (2 cs) with ~100 ms, making fast animations slow
_FRAME_FILE = re.compile(r"frame_(\d{5,})\.png")


def check_video_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if its extension is a video format we write (any case), else raise."""
    path = Path(path)
    ext = path.suffix.lower()
    accepted = ", ".join(VIDEO_FORMATS)
    if not ext:
        raise LatentscapeError(f"output '{path}' has no extension; accepted: {accepted}.")
    if ext not in VIDEO_FORMATS:
        raise LatentscapeError(f"output '{path}' has an unknown extension '{path.suffix}'; accepted: {accepted}.")
    return path


def pingpong(frames: Sequence[T]) -> Sequence[T]:
    """Frames forward then backward without repeating either endpoint: [0, 1, 2, 3] -> [0, 1, 2, 3, 2, 1].

    Meant for looping playback: the player's own wrap from the last frame (1) to the first (0) closes the
    loop, so every step is shown once per direction. With 0, 1 or 2 frames there is no interior to
    reverse and the frames come back unchanged ([0, 1] looping already alternates 0, 1, 0, 1 ...).
    """
    if isinstance(frames, FrameFiles):  # frames on disk stay on disk: the reversed part is more paths
        return frames + frames[-2:0:-1]
    frames = list(frames)
    return frames + frames[-2:0:-1]


def frame_duration_ms(fps: float, *, step_ms: int = 1) -> int:
    """Milliseconds per frame: ``1000 / fps`` rounded to a multiple of ``step_ms``, never below ``MIN_FRAME_MS``.

    GIF stores delays in centiseconds (``step_ms=10``); Pillow would truncate 67 ms to 60 ms, so round here.
    """
    return max(MIN_FRAME_MS, step_ms * round(1000 / fps / step_ms))


def write_video(frames: Iterable[Frame], path: str | os.PathLike, *, fps: float = 12, loop: bool = True,
                recipe: "Recipe | None" = None) -> Path:
    """Write ``frames`` (same-size PIL images or uint8 (H, W, 3) arrays) as .mp4, .gif or .webp; return the path.

    ``frames`` may be any iterable (a list, a :class:`~latentscape.io.frame_files.FrameFiles` of PNGs, a
    generator): it is consumed once, one frame at a time, so memory does not grow with the frame count.

    With ``recipe`` the video carries its infotext and recipe where the format has room (:func:`video_tags`):
    MP4 metadata keys ``parameters`` (A1111 infotext; civitai reads it) and ``comment`` (the JSON recipe);
    GIF a comment extension with the infotext; WebP the infotext in EXIF UserComment, as A1111 writes its
    own WebP files (PNG Info reads it).

    - ``.mp4``: H.264 (libx264, crf 18, yuv420p, ``+faststart``) through imageio-ffmpeg's bundled ffmpeg.
      H.264 in yuv420p needs even sides, so an odd width/height gets one replicated edge column/row (never
      rescaled). MP4 has no loop flag: ``loop`` is up to the player.
    - ``.gif``: Pillow, one adaptive 256-colour palette per frame, each frame shown ``frame_duration_ms``
      (at least 20 ms, rounded to GIF's whole centiseconds: 12 fps -> 80 ms); loops forever when ``loop``,
      else plays once. Pillow merges identical consecutive frames into one longer frame, so ``n_frames``
      read back can be lower while the timing is kept.
    - ``.webp``: Pillow animated WebP at quality 90 with the same per-frame duration and loop rule
      (libwebp likewise merges consecutive frames that look the same after lossy coding).

    The file is written under a temporary name and renamed into place only when complete, so a failure
    (or interrupt) part-way leaves neither a broken video nor a temp file, and keeps any earlier file.
    """
    path = check_video_path(path)
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < fps < float("inf"):
        raise LatentscapeError(f"fps got {fps!r}; accepted: a number greater than 0, e.g. 12.")
    fps = float(fps)
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise LatentscapeError(f"no frames to write to '{path}'; accepted: at least one frame.")
    size = _frame_size(first, 0)
    checked = _same_size(first, stream, size)  # a frame of another size stops the write: nothing is kept
    ext = path.suffix.lower()
    with atomic_path(path) as tmp:
        tags = video_tags(recipe)
        if ext == ".mp4":
            _write_mp4(checked, tmp, size=size, fps=fps, name=path, tags=tags)
        elif ext == ".gif":
            _write_gif(checked, tmp, fps=fps, loop=loop, comment=tags.get("parameters"))
        else:
            _write_webp(checked, tmp, fps=fps, loop=loop, comment=tags.get("parameters"))
    return path


def video_tags(recipe: "Recipe | None") -> dict[str, str]:
    """The metadata a video carries: ``parameters`` (the infotext) and ``comment`` (the JSON recipe)."""
    return {} if recipe is None else {"parameters": recipe.infotext(), "comment": recipe.to_json()}


def user_comment_exif(text: str) -> bytes:
    """EXIF bytes holding ``text`` as UserComment in the UNICODE (UTF-16, big-endian) encoding, the way A1111
    stores infotext in JPEG and WebP files."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    return exif.tobytes()


def _ffmetadata(tags: dict[str, str]) -> str:
    """``tags`` in ffmpeg's FFMETADATA1 file format (``=``, ``;``, ``#``, ``\\`` and newlines escaped)."""
    def esc(text: str) -> str:
        for c in ("\\", "=", ";", "#", "\n"):
            text = text.replace(c, "\\" + c)
        return text

    return ";FFMETADATA1\n" + "".join(f"{esc(k)}={esc(v)}\n" for k, v in tags.items())


def save_frames(frames: Iterable[Frame], folder: str | os.PathLike, start: int = 0,
                recipe_of: "Callable[[int], Recipe | None] | None" = None) -> list[Path]:
    """Write each frame losslessly as ``folder/frame_00000.png``, ``frame_00001.png`` ... numbered from ``start``.

    Each PNG is written atomically, so after an interruption every file present is complete and a render
    can resume at the next index. ``frames`` may be a generator (written as it yields). ``recipe_of(index)``
    gives frame ``index``'s recipe: its PNG then carries that infotext and recipe, as every PNG of ours does.
    Returns the paths.
    """
    if start < 0:
        raise LatentscapeError(f"start got {start}; accepted: a frame index of 0 or more.")
    folder = Path(folder)
    paths: list[Path] = []
    for index, frame in enumerate(frames, start=start):
        _frame_size(frame, index)
        target = folder / f"frame_{index:05d}.png"
        recipe = recipe_of(index) if recipe_of is not None else None
        if recipe is not None:
            from latentscape.io.recipe import save_png

            save_png(_rgb_image(frame), target, recipe)
        else:
            with atomic_path(target) as tmp:
                _rgb_image(frame).save(tmp, format="PNG")
        paths.append(target)
    return paths


def read_frames(folder: str | os.PathLike) -> list[Image.Image]:
    """Load the ``frame_NNNNN.png`` files of ``folder`` as RGB images, in frame-number order.

    Other files (including unfinished temp files) are ignored; a folder with no frames gives [].
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LatentscapeError(
            f"frame folder '{folder}' does not exist; accepted: a folder of frame_00000.png ... files."
        )
    numbered = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _FRAME_FILE.fullmatch(p.name))]
    return [load_image(p) for _, p in sorted(numbered)]


def _frame_size(frame: Frame, index: int) -> tuple[int, int]:
    """(width, height) of a frame, raising for anything that is not a PIL image or uint8 (H, W, 3) array."""
    if isinstance(frame, Image.Image):
        w, h = frame.size
    elif isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3:
        h, w = frame.shape[:2]
    else:
        got = f"array {frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise LatentscapeError(f"frame {index} is a {got}; accepted: PIL images or uint8 arrays shaped (H, W, 3).")
    if w == 0 or h == 0:
        raise LatentscapeError(f"frame {index} is empty ({w}x{h}); accepted: frames at least 1x1 pixels.")
    return w, h


def _same_size(first: Frame, rest: Iterator[Frame], size: tuple[int, int]) -> Iterator[Frame]:
    """The frames, each checked as it passes to be ``size`` (width, height); raise naming the first that is not."""
    yield first
    for index, frame in enumerate(rest, start=1):
        other = _frame_size(frame, index)
        if other != size:
            raise LatentscapeError(
                f"frame {index} is {other[0]}x{other[1]} but frame 0 is {size[0]}x{size[1]}; "
                "accepted: frames that all have the same size."
            )
        yield frame


def _rgb_image(frame: Frame) -> Image.Image:
    """A validated frame as an RGB PIL image."""
    return to_rgb(frame) if isinstance(frame, Image.Image) else Image.fromarray(frame, mode="RGB")


def _gif_frame(frame: Frame) -> Image.Image:
    """An RGB frame reduced to its own adaptive 256-colour palette (no dithering, so loops don't shimmer)."""
    return _rgb_image(frame).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)


def _even(array: np.ndarray) -> np.ndarray:
    """Pad an (H, W, 3) array to even H and W by repeating its last row/column."""
    h, w = array.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return array
    return np.pad(array, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _write_gif(frames: Iterator[Frame], tmp: Path, *, fps: float, loop: bool, comment: str | None = None) -> None:
    """Animated GIF, each frame reduced to its palette as it is written (:func:`latentscape.io.animation.write_gif`)."""
    with open(tmp, "wb") as fp:
        write_gif((_gif_frame(f) for f in frames), fp, duration=frame_duration_ms(fps, step_ms=10), loop=loop,
                  comment=comment.encode("utf-8") if comment else None)  # a GIF comment extension: any length


def _write_webp(frames: Iterator[Frame], tmp: Path, *, fps: float, loop: bool, comment: str | None = None) -> None:
    """Animated WebP (lossy, quality 90); loop count 0 is forever, 1 plays once."""
    with open(tmp, "wb") as fp:
        write_webp((_rgb_image(f) for f in frames), fp, duration=frame_duration_ms(fps), loop=loop, quality=WEBP_QUALITY,
                   exif=user_comment_exif(comment) if comment else None)


def _write_mp4(frames: Iterable[Frame], tmp: Path, *, size: tuple[int, int], fps: float, name: Path,
               tags: dict[str, str] | None = None) -> None:
    """Pipe raw RGB frames into ffmpeg/libx264; raise (leaving cleanup to the caller) if ffmpeg fails.

    Uses imageio-ffmpeg's bundled binary directly rather than ``imageio_ffmpeg.write_frames`` because the
    latter never checks ffmpeg's exit status, and a failed encode must not be renamed into place.
    """
    import imageio_ffmpeg

    w, h = size[0] + size[0] % 2, size[1] + size[1] % 2
    rate = Fraction(fps).limit_denominator(1001)
    meta_in: list[str] = []
    with contextlib.ExitStack() as stack:
        if tags:  # a metadata file, not -metadata arguments: a long recipe would pass the argument size limit
            meta = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".ffmeta", encoding="utf-8"))
            meta.write(_ffmetadata(tags))
            meta.flush()
            meta_in = ["-f", "ffmetadata", "-i", meta.name, "-map", "0:v", "-map_metadata", "1"]
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", str(rate), "-i", "-", *meta_in,
            "-an", "-c:v", "libx264", "-crf", str(MP4_CRF), "-pix_fmt", "yuv420p",
            # use_metadata_tags: keep keys MP4 has no atom for (``parameters``) as mdta tags
            "-movflags", "+faststart+use_metadata_tags", "-f", "mp4", str(tmp),
        ]  # fmt: skip
        _run_ffmpeg(cmd, frames, name)


def _run_ffmpeg(cmd: list[str], frames: Iterable[Frame], name: Path) -> None:
    """Feed the frames to ffmpeg's stdin; raise if it fails."""
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty ffmpeg can't block on a full pipe
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        assert proc.stdin is not None
        try:
            try:
                for frame in frames:
                    proc.stdin.write(_even(np.asarray(_rgb_image(frame))).tobytes())
                proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg exited early: its exit status and log below say why
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            with contextlib.suppress(OSError):  # unflushed bytes for a dead ffmpeg
                proc.stdin.close()
        if code != 0:
            log.seek(0)
            detail = " ".join(log.read().decode(errors="replace").split())[-500:] or "no message"
            raise RuntimeError(f"ffmpeg failed to write '{name}' (exit status {code}): {detail}")
