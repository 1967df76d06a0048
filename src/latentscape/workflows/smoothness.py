"""Score any frame sequence's smoothness: a frame folder, an animation or a video, by both distances."""

from __future__ import annotations

import os

from latentscape.core.smoothness import SmoothnessReport
from latentscape.io.frames_read import read_frames
from latentscape.workflows.morph_pacing import resolve_distance, smoothness_report

MIN_FRAMES = 3  # two adjacent steps: the least that can be uneven


def score_sequence(path: str | os.PathLike, distance: str = "auto", closed: bool = False) -> tuple[SmoothnessReport, str]:
    """The smoothness report of the frames at ``path`` and the perceptual distance it used (``auto``
    resolved). ``closed`` scores the sequence as a loop (the last frame steps back to the first)."""
    metric = resolve_distance(distance)
    frames = read_frames(path, minimum=MIN_FRAMES)
    return smoothness_report(frames, metric, closed=closed), metric
