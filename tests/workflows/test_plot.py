"""X/Y/Z plot: axis grammar, cells equal standalone generates, recipes replay cells and sheets."""

from __future__ import annotations

import numpy as np
import pytest

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.io.recipe import Recipe
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.plot import MAX_PLOT_CELLS, PlotConfig, check_plan, plan, plot
from latentscape.workflows.plot_axes import parse_axis
from latentscape.workflows.replay import replay


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def _px(image):
    return np.asarray(image).astype(np.int16)


@pytest.mark.parametrize("text, values", [
    ("cfg=1,3,7.5", (1.0, 3.0, 7.5)),
    ("seed=1..4", (1, 2, 3, 4)),
    ("seed=1..10:3", (1, 4, 7, 10)),
    ("seed=10..1:3", (10, 7, 4, 1)),
    ("cfg=0..1[5]", (0.0, 0.25, 0.5, 0.75, 1.0)),
    ("steps=1-4", (1, 2, 3, 4)),  # A1111's spellings
    ("steps=1-10 (+3)", (1, 4, 7, 10)),
    ("steps=10-1 (-3)", (10, 7, 4, 1)),
    ("cfg=0-1 [3]", (0.0, 0.5, 1.0)),
    ("seed=-1,5,7..8", (-1, 5, 7, 8)),
    ('negative="blurry, dark",none', ("blurry, dark", "none")),
    ("size=64x64,96x32", ((64, 64), (96, 32))),
    ("CFG Scale=2", (2.0,)),
    ("guidance-rescale=0,0.7", (0.0, 0.7)),
    ("sampler=Euler a,DPM++ 2M Karras,euler", ("euler_a", "dpmpp_2m_karras", "euler")),  # A1111 names too
])
def test_axis_values(text, values):
    axis = parse_axis(text, where="x")
    assert axis.values == values
    assert all(type(v) is type(w) for v, w in zip(axis.values, values))


@pytest.mark.parametrize("text, words", [
    ("nope=1", "no plot field"),
    ("cfg", "FIELD=VALUES"),
    ("cfg=a", "'a' for 'cfg'"),
    ("steps=1.5", "whole numbers"),
    ("seed=1..100000", "at most 256"),
    ("steps=1..4:0", "step 0"),
    ("prompt=S/R:cat", "one value"),
    ("sampler=frobnicate", "the sampler 'frobnicate'"),
    ('prompt="unclosed', "unclosed quote"),
    ("cfg=", "no values"),
])
def test_bad_axes_are_one_sentence_naming_the_axis(text, words):
    with pytest.raises(LatentscapeError) as err:
        parse_axis(text, where="x")
    message = str(err.value)
    assert message.startswith("x got") and words in message and message.count("\n") == 0


def test_bad_plans_are_refused_before_a_model():
    base = dict(prompt="a cat", steps=2)
    cases = [
        (PlotConfig(**base), "at least one axis"),
        (PlotConfig(**base, x=parse_axis("cfg=1,2"), y=parse_axis("cfg=3")), "already varies"),
        (PlotConfig(**base, x=parse_axis("size=32x32"), y=parse_axis("width=32")), "already varies"),
        (PlotConfig(**base, x=parse_axis("prompt=S/R:dog,owl")), "does not contain 'dog'"),
        (PlotConfig(**base, x=parse_axis("strength=0.2,0.5")), "img2img"),
        (PlotConfig(**base, x=parse_axis("seed=1..20"), y=parse_axis("cfg=1..14")), f"at most {MAX_PLOT_CELLS} cells"),
        (PlotConfig(**base, x=parse_axis("steps=2,0")), "steps got 0"),
        (PlotConfig(**base, x=parse_axis("cfg=1,2"), batch=2), "batch got 2"),
    ]
    for config, words in cases:
        with pytest.raises(LatentscapeError, match=words):
            check_plan(config)


def test_plan_order_and_prompt_search_replace():
    config = PlotConfig(prompt="a cat on a mat", x=parse_axis("prompt=S/R:cat,dog,owl"), y=parse_axis("seed=1,2"),
                        z=parse_axis("size=32x32,64x32"))
    cells = plan(config)
    assert [(c.z, c.y, c.x) for c in cells[:4]] == [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)]
    assert [c.config.prompt for c in cells[:3]] == ["a cat on a mat", "a dog on a mat", "a owl on a mat"]
    assert {(c.config.width, c.config.height) for c in cells if c.z == 1} == {(64, 32)}
    assert all(c.config.batch == 1 for c in cells)


def test_cells_equal_standalone_generates_and_replay(sd):
    config = PlotConfig(prompt="a cat", steps=2, x=parse_axis("cfg=1,4"), y=parse_axis("seed=5..6"),
                        z=parse_axis("sampler=euler,euler_a"))
    out = plot(sd, config)
    assert len(out.images) == 8 and len(out.info["sheets"]) == 2
    for place, image, recipe in zip(out.info["cells"], out.images, out.recipes):
        cfg = (1.0, 4.0)[place["x"]]
        seed = (5, 6)[place["y"]]
        sampler = ("euler", "euler_a")[place["z"]]
        alone = generate(sd, GenerateConfig(prompt="a cat", steps=2, cfg=cfg, seed=seed, sampler=sampler))
        assert np.array_equal(_px(image), _px(alone.images[0])), place  # bit-identical, not just close
        assert recipe.workflow == "generate" and recipe.seed == seed and recipe.params["cfg"] == cfg
        assert f"Seed: {seed}" in recipe.infotext() and f"CFG scale: {cfg:g}" in recipe.infotext()
    # a cell's recipe (as read back from its PNG) replays that cell
    again = replay(sd, Recipe.from_json(out.recipes[5].to_json()))
    assert np.array_equal(_px(again.images[0]), _px(out.images[5]))
    # a sheet's recipe replays that sheet (and only that Z value's cells are rendered)
    sheet_recipe = Recipe.from_json(out.info["sheet_recipes"][1].to_json())
    assert sheet_recipe.workflow == "plot" and sheet_recipe.params["sampler"] == "euler_a"
    text = sheet_recipe.infotext()
    assert "Script: X/Y/Z plot" in text and "X Values: 1 | 4" in text and "Sampler: Euler a" in text
    sheet = replay(sd, sheet_recipe)
    assert len(sheet.images) == 1 and len(sheet.info["cell_recipes"]) == 4
    assert np.array_equal(_px(sheet.images[0]), _px(out.info["sheets"][1]))
    assert not np.array_equal(_px(out.info["sheets"][0]), _px(out.info["sheets"][1]))


def test_labelled_sheet_layout(sd):
    out = plot(sd, PlotConfig(prompt="a cat", steps=1, seed=1, x=parse_axis("cfg=1,2,3"), y=parse_axis("steps=1,2")))
    sheet = out.info["sheets"][0]
    w, h = out.images[0].size  # 32x32 cells drawn 4x (grids.cell_scale) with labels on top and left
    assert sheet.width > 3 * 4 * w and sheet.height > 2 * 4 * h
    assert out.info["axes"] == {"x": {"field": "cfg", "values": [1.0, 2.0, 3.0]}, "y": {"field": "steps", "values": [1, 2]}}


def test_random_base_seed_is_shared_by_every_cell(sd):
    out = plot(sd, PlotConfig(prompt="a cat", steps=1, seed=-1, x=parse_axis("cfg=1,5")))
    assert len({r.seed for r in out.recipes}) == 1 and out.recipes[0].seed >= 0
    assert out.info["sheet_recipes"][0].params["seed"] == out.recipes[0].seed


def test_batch_seeds_batches_consecutive_seeds_and_each_cell_still_replays(sd):
    config = PlotConfig(prompt="a cat", steps=2, x=parse_axis("seed=3..5,9"), y=parse_axis("cfg=2,6"), batch_seeds=True)
    out = plot(sd, config)
    batches = [(r.params["batch"], r.params["seed"], r.batch_index) for r in out.recipes[:4]]
    assert batches == [(3, 3, 0), (3, 3, 1), (3, 3, 2), (1, 9, 0)]  # 3..5 in one batch, 9 alone
    unbatched = plot(sd, PlotConfig(prompt="a cat", steps=2, x=parse_axis("seed=3..5,9"), y=parse_axis("cfg=2,6")))
    for a, b in zip(out.images, unbatched.images):  # float rounding of a batch: at most 1/255 on CPU
        assert np.abs(_px(a) - _px(b)).max() <= 1
    again = replay(sd, Recipe.from_json(out.recipes[2].to_json()))
    assert np.array_equal(_px(again.images[2]), _px(out.images[2]))


def test_size_axis_cells_of_different_sizes_share_one_sheet(sd):
    out = plot(sd, PlotConfig(prompt="a cat", steps=1, seed=2, x=parse_axis("size=32x32,64x32")))
    assert [im.size for im in out.images] == [(32, 32), (64, 32)]
    assert out.latents.numel() == 0 and [t.shape[-1] for t in out.info["latents"]] == [4, 8]
    assert out.info["sheets"][0].width > 2 * 2 * 64  # the 64-px-wide cell decides the column width


def test_img2img_plot_over_strength_equals_standalone_img2img(sd, tmp_path):
    from PIL import Image

    source = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (180, 40, 90)).save(source)
    out = plot(sd, PlotConfig(prompt="a dog", steps=2, seed=4, init_image=str(source), x=parse_axis("strength=0,0.5,1")))
    assert [r.workflow for r in out.recipes] == ["img2img"] * 3
    for strength, image in zip((0.0, 0.5, 1.0), out.images):
        alone = generate(sd, GenerateConfig(prompt="a dog", steps=2, seed=4, init_image=str(source), strength=strength))
        assert np.array_equal(_px(image), _px(alone.images[0])), strength
    assert out.info["sheet_recipes"][0].inputs["init_image"]["path"] == str(source)
    assert replay(sd, Recipe.from_json(out.info["sheet_recipes"][0].to_json())).images[0].size == out.info["sheets"][0].size
