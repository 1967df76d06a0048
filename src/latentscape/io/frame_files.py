"""A sequence of frames that lives on disk: each PNG is read when it is asked for, never all at once.

A morph's frames go to PNG files as they are rendered; :class:`FrameFiles` is how they come back: it
behaves like a list of PIL images (``len``, indexing, slicing, iteration, ``+``) but holds only paths, so
a 10,000-frame render costs a few hundred kilobytes of memory, not gigabytes. Reading a frame decodes its
PNG (lossless: the pixels are exactly the ones rendered). ``owner`` keeps a temporary folder alive as long
as any sequence made from it (slices included) exists; the folder is deleted when the last one is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, overload

from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io.images import load_image


class FrameFiles(Sequence[Image.Image]):
    """Frames as PNG paths, each loaded (as 8-bit RGB) on access. Slices and ``+`` give new FrameFiles."""

    def __init__(self, paths: Iterable[str | os.PathLike], *, owner: Any = None, gone: str = ""):
        self.paths: tuple[Path, ...] = tuple(Path(p) for p in paths)
        self.owner = owner  # e.g. a tempfile.TemporaryDirectory: removed when no sequence refers to it
        self.gone = gone  # why a frame's file may have been removed, for the error when one is read

    def _load(self, index: int) -> Image.Image:
        path = self.paths[index]
        if not path.is_file():
            raise LatentscapeError(f"frame {index} ('{path}') is no longer on disk{self.gone}.")
        return load_image(path)

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, index: int) -> Image.Image: ...

    @overload
    def __getitem__(self, index: slice) -> "FrameFiles": ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return FrameFiles(self.paths[index], owner=self.owner, gone=self.gone)
        return self._load(index)

    def __iter__(self) -> Iterator[Image.Image]:
        for index in range(len(self.paths)):
            yield self._load(index)

    def __add__(self, other: "FrameFiles") -> "FrameFiles":
        if not isinstance(other, FrameFiles):
            return NotImplemented
        owner = self.owner if other.owner is None or other.owner is self.owner else (
            other.owner if self.owner is None else (self.owner, other.owner))
        return FrameFiles(self.paths + other.paths, owner=owner, gone=self.gone or other.gone)

    def __repr__(self) -> str:
        where = f" in '{self.paths[0].parent}'" if self.paths else ""
        return f"FrameFiles({len(self.paths)} frames{where})"
