"""explore around an IMAGE: inverted (the default), the centre is the image's VAE round trip and the cells
move in noise space around its inversion; ``image_mode="noise"`` is img2img at ``strength``."""

from __future__ import annotations

import numpy as np
import pytest
from creative_helpers import FAST, load_family, max_diff, pixels
from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.workflows.common import decode_images
from latentscape.workflows.explore import ExploreConfig, explore
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.replay import replay


@pytest.fixture()
def picture(tmp_path, monkeypatch):
    """A 32x32 image no other test inverts (the inversion cache is process-wide), and a fresh disk cache."""
    monkeypatch.setenv("LATENTSCAPE_INVERSION_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(int.from_bytes(str(tmp_path).encode()[-6:], "little"))
    arr = (np.array((60, 170, 90)) * 0.7 + rng.random((32, 32, 3)) * 80).clip(0, 255).astype(np.uint8)
    path = tmp_path / "source.png"
    Image.fromarray(arr).save(path)
    return str(path)


def round_trip(model, path: str) -> np.ndarray:
    from latentscape.io.images import load_image, pil_to_tensor

    return pixels(decode_images(model, model.encode_images(pil_to_tensor([load_image(path)])))[0])


@pytest.mark.parametrize("sampler", ["euler", "euler_a"])
def test_centre_is_the_round_trip_and_cells_stay_near_it_but_differ(request, picture, sampler):
    model = load_family(request, "tiny_sd")
    out = explore(model, ExploreConfig(point=f"image:{picture}", grid="3x3", radius=0.3, seed=4, sampler=sampler, steps=3))
    assert out.info["mode"] == "inverted" and (out.info["width"], out.info["height"]) == (32, 32)
    trip = round_trip(model, picture)
    assert np.abs(pixels(out.images[4]) - trip).max() <= 1
    assert all(max_diff(out.images[i], out.images[4]) > 1 for i in range(9) if i != 4)
    recipe = out.recipes[4]
    assert recipe.params["image_mode"] == "invert" and recipe.params["point"]["image"] == picture
    assert recipe.inputs["images"][0]["path"] == picture and len(recipe.inputs["images"][0]["sha256"]) == 64
    assert "Image mode: invert" in recipe.infotext()


@pytest.mark.parametrize("sampler", ["euler", "euler_a"])
def test_on_the_embedded_model_neighbours_stay_near_the_image_and_move_away_with_radius(embedded, tmp_path, monkeypatch, sampler):
    monkeypatch.setenv("LATENTSCAPE_INVERSION_CACHE", str(tmp_path / "cache"))
    path = str(tmp_path / "emoji.png")
    generate(embedded, GenerateConfig(prompt="cat face, google style", seed=11, steps=6)).images[0].save(path)
    trip = round_trip(embedded, path)

    def edges(radius):
        out = explore(embedded, ExploreConfig(point=f"image:{path}", grid="3x1", radius=radius, seed=3, steps=6, sampler=sampler))
        assert np.abs(pixels(out.images[1]) - trip).max() <= 1
        return [float(np.abs(pixels(out.images[i]) - trip).mean()) for i in (0, 2)]

    near, far = edges(0.15), edges(1.0)
    assert all(2 < d < 20 for d in near), near  # visibly different, still the image (measured ~8-10 of 255)
    assert all(d > 2 * n for d, n in zip(far, near)), (near, far)  # radius 1: a new image (measured ~65)


def test_second_run_hits_the_inversion_cache_and_replay_reproduces(request, picture):
    model = load_family(request, "tiny_sd")
    config = ExploreConfig(point=f"image:{picture}", grid="3x1", seed=2, steps=3)
    first = explore(model, config)
    assert first.info["inversion"]["cached"] is False
    again = explore(model, config)
    assert again.info["inversion"]["cached"] is True
    assert all(max_diff(a, b) == 0 for a, b in zip(first.images, again.images))
    cell = replay(model, first.recipes[0])
    assert max_diff(cell.images[0], first.images[0]) == 0
    sheet = replay(model, first.info["sheet_recipe"])
    assert max_diff(sheet.images[0], first.info["sheet"]) == 0


def test_noise_mode_is_img2img_at_strength_around_the_seed(request, picture):
    model = load_family(request, "tiny_sd")
    out = explore(model, ExploreConfig(point=f"image:{picture}", grid="3x1", seed=5, image_mode="noise", strength=0.6,
                                       cfg=5.0, steps=5))
    assert out.info["mode"] == "img2img" and out.info["inversion"] is None
    img2img = generate(model, GenerateConfig(prompt="", init_image=picture, strength=0.6, seed=5, cfg=5.0, steps=5)).images[0]
    assert max_diff(out.images[1], img2img) <= 1  # the centre: the point seed's img2img
    assert max_diff(out.images[0], out.images[1]) > 1 and max_diff(out.images[2], out.images[1]) > 1
    assert "Denoising strength: 0.6" in out.recipes[0].infotext() and "Image mode" not in out.recipes[0].infotext()
    assert max_diff(replay(model, out.recipes[2]).images[2], out.images[2]) == 0
    weaker = explore(model, ExploreConfig(point=f"image:{picture}", grid="3x1", seed=5, image_mode="noise", strength=0.2, cfg=5.0, steps=5))
    trip = round_trip(model, picture)
    assert np.abs(pixels(weaker.images[1]) - trip).mean() < np.abs(pixels(out.images[1]) - trip).mean()  # strength repaints more


def test_recipes_made_before_image_mode_read_as_noise(request, picture):
    model = load_family(request, "tiny_sd")
    out = explore(model, ExploreConfig(point="a cat@3", grid="3x1", **FAST))
    params = {k: v for k, v in out.recipes[0].params.items() if k not in ("image_mode", "strength")}
    old = ExploreConfig.from_params(params)
    assert old.image_mode == "noise"
    assert max_diff(explore(model, old).images[0], out.images[0]) == 0  # a prompt point ignores the mode


def test_bad_image_input_is_one_sentence(request, picture, tmp_path):
    model = load_family(request, "tiny_sd")
    with pytest.raises(LatentscapeError, match=r"image_mode got 'img2img'; accepted: invert .* or noise"):
        explore(model, ExploreConfig(point=f"image:{picture}", image_mode="img2img", steps=2))
    with pytest.raises(LatentscapeError, match=r"is 32x32 but --size asks for 64x32; accepted: .*--resize stretch"):
        explore(model, ExploreConfig(point=f"image:{picture}", width=64, height=32, steps=2))
    stretched = explore(model, ExploreConfig(point=f"image:{picture}", grid="1x1", width=64, height=32, resize="stretch", steps=2))
    assert stretched.images[0].size == (64, 32)
    Image.new("RGB", (30, 30)).save(tmp_path / "odd.png")
    with pytest.raises(LatentscapeError, match="not a multiple of 8"):
        explore(model, ExploreConfig(point=f"image:{tmp_path / 'odd.png'}", steps=2))
    for strength in (0.0, 0.1, 1.5):
        with pytest.raises(LatentscapeError, match=rf"--strength got {strength} with 4 steps; accepted with --image-mode noise"):
            explore(model, ExploreConfig(point=f"image:{picture}", image_mode="noise", strength=strength, steps=4))
    with pytest.raises(LatentscapeError, match="missing.png"):
        explore(model, ExploreConfig(point=f"image:{tmp_path / 'missing.png'}", steps=2))
