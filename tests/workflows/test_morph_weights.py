"""Weighted prompts along a morph: between two keyframes that are the same text with different A1111
weights, a frame encodes the prompt with the interpolated weight (not just the lerp of the two encodings)."""

from __future__ import annotations

import numpy as np

from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.morph import MorphConfig, morph

STEPS = 4
A, B = "(cat face:1.0), google style", "(cat face:0.0), google style"


def _pixels(image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def _generate(model, prompt: str) -> np.ndarray:
    return _pixels(generate(model, GenerateConfig(prompt=prompt, seed=5, steps=STEPS)).images[0])


def test_the_middle_frame_is_the_half_weight_prompt_and_the_ends_stay_exact(embedded):
    out = morph(embedded, MorphConfig(keyframes=(f"{A}@5", f"{B}@5"), frames=3, steps=STEPS))
    first, middle, last = (_pixels(im) for im in out.images)
    assert np.abs(first - _generate(embedded, A)).max() <= 1
    assert np.abs(last - _generate(embedded, B)).max() <= 1
    half = _generate(embedded, "(cat face:0.5), google style")
    assert np.abs(middle - half).max() <= 1, "the frame at t=0.5 should be the prompt weighted 0.5"
    assert np.abs(first - last).max() > 8  # the weights matter on this model, so the check above means something


def test_frames_of_different_texts_keep_the_conditioning_lerp(embedded):
    """Different prompts (no common text) are not touched by the weight path."""
    from latentscape.workflows.morph_render import Anchors, weighted_rows

    anchors = Anchors(noise=None, sources=[], cond=embedded.encode_prompts(["cat face", "dog face"]), uncond=None, cfg=[7.5, 7.5],
                      prompts=["cat face", "dog face"])
    lerped = anchors.cond.select([0])
    assert weighted_rows(embedded, anchors, [(0, 1, 0.5)], lerped) is lerped
