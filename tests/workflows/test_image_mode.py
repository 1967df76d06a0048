"""Image keyframes through inversion (``image_mode="invert"``, the default): a morph starts and ends on the
images' VAE round trips, prompt keyframes of a mixed path stay their ``generate`` images, the inversion cache
is hit on the second use, ``noise`` is today's img2img, and bad input is refused in one sentence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.io.images import load_image, pil_to_tensor
from latentscape.io.recipe import save_png
from latentscape.workflows.common import decode_images
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.inversion_file import InversionCache
from latentscape.workflows.keyframes import Keyframe
from latentscape.workflows.morph import MorphConfig, check_config, morph
from latentscape.workflows.plan import point_step_noise
from latentscape.sampling import StepNoise

STEPS = 4


def pixels(image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


@pytest.fixture(scope="module")
def two_images(sd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("invert_images")
    paths = []
    for prompt, seed in (("a red cat", 1), ("the sea and the sky", 2)):
        out = generate(sd, GenerateConfig(prompt=prompt, seed=seed, steps=STEPS))
        paths.append(str(save_png(out.images[0], folder / f"{seed}.png", None)))
    return paths


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path):
    """Each test its own inversion cache (memory + a temporary folder), so hits are this test's own."""
    cache = InversionCache(tmp_path / "inversions")
    monkeypatch.setattr("latentscape.workflows.invert.default_cache", lambda: cache)
    return cache


def round_trip(model, path) -> np.ndarray:
    """The image's VAE round trip, as 8-bit pixels: what an inverted keyframe's frame must show."""
    latents = model.encode_images(pil_to_tensor([load_image(path)]))
    return pixels(decode_images(model, latents)[0])


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "euler_a"])
def test_a_morph_between_two_images_starts_and_ends_on_their_round_trips(sd, two_images, sampler):
    out = morph(sd, MorphConfig(keyframes=tuple(f"image:{p}" for p in two_images), frames=4, steps=STEPS,
                                sampler=sampler, batch_size=4))
    for k, path in enumerate(two_images):
        diff = np.abs(round_trip(sd, path) - pixels(out.images[out.keyframe_frames[k]])).max()
        assert diff <= 1, (sampler, k, diff)
    middle = pixels(out.images[1])
    assert np.abs(middle - pixels(out.images[0])).max() > 0 and np.abs(middle - pixels(out.images[3])).max() > 0
    assert out.recipe.params["image_mode"] == "invert" and out.recipe.infotext_extra["Image mode"] == "invert"
    assert "Denoising strength" not in out.recipe.infotext_extra


def test_mixed_keyframes_image_prompt_image(sd, two_images):
    kfs = (f"image:{two_images[0]}", "city street at night@8", f"image:{two_images[1]}")
    out = morph(sd, MorphConfig(keyframes=kfs, frames=5, steps=STEPS, cfg=5.0, batch_size=2))
    assert out.keyframe_frames == [0, 2, 4]
    ref = pixels(generate(sd, GenerateConfig(prompt="city street at night", seed=8, steps=STEPS, cfg=5.0)).images[0])
    assert np.abs(ref - pixels(out.images[2])).max() <= 1  # the prompt keyframe is exactly its generate image
    for frame, path in ((0, two_images[0]), (4, two_images[1])):
        assert np.abs(round_trip(sd, path) - pixels(out.images[frame])).max() <= 1
    for frame in (1, 3):  # the frames between are new images
        assert min(np.abs(pixels(out.images[frame]) - pixels(out.images[j])).max() for j in (0, 2, 4)) > 0


@pytest.mark.parametrize("pacing", ["perceptual", "adaptive"])
def test_image_endpoints_hold_under_perceptual_and_adaptive_pacing(sd, two_images, pacing):
    out = morph(sd, MorphConfig(keyframes=(f"image:{two_images[0]}", "a dog@3"), frames=4, steps=STEPS, pacing=pacing,
                                batch_size=4))
    assert np.abs(round_trip(sd, two_images[0]) - pixels(out.images[0])).max() <= 1


def test_a_path_through_one_image_twice_inverts_it_once(sd, two_images, private_cache):
    a, b = two_images
    config = MorphConfig(keyframes=(f"image:{a}", f"image:{b}", f"image:{a}"), frames=5, steps=STEPS, batch_size=5)
    first = morph(sd, config)
    assert private_cache.hits["memory"] == 1  # the second visit of image a
    again = morph(sd, config)
    assert private_cache.hits["memory"] == 4  # every image of the second run, nothing inverted again
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(first.images, again.images))
    private_cache.memory.clear()  # a new process: the disk entries
    third = morph(sd, config)
    assert private_cache.hits["disk"] == 2
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(first.images, third.images))


def test_image_mode_noise_is_todays_img2img(sd, two_images):
    kfs = (Keyframe(image=two_images[0], prompt="a cat", seed=3), Keyframe(image=two_images[1], prompt="a sea", seed=4))
    out = morph(sd, MorphConfig(keyframes=kfs, frames=3, steps=STEPS, strength=0.5, image_mode="noise"))
    ref = pixels(generate(sd, GenerateConfig(prompt="a cat", seed=3, steps=STEPS, init_image=two_images[0], strength=0.5)).images[0])
    assert np.abs(ref - pixels(out.images[0])).max() <= 1
    assert out.recipe.params["image_mode"] == "noise" and out.recipe.infotext_extra["Denoising strength"] == 0.5


def test_recipes_from_before_the_field_replay_as_noise(sd, two_images):
    kfs = (f"image:{two_images[0]}", f"image:{two_images[1]}")
    out = morph(sd, MorphConfig(keyframes=kfs, frames=3, steps=STEPS, strength=0.5, image_mode="noise"))
    old = {k: v for k, v in out.recipe.params.items() if k != "image_mode"}  # what an older latentscape wrote
    replayed = MorphConfig.from_params(old)
    assert replayed.image_mode == "noise"
    again = morph(sd, replayed)
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(out.images, again.images))
    prompts_only = morph(sd, MorphConfig(keyframes=("a cat@1", "a dog@2"), frames=2, steps=2))
    assert "image_mode" not in prompts_only.recipe.params  # a path without images keeps its old recipe


def test_point_step_noise_endpoints_and_fades():
    a = StepNoise(torch.randn(3, 1, 2, 2, 2), torch.tensor([1.0, 0.5, 0.25]))
    b = StepNoise(torch.randn(3, 1, 2, 2, 2), a.scales)
    out = point_step_noise([a, None, b], [0, 0, 0, 1, 1], [2, 1, 1, 2, 1], [0.0, 0.5, 1.0, 1.0, 0.0])
    assert torch.equal(out.noise[:, 0], a.noise[:, 0]) and torch.equal(out.noise[:, 3], b.noise[:, 0])
    assert torch.allclose(out.noise[:, 1], 0.5 * a.noise[:, 0])  # towards a keyframe without a stream: it fades
    assert torch.equal(out.noise[:, 2], torch.zeros_like(out.noise[:, 2])) and torch.equal(out.noise[:, 4], out.noise[:, 2])
    assert point_step_noise([None, None], [0], [1], [0.5]) is None
    # prompt -> prompt items batched with an item that touches an image (the studio's a -> b -> image morph)
    mixed = point_step_noise([None, None, b], [0, 1], [1, 2], [0.5, 0.5])
    assert torch.equal(mixed.noise[:, 0], torch.zeros_like(mixed.noise[:, 0]))
    assert torch.allclose(mixed.noise[:, 1], 0.5 * b.noise[:, 0])


@pytest.mark.parametrize("fixture", ["tiny_sd_v", "tiny_sdxl", "tiny_sd3", "tiny_flux", "tiny_flux_schnell"])
def test_every_family_morphs_between_two_images_in_invert_mode(fixture, request, tmp_path):
    model = latentscape.load(str(request.getfixturevalue(fixture)))
    paths = []
    for i, colour in enumerate(((200, 40, 40), (30, 90, 220))):
        g = torch.Generator().manual_seed(i)
        arr = (np.array(colour) * 0.6 + torch.rand((32, 32, 3), generator=g).numpy() * 100).clip(0, 255).astype(np.uint8)
        from PIL import Image

        paths.append(str(save_png(Image.fromarray(arr), tmp_path / f"{i}.png", None)))
    out = morph(model, MorphConfig(keyframes=tuple(f"image:{p}" for p in paths), frames=3, steps=3, batch_size=3))
    for k, path in enumerate(paths):
        assert np.abs(round_trip(model, path) - pixels(out.images[out.keyframe_frames[k]])).max() <= 1, (fixture, k)


def test_bad_image_mode_and_size_and_steps_are_one_sentence(sd, two_images, tmp_path):
    with pytest.raises(LatentscapeError, match=r"image_mode got 'img2img'; accepted: invert .* or noise"):
        check_config(MorphConfig(keyframes=(f"image:{two_images[0]}", "a cat"), image_mode="img2img"))
    from PIL import Image

    other = str(save_png(Image.new("RGB", (48, 32)), tmp_path / "wide.png", None))
    with pytest.raises(LatentscapeError, match="--resize stretch"):
        check_config(MorphConfig(keyframes=(f"image:{two_images[0]}", f"image:{other}")))
    with pytest.raises(LatentscapeError, match="steps"):
        morph(sd, MorphConfig(keyframes=(f"image:{two_images[0]}", "a cat"), steps=0))
    with pytest.raises(LatentscapeError, match="schedules.strength applies to image_mode noise"):
        check_config(MorphConfig(keyframes=(f"image:{two_images[0]}", "a cat"), schedules={"strength": "0:(0.5)"}))


def test_blend_one_hot_image_lands_on_its_round_trip_and_mixes_otherwise(sd, two_images):
    from latentscape.workflows.blend import BlendConfig, blend

    inputs = (f"image:{two_images[0]}", "a dog in the snow@7", f"image:{two_images[1]}")
    for hot, path in ((0, two_images[0]), (2, two_images[1])):
        weights = tuple(1.0 if i == hot else 0.0 for i in range(3))
        out = blend(sd, BlendConfig(inputs=inputs, weights=weights, steps=STEPS, cfg=5.0))
        assert out.info["mode"] == "inverted"
        assert np.abs(round_trip(sd, path) - pixels(out.images[0])).max() <= 1
    prompt = blend(sd, BlendConfig(inputs=inputs, weights=(0, 1, 0), steps=STEPS, cfg=5.0))
    ref = pixels(generate(sd, GenerateConfig(prompt="a dog in the snow", seed=7, steps=STEPS, cfg=5.0)).images[0])
    assert np.abs(ref - pixels(prompt.images[0])).max() <= 1
    even = blend(sd, BlendConfig(inputs=inputs, steps=STEPS, cfg=5.0))
    assert np.abs(pixels(even.images[0]) - round_trip(sd, two_images[0])).max() > 0
    assert even.recipes[0].infotext_extra["Image mode"] == "invert" and even.recipes[0].params["image_mode"] == "invert"
    noise = blend(sd, BlendConfig(inputs=inputs, steps=STEPS, cfg=5.0, image_mode="noise"))
    assert noise.info["mode"] == "latent"


def test_map_image_corners_are_their_round_trips(sd, two_images):
    from latentscape.workflows.latent_map import MapConfig, latent_map

    corners = (f"image:{two_images[0]}", "a dog@3", "a cat@4", f"image:{two_images[1]}")
    out = latent_map(sd, MapConfig(corners=corners, grid="3x3", steps=STEPS, cfg=4.0, returns="cells"))
    assert out.info["mode"] == "inverted"
    assert np.abs(round_trip(sd, two_images[0]) - pixels(out.images[0])).max() <= 1
    assert np.abs(round_trip(sd, two_images[1]) - pixels(out.images[8])).max() <= 1
    ref = pixels(generate(sd, GenerateConfig(prompt="a dog", seed=3, steps=STEPS, cfg=4.0)).images[0])
    assert np.abs(ref - pixels(out.images[2])).max() <= 1
    assert out.recipes[4].infotext_extra["Image mode"] == "invert"


def test_math_image_alone_is_its_round_trip_and_replays_from_the_cache(sd, two_images, private_cache):
    from latentscape.workflows.latent_math import MathConfig, latent_math
    from latentscape.workflows.replay import replay

    alone = latent_math(sd, MathConfig(expression=f"image:{two_images[0]}", steps=STEPS, seed=2))
    assert np.abs(round_trip(sd, two_images[0]) - pixels(alone.images[0])).max() <= 1
    steered = latent_math(sd, MathConfig(expression=f'image:{two_images[0]} + "a dog"', steps=STEPS, seed=2, cfg=3.0))
    assert np.abs(pixels(steered.images[0]) - pixels(alone.images[0])).max() > 0
    assert steered.recipes[0].infotext_extra["Image mode"] == "invert"
    before = dict(private_cache.hits)
    again = replay(sd, steered.recipes[0])
    assert np.array_equal(pixels(again.images[0]), pixels(steered.images[0]))
    assert private_cache.hits["memory"] == before["memory"] + 1  # the replay did not invert again


def test_vary_an_external_image_around_its_inversion(sd, two_images):
    from latentscape.workflows.vary import VaryConfig, vary

    base = dict(init_image=two_images[0], steps=STEPS, seed=5, variation_seed=11, n=2)
    zero = vary(sd, VaryConfig(strength=0.0, **base))
    assert zero.info["mode"] == "inverted"
    for image in zero.images:
        assert np.abs(round_trip(sd, two_images[0]) - pixels(image)).max() <= 1
    subtle = vary(sd, VaryConfig(strength="subtle", **base))
    assert subtle.info["strength"] == 0.2
    assert np.abs(pixels(subtle.images[0]) - pixels(subtle.images[1])).max() > 0  # variation seeds 11 and 12 differ
    full = vary(sd, VaryConfig(strength=1.0, **base))
    ref = pixels(generate(sd, GenerateConfig(prompt="", seed=11, steps=STEPS, cfg=1.0)).images[0])
    assert np.abs(ref - pixels(full.images[0])).max() <= 1  # strength 1: the variation seed's own image
    img2img = vary(sd, VaryConfig(strength=0.35, image_mode="noise", **base))
    assert img2img.info["mode"] == "image" and img2img.recipes[0].infotext_extra["Denoising strength"] == 0.35


def test_resume_of_an_image_morph_gives_the_identical_video_without_inverting_again(sd, two_images, tmp_path, private_cache):
    from latentscape.workflows.morph import render_morph

    class Stop(Exception):
        pass

    def stop_after(frames):
        def progress(name, done, total):
            if name == "final" and done >= frames:
                raise Stop
        return progress

    config = MorphConfig(keyframes=(f"image:{two_images[0]}", "a dog@3", f"image:{two_images[1]}"), frames=6, steps=2,
                         seed=1, batch_size=2)
    full = tmp_path / "full.gif"
    render_morph(sd, config, full)
    private_cache.memory.clear()
    hits = dict(private_cache.hits)
    part = tmp_path / "part.gif"
    with pytest.raises(Stop):
        render_morph(sd, config, part, progress=stop_after(2))
    render_morph(sd, config, part, resume=True)
    assert part.read_bytes() == full.read_bytes()
    assert private_cache.hits["disk"] == hits["disk"] + 2 and private_cache.hits["memory"] == hits["memory"] + 2
