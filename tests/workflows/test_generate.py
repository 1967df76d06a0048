import numpy as np
import pytest
import torch
from PIL import Image

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.workflows.generate import GenerateConfig, generate


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def _px(images):
    return np.stack([np.asarray(i) for i in images]).astype(np.int16)


def test_batch_uses_consecutive_seeds_and_items_match_single_runs(sd):
    out = generate(sd, GenerateConfig(prompt="a cat", seed=100, batch=3, steps=2))
    assert out.seeds == [100, 101, 102]
    assert [r.batch_index for r in out.recipes] == [0, 1, 2]
    single = generate(sd, GenerateConfig(prompt="a cat", seed=101, steps=2))
    assert np.abs(_px(out.images[1:2]) - _px(single.images)).max() <= 1
    assert not np.array_equal(_px(out.images[:1]), _px(out.images[1:2]))


def test_random_seed_is_reported_and_reproducible(sd):
    out = generate(sd, GenerateConfig(prompt="a cat", seed=-1, steps=2))
    seed = out.recipes[0].seed
    assert seed >= 0 and out.recipes[0].params["seed"] == seed
    again = generate(sd, GenerateConfig(prompt="a cat", seed=seed, steps=2))
    assert np.array_equal(_px(out.images), _px(again.images))


def test_recipe_records_the_resolved_parameters(sd):
    r = generate(sd, GenerateConfig(prompt="p", seed=1, steps=2)).recipes[0]
    assert r.family == "sd" and r.params["cfg"] == 7.5 and r.params["width"] == 32 and r.params["height"] == 32
    # A1111 order: the schedule type follows the sampler (tiny_sd's Euler uses "leading" spacing: A1111's DDIM schedule)
    assert "Steps: 2, Sampler: Euler, Schedule type: DDIM, CFG scale: 7.5, Seed: 1, Size: 32x32" in r.infotext()


@pytest.mark.parametrize("sampler", ["euler", "euler_a", "heun", "ddim", "dpmpp_2m", "dpmpp_2m_karras", "unipc", "lcm"])
def test_every_sampler_runs(sd, sampler):
    out = generate(sd, GenerateConfig(prompt="p", seed=1, steps=3, sampler=sampler))
    assert out.latents.shape == (1, 4, 4, 4) and torch.isfinite(out.latents).all()


def test_callback_sees_every_step_and_can_cancel(sd):
    from latentscape.sampling import Cancelled

    seen = []
    generate(sd, GenerateConfig(prompt="p", seed=1, steps=4), callback=lambda s: seen.append((s.step, s.total)))
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4)]
    with pytest.raises(Cancelled):
        generate(sd, GenerateConfig(prompt="p", seed=1, steps=4), callback=lambda s: s.step < 1)


def test_cfg_changes_the_image_and_1_skips_the_uncond_branch(sd):
    a = generate(sd, GenerateConfig(prompt="p", seed=3, steps=2, cfg=1.0))
    b = generate(sd, GenerateConfig(prompt="p", seed=3, steps=2, cfg=9.0))
    assert not torch.equal(a.latents, b.latents)
    assert not sd.uses_cfg(1.0) and sd.uses_cfg(9.0)


def test_img2img_strength(sd, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src)
    weak = generate(sd, GenerateConfig(prompt="p", seed=1, steps=10, init_image=str(src), strength=0.1))
    strong = generate(sd, GenerateConfig(prompt="p", seed=1, steps=10, init_image=str(src), strength=1.0))
    rec = sd.encode_images(torch.from_numpy(np.asarray(Image.open(src), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None])
    assert (weak.latents - rec).abs().mean() < (strong.latents - rec).abs().mean()
    r = weak.recipes[0]
    assert r.workflow == "img2img" and r.inputs["init_image"]["sha256"] and "Denoising strength: 0.1" in r.infotext()


def test_img2img_size_must_fit(sd, tmp_path):
    src = tmp_path / "odd.png"
    Image.new("RGB", (30, 33)).save(src)
    with pytest.raises(LatentscapeError, match=r"30x33.*nearest valid size is 32x32"):
        generate(sd, GenerateConfig(prompt="p", init_image=str(src), steps=2))
    out = generate(sd, GenerateConfig(prompt="p", init_image=str(src), steps=2, resize="stretch", seed=0))
    assert out.images[0].size == (32, 32)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps got 0"),
        ({"batch": 0}, "batch got 0"),
        ({"cfg": -1.0}, "cfg got -1.0"),
        ({"sampler": "magic"}, "sampler got 'magic'"),  # the field (the CLI writes it as --sampler)
        ({"width": 33, "height": 32}, "size 33x32 is not a multiple of 8"),
        ({"width": 0, "height": 32}, "size 0x32 is not a multiple of 8"),  # 0 is refused, not the default size
        ({"guidance_rescale": 2.0}, "guidance_rescale got 2.0"),
        ({"init_image": "x.png", "strength": 1.5}, "strength got 1.5"),
    ],
)
def test_bad_parameters(sd, kwargs, message):
    with pytest.raises(LatentscapeError, match=message.replace("(", r"\(")):
        generate(sd, GenerateConfig(prompt="p", **kwargs))


def test_strength_zero_is_the_vae_round_trip_of_the_image(sd, tmp_path):
    src = tmp_path / "src.png"
    Image.new("RGB", (32, 32), (30, 120, 220)).save(src)
    steps = []
    out = generate(sd, GenerateConfig(prompt="p", seed=1, steps=10, init_image=str(src), strength=0.0), callback=steps.append)
    from latentscape.io.images import load_image, pil_to_tensor

    expected = sd.encode_images(pil_to_tensor([load_image(src)]))
    assert steps == [] and torch.equal(out.latents, expected)
    assert "Denoising strength: 0," in out.recipes[0].infotext()
