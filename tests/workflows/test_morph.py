"""Morph: exact endpoints (deterministic and stochastic samplers), every family, image keyframes, CFG
curves, closed loops, pacing and bad input. Resume, manifests and video files: test_morph_files.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.io.recipe import save_png
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.keyframes import Keyframe
from latentscape.workflows.morph import MorphConfig, check_config, morph
from latentscape.workflows.morph_render import RenderSettings, build_anchors, render_latents

STEPS = 3
KEYFRAMES = ("a red cat@5", "a dog in the snow@9", "city street at night@13")


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def pixels(image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def standalone(model, prompt, seed, **kw) -> np.ndarray:
    return pixels(generate(model, GenerateConfig(prompt=prompt, seed=seed, steps=STEPS, **kw)).images[0])


def assert_endpoints_exact(model, out, keyframes, **kw):
    for k, (prompt, seed) in enumerate(keyframes):
        ref = standalone(model, prompt, seed, **kw)
        got = pixels(out.images[out.keyframe_frames[k]])
        assert np.abs(ref - got).max() <= 1, f"keyframe {k}: max pixel difference {np.abs(ref - got).max()}"


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "euler_a", "lcm"])
def test_frames_on_keyframes_equal_standalone_generate(sd, sampler):
    # batch_size 2 puts each keyframe in a batch with an in-between frame
    out = morph(sd, MorphConfig(keyframes=KEYFRAMES, frames=6, steps=STEPS, sampler=sampler, cfg=6.0, batch_size=2))
    assert len(out.images) == 6 and out.keyframe_frames[0] == 0 and out.keyframe_frames[-1] == 5
    assert_endpoints_exact(sd, out, [("a red cat", 5), ("a dog in the snow", 9), ("city street at night", 13)],
                           sampler=sampler, cfg=6.0)
    between = pixels(out.images[1])
    assert np.abs(between - pixels(out.images[0])).max() > 0  # in-between frames are new images


def _latents(model, points, sampler):
    anchors = build_anchors(model, ["a red cat", "a dog in the snow"], [5, 9], [6.0, 6.0], "", (4, 4, 4), 1.0)
    settings = RenderSettings(sampler, STEPS, 1.0, 0.0, 0.0, 1.0, "slerp", "lerp")
    return render_latents(model, anchors, points, settings, img2img=False)


def test_ancestral_step_noise_is_interpolated_so_neighbours_stay_close(sd):
    near = _latents(sd, [(0, 1, 0.0), (0, 1, 0.01), (0, 1, 1.0)], "euler_a")
    step = (near[1] - near[0]).abs().mean()
    span = (near[2] - near[0]).abs().mean()
    assert step < 0.05 * span  # 1% of the way moves the image a little
    # the same first frame with fresh step noise (what a per-frame generator would give) jumps far more
    from latentscape.core.noise import draw_noise, seeded_generators
    from latentscape.sampling import denoise
    from latentscape.workflows.common import encode

    cond, uncond = encode(sd, ["a red cat"], [""], True)
    draw_noise(seeded_generators([5]), (4, 4, 4))
    noise = draw_noise(seeded_generators([5]), (4, 4, 4))
    fresh = denoise(sd, noise, cond, uncond, sampler="euler_a", steps=STEPS, guidance_scale=6.0,
                    generators=seeded_generators([1234]))
    assert step < 0.2 * (fresh - near[0]).abs().mean()


def test_ancestral_t1_is_the_end_keyframe_exactly(sd):
    ends = _latents(sd, [(0, 1, 1.0), (1, 1, 0.0)], "euler_a")
    assert torch.equal(ends[0], ends[1])


@pytest.mark.parametrize("fixture", ["tiny_sd", "tiny_sd_v", "tiny_sdxl", "tiny_sd3", "tiny_flux", "tiny_flux_schnell"])
def test_every_family_renders_a_three_frame_morph(fixture, request):
    model = latentscape.load(str(request.getfixturevalue(fixture)))
    if model.name == "flux":
        model.max_sequence_length = 48
    out = morph(model, MorphConfig(keyframes=("a red cat@1", "a house on a hill@2"), frames=3, steps=2, batch_size=3, width=32, height=32))
    assert [im.size for im in out.images] == [(32, 32)] * 3
    assert out.positions == [0.0, 0.5, 1.0]
    a, mid, b = (pixels(im) for im in out.images)
    assert np.abs(mid - a).max() > 0 and np.abs(mid - b).max() > 0
    for k, (prompt, seed) in enumerate([("a red cat", 1), ("a house on a hill", 2)]):
        ref = pixels(generate(model, GenerateConfig(prompt=prompt, seed=seed, steps=2, width=32, height=32)).images[0])
        assert np.abs(ref - pixels(out.images[2 * k])).max() <= 1


def test_flux_guidance_and_per_keyframe_cfg_are_interpolated(tiny_flux):
    model = latentscape.load(str(tiny_flux))
    model.max_sequence_length = 48
    kfs = (Keyframe(prompt="a boat", seed=4, cfg=2.0), Keyframe(prompt="a boat", seed=4, cfg=6.0))
    out = morph(model, MorphConfig(keyframes=kfs, frames=3, steps=2, width=32, height=32))
    ref = pixels(generate(model, GenerateConfig(prompt="a boat", seed=4, cfg=6.0, steps=2, width=32, height=32)).images[0])
    assert np.abs(ref - pixels(out.images[2])).max() <= 1
    assert np.abs(pixels(out.images[0]) - pixels(out.images[2])).max() > 0  # only the guidance differs


def test_cfg_dip_keeps_keyframes_and_changes_the_middle(sd):
    cfg = MorphConfig(keyframes=KEYFRAMES[:2], frames=3, steps=STEPS, cfg=7.0)
    plain = morph(sd, cfg)
    dipped = morph(sd, MorphConfig(**{**cfg.__dict__, "cfg_dip": 0.8}))
    assert np.array_equal(pixels(plain.images[0]), pixels(dipped.images[0]))
    assert np.array_equal(pixels(plain.images[2]), pixels(dipped.images[2]))
    assert np.abs(pixels(plain.images[1]) - pixels(dipped.images[1])).max() > 0


def test_closed_loop_comes_back_towards_the_first_keyframe(sd):
    out = morph(sd, MorphConfig(keyframes=KEYFRAMES[:2], frames=8, steps=STEPS, closed=True, batch_size=8))
    assert len(out.images) == 8 and out.positions[-1] < 2.0 and out.keyframe_frames == [0, 4]
    frames = [pixels(im).astype(float) for im in out.images]
    d = lambda i, j: np.abs(frames[i] - frames[j]).mean()  # noqa: E731
    assert d(7, 0) < d(4, 0)  # the last frame is on the way back: closer to A than B is
    assert d(1, 0) == pytest.approx(d(7, 0), rel=0.5)  # and the wrap step looks like the first step


def test_perceptual_pacing_evens_the_steps(sd):
    # same seed for the first pair (a small change), new seed for the second (a big one): uneven uniform steps
    keyframes = ("a red cat@5", "a dog in the snow@5", "a dog in the snow@77")
    out = morph(sd, MorphConfig(keyframes=keyframes, frames=9, steps=STEPS, pacing="perceptual", batch_size=9))
    before, after = out.smoothness["before"], out.smoothness["after"]
    assert after.ratio < before.ratio and after.max < before.max
    assert {0.0, 1.0, 2.0} <= set(out.positions) and out.distance == "lab"


def test_perceptual_pacing_on_the_embedded_model(embedded):
    keyframes = ("grinning face, google style", "cat face, twitter style")
    out = morph(embedded, MorphConfig(keyframes=keyframes, frames=9, seed=0, steps=8, pacing="perceptual", batch_size=9))
    before, after = out.smoothness["before"], out.smoothness["after"]
    assert after.max <= before.max and after.ratio < before.ratio


@pytest.fixture(scope="module")
def two_images(sd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyframe_images")
    paths = []
    for prompt, seed in (("a red cat", 1), ("the sea and the sky", 2)):
        out = generate(sd, GenerateConfig(prompt=prompt, seed=seed, steps=STEPS))
        paths.append(save_png(out.images[0], folder / f"{seed}.png", None))
    return paths


def test_image_keyframes_are_img2img_at_a_shared_strength(sd, two_images):
    kfs = (Keyframe(image=str(two_images[0]), prompt="a cat", seed=3), Keyframe(image=str(two_images[1]), prompt="a sea", seed=4))
    out = morph(sd, MorphConfig(keyframes=kfs, frames=4, steps=4, strength=0.5, batch_size=4, image_mode="noise"))
    for k, (path, prompt, seed) in enumerate([(two_images[0], "a cat", 3), (two_images[1], "a sea", 4)]):
        ref = pixels(generate(sd, GenerateConfig(prompt=prompt, seed=seed, steps=4, init_image=str(path), strength=0.5)).images[0])
        assert np.abs(ref - pixels(out.images[out.keyframe_frames[k]])).max() <= 1
    assert out.recipe.inputs["keyframe images"][0]["path"] == str(two_images[0])


def test_mixed_image_and_prompt_path_renders_and_keeps_the_image_endpoint(sd, two_images):
    kfs = (f"image:{two_images[0]}", "city street at night@8")
    out = morph(sd, MorphConfig(keyframes=kfs, frames=3, steps=4, strength=0.6, seed=3, image_mode="noise"))
    ref = pixels(generate(sd, GenerateConfig(prompt="", seed=3, steps=4, init_image=str(two_images[0]), strength=0.6)).images[0])
    assert np.abs(ref - pixels(out.images[0])).max() <= 1  # an image keyframe without a prompt keeps it empty
    assert len(out.images) == 3


# --- bad input: one sentence, raised before anything renders -----------------------------------------------
@pytest.mark.parametrize("config, needle", [
    (MorphConfig(keyframes=("a cat",)), "at least 2 keyframes"),
    (MorphConfig(keyframes=("a", "b"), frames=1), "frames got 1"),
    (MorphConfig(keyframes=("a", "b", "c"), frames=2), "3 keyframes needs"),
    (MorphConfig(keyframes=("a", "b"), pacing="fast"), "--pacing got 'fast'"),
    (MorphConfig(keyframes=("a", "image:/nonexistent/x.png")), "does not exist"),
    (MorphConfig(keyframes=(Keyframe(prompt="a", cfg=-1.0), "b")), "keyframe 'a' has cfg -1.0"),
    (MorphConfig(keyframes=(Keyframe(prompt="a", seed=-5), "b")), "keyframe 'a @ seed -5' has seed -5"),
    (MorphConfig(keyframes=({"prompt": "a", "seed": 2**64}, "b")), "seed 18446744073709551616 is out of range"),
])  # fmt: skip
def test_bad_configs_are_refused_with_one_sentence(config, needle):
    with pytest.raises(LatentscapeError, match=needle) as err:
        check_config(config)
    assert "\n" not in str(err.value) and str(err.value).endswith(".")


def test_image_size_mismatch_names_both_sizes_and_resize(two_images, tmp_path):
    from PIL import Image

    other = tmp_path / "wide.png"
    Image.new("RGB", (64, 32), "red").save(other)
    with pytest.raises(LatentscapeError) as err:
        check_config(MorphConfig(keyframes=(f"image:{two_images[0]}", f"image:{other}")))
    assert "64x32" in str(err.value) and "32x32" in str(err.value) and "--resize" in str(err.value)
    with pytest.raises(LatentscapeError, match="--size is 64x64"):
        check_config(MorphConfig(keyframes=(f"image:{two_images[0]}", "a cat"), width=64, height=64))
    check_config(MorphConfig(keyframes=(f"image:{two_images[0]}", f"image:{other}"), resize="crop"))


def test_unreadable_image_keyframe(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(LatentscapeError, match="not an image"):
        check_config(MorphConfig(keyframes=(f"image:{bad}", "a cat")))


def test_a_keyframe_seed_of_minus_one_draws_a_seed_that_the_recipe_records(sd):
    config = MorphConfig(keyframes=("a red cat@5", "seed:-1"), frames=2, steps=STEPS, seed=5)
    out = morph(sd, config)
    drawn = out.recipe.params["keyframes"][1]["seed"]
    assert 0 <= drawn < 2**32  # what -1 draws; torch would otherwise wrap -1 to one fixed seed
    assert np.abs(standalone(sd, "a red cat", drawn) - pixels(out.images[1])).max() <= 1
    again = morph(sd, MorphConfig.from_params(dict(out.recipe.params)))  # the recipe replays the drawn seed
    assert np.array_equal(pixels(again.images[1]), pixels(out.images[1]))
    assert morph(sd, config).recipe.params["keyframes"][1]["seed"] != drawn  # -1 is random each run


def test_recipe_round_trips_through_from_params(sd):
    out = morph(sd, MorphConfig(keyframes=KEYFRAMES[:2], frames=2, steps=1, seed=-1))
    params = out.recipe.params
    again = MorphConfig.from_params(dict(params))
    assert again.seed == out.recipe.seed != -1
    assert [k.prompt for k in again.keyframes] == ["a red cat", "a dog in the snow"]
    assert out.recipe.workflow == "morph"


def test_lpips_only_with_local_weights_else_the_lab_proxy():
    from PIL import Image

    from latentscape.workflows.morph_pacing import consecutive_distances, lpips_available, resolve_distance

    frames = [Image.new("RGB", (32, 32), c) for c in ("white", "#eeeeee", "black")]
    if lpips_available():
        assert resolve_distance("auto") == "lpips"
        d = consecutive_distances(frames, "lpips")
    else:
        assert resolve_distance("auto") == "lab"
        with pytest.raises(LatentscapeError, match="--distance lab"):
            resolve_distance("lpips")
        d = consecutive_distances(frames, "lab")
    assert len(d) == 2 and 0 < d[0] < d[1]
    assert len(consecutive_distances(frames, "lab", closed=True)) == 3
