"""The shared job preamble (workflows/job.py) and the one place an image anchor becomes a noise-mode latent
(plan.start_latents): what blend, map and math resolve before they render, and its refusals."""

from __future__ import annotations

import pytest
import torch
from creative_helpers import FAST, load_family, standalone

from latentscape.errors import LatentscapeError
from latentscape.io.images import pil_to_tensor
from latentscape.workflows.blend import BlendConfig, blend
from latentscape.workflows.job import prepare_job, resolve_keyframes
from latentscape.workflows.keyframes import Keyframe
from latentscape.workflows.latent_map import MapConfig
from latentscape.workflows.latent_math import MathConfig


def test_keyframes_resolve_their_seeds_and_prompts():
    got = resolve_keyframes([Keyframe(prompt="a cat", seed=-1), Keyframe(seed=4), Keyframe(prompt="a dog")], 9)
    assert got[0].seed not in (-1, None) and got[0].prompt == "a cat"  # -1 draws its own seed, recorded
    assert (got[1].prompt, got[1].seed) == ("a cat", 4)  # the nearest earlier prompt
    assert (got[2].prompt, got[2].seed) == ("a dog", 9)  # the job's seed


def test_prepare_job_sizes_and_modes(request, tmp_path):
    model = load_family(request, "tiny_sd")
    standalone(model, "a red cat", 1, width=32, height=48).save(tmp_path / "tall.png")
    kfs = [Keyframe(prompt="a cat"), Keyframe(image=str(tmp_path / "tall.png"))]
    job = prepare_job(model, BlendConfig(seed=5, steps=2), kfs)  # no size: the first image's
    assert (job.size, job.shape, job.images, job.inverted, job.seed) == ((32, 48), (4, 6, 4), [str(tmp_path / "tall.png")], True, 5)
    assert [k.seed for k in job.keyframes] == [5, 5] and job.keyframes[1].prompt == ""
    noise = prepare_job(model, BlendConfig(seed=-1, steps=2, image_mode="noise", width=32, height=32), kfs)
    assert not noise.inverted and noise.size == (32, 32) and noise.seed >= 0
    text = prepare_job(model, MathConfig(seed=3, **FAST), images=[])
    assert (text.keyframes, text.images, text.inverted, text.size) == ([], [], False, (32, 32))


@pytest.mark.parametrize("config, fragment", [
    (MapConfig(strength=1.5, image_mode="noise", **FAST), "--strength got 1.5; expected a number from 0 to 1."),
    (BlendConfig(strength=0.1, image_mode="noise", **FAST), "--strength 0.1 with 2 steps leaves no denoising step; use 0 or at least 0.5."),
    (MathConfig(image_mode="img2img", **FAST), "image_mode got 'img2img'; accepted: invert"),
])
def test_prepare_job_refuses_in_one_sentence(request, tmp_path, config, fragment):
    model = load_family(request, "tiny_sd")
    standalone(model, "a red cat", 1).save(tmp_path / "a.png")
    with pytest.raises(LatentscapeError) as err:
        prepare_job(model, config, [Keyframe(prompt="a"), Keyframe(image=str(tmp_path / "a.png"))])
    assert fragment in str(err.value)


def test_noise_mode_image_anchors_are_encoded_alone_as_generate_encodes_them(request, tmp_path):
    model = load_family(request, "tiny_sd")
    photos = [standalone(model, p, s) for p, s in (("mountain landscape", 1), ("a red cat", 2))]
    for i, photo in enumerate(photos):
        photo.save(tmp_path / f"p{i}.png")
    inputs = (str(tmp_path / "p0.png"), "a dog@4", str(tmp_path / "p1.png"))
    for hot, photo in ((0, photos[0]), (2, photos[1])):
        weights = [0.0, 0.0, 0.0]
        weights[hot] = 1.0
        out = blend(model, BlendConfig(inputs=inputs, weights=tuple(weights), strength=0.0, image_mode="noise", cfg=5.0, **FAST))
        assert torch.equal(out.latents, model.encode_images(pil_to_tensor([photo])).float())  # bit for bit, not a batch's
