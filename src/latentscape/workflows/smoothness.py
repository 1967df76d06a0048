"""Score any frame sequence's smoothness: a frame folder, an animation or a video, by both distances.

Frames are measured as they stream past (:func:`adjacent_distances`): each is read once, in small chunks,
and converted to float32, so scoring a 10,000-frame render holds a chunk of frames, never all of them.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from latentscape.core.smoothness import SmoothnessReport, step_stats
from latentscape.io.memory import large_blocks_unmapped
from latentscape.workflows.morph_pacing import METRICS, STRUCTURAL, resolve_distance

MIN_FRAMES = 3  # two adjacent steps: the least that can be uneven
CHUNK = 8  # frames converted and measured at once


def _tensor(pixels: Sequence[np.ndarray]) -> torch.Tensor:
    """(B, 3, H, W) float32 in [0, 1] from (H, W, 3) 8-bit frames, made as one float buffer (divided in place)."""
    arr = np.stack(pixels).astype(np.float32)
    arr /= np.float32(255)
    return torch.from_numpy(arr).permute(0, 3, 1, 2)


def _chunks(frames: Iterable[Image.Image], size: int) -> Iterable[list[Image.Image]]:
    chunk: list[Image.Image] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def adjacent_distances(frames: Iterable[Image.Image], metrics: Sequence[str], closed: bool = False,
                       chunk: int = CHUNK) -> dict[str, list[float]]:
    """Distance from each frame to the next by every one of ``metrics`` (closed: and from the last back to
    the first), in one pass over ``frames`` (any iterable: a list, frame files read lazily, a decoder).

    Holds ``chunk`` frames plus the previous chunk's last (and, closed, the first) frame at a time, and
    returns each chunk's temporaries to the OS (:func:`~latentscape.io.memory.large_blocks_unmapped`), so
    the peak does not grow with the frame count."""
    out: dict[str, list[float]] = {m: [] for m in metrics}
    first = last = None  # the first frame's and the latest frame's 8-bit pixels
    count = 0
    with large_blocks_unmapped():  # every chunk's temporaries go back to the OS: the peak is one chunk's
        for images in _chunks(frames, chunk):
            count += len(images)
            pixels = [np.asarray(im.convert("RGB")) for im in images]
            first = pixels[0] if first is None else first
            run = _tensor(pixels if last is None else [last, *pixels])  # led by the previous chunk's last frame
            last = pixels[-1]
            del images, pixels  # only the float run is held while the metrics run
            if run.shape[0] > 1:
                for m in metrics:
                    out[m] += METRICS[m](run[:-1], run[1:]).tolist()
            del run  # gone before the next chunk is read
        if closed and count >= 2:
            for m in metrics:
                out[m] += METRICS[m](_tensor([last]), _tensor([first])).tolist()
    return out


def report_metrics(metric: str) -> list[str]:
    """The distances a smoothness report shows: the perceptual ``metric`` and the structural one."""
    return [metric] + ([STRUCTURAL] if metric != STRUCTURAL else [])


def report_from(distances: dict[str, list[float]], frames: int, *, model_evaluations: int | None = None,
                full_render_evaluations: int | None = None) -> SmoothnessReport:
    """The smoothness report of a sequence of ``frames`` from its adjacent ``distances`` by each metric."""
    stats = {name: step_stats(d, frames=frames) for name, d in distances.items()}
    return SmoothnessReport(stats, frames, model_evaluations, full_render_evaluations)


def score_sequence(path: str | os.PathLike, distance: str = "auto", closed: bool = False) -> tuple[SmoothnessReport, str]:
    """The smoothness report of the frames at ``path`` and the perceptual distance it used (``auto``
    resolved). ``closed`` scores the sequence as a loop (the last frame steps back to the first)."""
    from latentscape.io.frames_read import read_frames

    metric = resolve_distance(distance)
    frames = read_frames(path, minimum=MIN_FRAMES)
    return report_from(adjacent_distances(frames, report_metrics(metric), closed=closed), len(frames)), metric
