"""The job preamble the anchor workflows share (blend, map, math; morph's keyframe seeds): what a job's
anchors and options resolve to before anything is encoded or rendered.

:func:`prepare_job` checks ``image_mode`` and the img2img ``strength`` it implies, draws the job's seed
(-1: random, reported), fills every anchor's missing prompt and seed (:func:`resolve_keyframes`) and sizes
the job (given, else the first image's, else the model's). Everything it refuses is refused before any
model call; the workflow then builds its noise, conditioning and latents from the :class:`PreparedJob`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

from latentscape.core.noise import resolve_seed
from latentscape.models.family import Family
from latentscape.sampling import start_index
from latentscape.workflows.common import require
from latentscape.workflows.keyframes import Keyframe, resolve
from latentscape.workflows.plan import check_image_mode
from latentscape.workflows.render import SamplingOptions, job_size


@dataclass(frozen=True)
class PreparedJob:
    """A job's resolved inputs: its seed, its anchors (every prompt and seed filled in), the image files
    among them, whether those are inverted (``image_mode`` invert) or img2img, its size and latent shape."""

    seed: int
    keyframes: list[Keyframe]
    images: list[str]
    inverted: bool
    width: int
    height: int
    shape: tuple[int, ...]  # (C, h, w)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def resolve_keyframes(keyframes: Sequence[Keyframe], seed: int) -> list[Keyframe]:
    """Each keyframe's prompt and seed filled in: a seed of -1 draws its own (recorded, so the recipe replays
    it), a missing seed is ``seed``, a missing prompt the nearest one (:func:`~latentscape.workflows.keyframes.resolve`)."""
    drawn = [dataclasses.replace(k, seed=resolve_seed(k.seed)) if k.seed is not None else k for k in keyframes]
    return resolve(drawn, None, seed)


def prepare_job(model: Family, config: SamplingOptions, keyframes: Sequence[Keyframe] = (),
                images: Sequence[str] | None = None) -> PreparedJob:
    """The :class:`PreparedJob` of ``config`` (a config with ``seed``, ``strength`` and ``image_mode``) over
    ``keyframes``; ``images``: the job's image files (None: the keyframes' images).

    With images in ``image_mode`` noise (img2img) ``strength`` is a number from 0 (decode the latents as they
    are) to 1 that leaves at least one step; without images, or inverted, it is still a number from 0 to 1."""
    check_image_mode(config.image_mode)  # type: ignore[attr-defined]
    images = [k.image for k in keyframes if k.image is not None] if images is None else list(images)
    inverted = bool(images) and config.image_mode == "invert"  # type: ignore[attr-defined]
    strength = config.strength  # type: ignore[attr-defined]
    if not inverted:
        require(0 <= strength <= 1, f"--strength got {strength}; expected a number from 0 to 1.")
    if images and not inverted and strength > 0:
        require(start_index(config.steps, strength) < config.steps,
                f"--strength {strength} with {config.steps} steps leaves no denoising step; use 0 or at least {1 / config.steps:.3g}.")
    seed = resolve_seed(config.seed)  # type: ignore[attr-defined]
    resolved = resolve_keyframes(keyframes, seed)
    width, height = job_size(model, config, images)
    return PreparedJob(seed, resolved, images, inverted, width, height, model.latent_format.latent_shape(width, height))
