"""vary: strength 0 is the source, strength 1 the variation seed's own image, on every family."""

from __future__ import annotations

import pytest
from creative_helpers import FAMILIES, FAST, assert_same, load_family, max_diff, standalone

from latentscape.errors import LatentscapeError
from latentscape.io.recipe import read_recipe, save_png
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.replay import replay
from latentscape.workflows.vary import PRESETS, VaryConfig, resolve_strength, vary, vary_config


@pytest.mark.parametrize("fixture", FAMILIES)
def test_strength_0_is_the_source_and_1_the_variation_seeds_image(request, fixture):
    model = load_family(request, fixture)
    source = standalone(model, "a red cat", 3)
    zero = vary(model, VaryConfig(prompt="a red cat", seed=3, n=2, strength=0.0, variation_seed=7, cfg=5.0, **FAST))
    for image in zero.images:
        assert_same(image, source)
    one = vary(model, VaryConfig(prompt="a red cat", seed=3, n=2, strength=1.0, variation_seed=7, cfg=5.0, **FAST))
    for i, image in enumerate(one.images):
        assert_same(image, standalone(model, "a red cat", 7 + i))
    subtle = vary(model, VaryConfig(prompt="a red cat", seed=3, n=2, strength="subtle", variation_seed=7, cfg=5.0, **FAST))
    assert all(max_diff(image, source) > 1 for image in subtle.images), "a subtle variation must still vary"
    assert [r.infotext_extra["Variation seed"] for r in subtle.recipes] == [7, 8]


def test_stochastic_sampler_keeps_both_properties(request):
    model = load_family(request, "tiny_sd")
    kw = dict(prompt="a dog", seed=11, n=1, variation_seed=21, cfg=4.0, sampler="euler_a", **FAST)
    assert_same(vary(model, VaryConfig(strength=0.0, **kw)).images[0], standalone(model, "a dog", 11, cfg=4.0, sampler="euler_a"))
    assert_same(vary(model, VaryConfig(strength=1.0, **kw)).images[0], standalone(model, "a dog", 21, cfg=4.0, sampler="euler_a"))


def test_a_generated_png_is_varied_from_its_recipe_and_outputs_replay(request, tmp_path):
    model = load_family(request, "tiny_sd")
    out = generate(model, GenerateConfig(prompt="a photo of a cat", seed=5, cfg=6.0, sampler="heun", **FAST))
    path = save_png(out.images[0], tmp_path / "source.png", out.recipes[0])
    config, source = vary_config(str(path), n=2, strength=0.0, variation_seed=1)
    assert source.model == model.model_id
    assert (config.prompt, config.seed, config.cfg, config.sampler) == ("a photo of a cat", 5, 6.0, "heun")
    varied = vary(model, config)
    assert_same(varied.images[0], out.images[0])
    # each variation's PNG replays bit for bit
    strong, _ = vary_config(str(path), n=2, strength="strong", variation_seed=1)
    result = vary(model, strong)
    saved = save_png(result.images[1], tmp_path / "v1.png", result.recipes[1])
    recipe = read_recipe(saved)
    again = replay(model, recipe)
    assert max_diff(again.images[recipe.batch_index], result.images[1]) == 0
    assert recipe.params["strength"] == PRESETS["strong"]["seed"]


def test_an_external_image_gets_img2img_variations(request, tmp_path):
    model = load_family(request, "tiny_sd")
    image = standalone(model, "mountain landscape", 2)
    image.save(tmp_path / "photo.png")  # no recipe: an external image
    config, source = vary_config(str(tmp_path / "photo.png"), n=2, strength="subtle", seed=40, prompt="a lake", steps=4,
                                  image_mode="noise")
    assert source is None and config.init_image
    out = vary(model, config)
    ref = generate(model, GenerateConfig(prompt="a lake", seed=40, batch=2, init_image=str(tmp_path / "photo.png"),
                                         strength=PRESETS["subtle"]["image"], steps=4, cfg=config.cfg))
    for a, b in zip(out.images, ref.images):
        assert_same(a, b)
    assert out.info["mode"] == "image" and out.recipes[0].infotext_extra["Denoising strength"] == 0.35


def test_sources_and_strengths_are_validated(tmp_path):
    assert resolve_strength("subtle", "seed") == 0.2 and resolve_strength("STRONG", "image") == 0.65
    assert resolve_strength("0.4", "seed") == 0.4
    for bad, mode in (("medium", "seed"), (1.5, "seed"), (0.0, "image"), (-0.1, "seed")):
        with pytest.raises(LatentscapeError):
            resolve_strength(bad, mode)
    with pytest.raises(LatentscapeError, match="not an existing file"):
        vary_config(str(tmp_path / "missing.png"))
    config, _ = vary_config("cat face, twitter style@42")
    assert (config.prompt, config.seed) == ("cat face, twitter style", 42)
    with pytest.raises(LatentscapeError, match="unknown kind"):
        vary_config("video:clip.mp4")
