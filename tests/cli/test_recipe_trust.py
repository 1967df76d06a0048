"""A recipe read from a file is untrusted: replay and vary read only the inputs it records (hash-checked),
use the model it names only with --model-from-recipe, and find moved inputs by hash."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from latentscape.io.recipe import Recipe, read_recipe, save_png
from cli_helpers import run, pixels


def tamper(path, **changes):
    """Rewrite the recipe in ``path`` as an attacker would (``params`` entries are merged)."""
    recipe = read_recipe(path)
    params = {**recipe.params, **changes.pop("params", {})}
    save_png(Image.open(path).convert("RGB"), path, dataclasses.replace(recipe, params=params, **changes))


@pytest.fixture
def img2img_png(tiny_sd, tmp_path, capsys):
    """An img2img output made in tmp/a from tmp/a/in/src.png."""
    (tmp_path / "a" / "in").mkdir(parents=True)
    src = tmp_path / "a" / "in" / "src.png"
    Image.new("RGB", (32, 32), (200, 40, 10)).save(src)
    out = tmp_path / "a" / "o.png"
    code, _, err = run(capsys, "img2img", src, "p", "--model", tiny_sd, "--steps", 2, "--seed", 1, "-o", out, "-q")
    assert code == 0, err
    return out


def test_a_path_the_recipe_does_not_record_is_never_read(img2img_png, tiny_sd, tmp_path, capsys):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(secret)
    tamper(img2img_png, params={"init_image": str(secret)})
    code, _, err = run(capsys, "replay", img2img_png, "-o", tmp_path / "r.png", "--model", tiny_sd)
    assert code == 2
    assert f"params.init_image names '{secret}', which is not one of its recorded inputs" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r.png").exists()


def test_a_recorded_input_that_is_a_folder_or_changed_is_refused(img2img_png, tiny_sd, tmp_path, capsys):
    tamper(img2img_png, inputs={"init_image": {"path": str(tmp_path), "sha256": "0" * 64}}, params={"init_image": str(tmp_path)})
    code, _, err = run(capsys, "replay", img2img_png, "-o", tmp_path / "r.png", "--model", tiny_sd)
    assert code == 2 and f"init_image '{tmp_path}' no longer exists" in err and not (tmp_path / "r.png").exists()
    src = tmp_path / "a" / "in" / "src.png"
    entry = {"path": str(src), "sha256": "0" * 64}
    tamper(img2img_png, inputs={"init_image": entry}, params={"init_image": str(src)})
    code, _, err = run(capsys, "replay", img2img_png, "-o", tmp_path / "r.png", "--model", tiny_sd)
    assert code == 2 and f"init_image '{src}' has changed since the output was made" in err
    assert not (tmp_path / "r.png").exists()


def test_the_recipe_model_is_used_only_when_asked(tiny_sd, tmp_path, capsys, monkeypatch):
    gen = tmp_path / "gen.png"
    assert run(capsys, "generate", "a red cat", "--model", tiny_sd, "--steps", 2, "--seed", 3, "-o", gen, "-q")[0] == 0
    tamper(gen, model=str(tmp_path / "evil-model"))
    # --model wins, with a note that the recipe named another one
    code, _, err = run(capsys, "vary", gen, "-n", 1, "--model", tiny_sd, "--steps", 2, "-q", "-o", tmp_path / "v.png")
    assert code == 0 and f"the recipe was made with model '{tmp_path / 'evil-model'}'" in err and "--model-from-recipe" in err
    # --model-from-recipe: that model is loaded (here: it does not exist, so one sentence and nothing written)
    for verb in (["vary", gen, "-n", 1, "-o", tmp_path / "w.png"], ["replay", gen, "-o", tmp_path / "w.png"]):
        code, _, err = run(capsys, *verb, "--model-from-recipe", "-q")
        assert code == 2 and "evil-model" in err and not (tmp_path / "w.png").exists()
    # neither: the default model, never the recipe's
    asked = []

    def fake_load(model, **kwargs):
        asked.append(model)
        raise KeyboardInterrupt

    monkeypatch.setattr("latentscape.models.load.load", fake_load)
    for verb in (["vary", gen, "-n", 1, "-o", tmp_path / "w.png"], ["replay", gen, "-o", tmp_path / "w.png"]):
        assert run(capsys, *verb, "-q")[0] == 130
    assert asked == [None, None]  # None: load's default, the embedded model


def test_inputs_are_recorded_relative_to_the_output_and_found_after_a_move(img2img_png, tiny_sd, tmp_path, capsys, monkeypatch):
    entry = read_recipe(img2img_png).inputs["init_image"]
    assert entry["relative"] == "in/src.png" and entry["absolute"] == str(tmp_path / "a" / "in" / "src.png")
    assert entry["size"] == (tmp_path / "a" / "in" / "src.png").stat().st_size
    # the output and its inputs move together: replay from anywhere
    shutil.move(tmp_path / "a", tmp_path / "b")
    monkeypatch.chdir(tmp_path / "b" / "in")
    code, _, err = run(capsys, "replay", tmp_path / "b" / "o.png", "-o", tmp_path / "r1.png", "--model", tiny_sd, "-q")
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "r1.png"), pixels(tmp_path / "b" / "o.png"))
    # the input moved elsewhere (renamed): not found, until --inputs names its folder
    (tmp_path / "elsewhere").mkdir()
    shutil.move(tmp_path / "b" / "in" / "src.png", tmp_path / "elsewhere" / "renamed.png")
    code, _, err = run(capsys, "replay", tmp_path / "b" / "o.png", "-o", tmp_path / "r2.png", "--model", tiny_sd, "-q")
    assert code == 2 and "init_image" in err and "no longer exists" in err and not (tmp_path / "r2.png").exists()
    code, _, err = run(capsys, "replay", tmp_path / "b" / "o.png", "-o", tmp_path / "r2.png", "--model", tiny_sd, "-q",
                       "--inputs", tmp_path / "elsewhere")
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "r2.png"), pixels(tmp_path / "b" / "o.png"))
    again = read_recipe(tmp_path / "r2.png")  # the new output records where the input is now
    assert again.params["init_image"] == str(tmp_path / "elsewhere" / "renamed.png")
    assert again.inputs["init_image"]["relative"] == "elsewhere/renamed.png"


def test_an_old_recipe_without_relative_paths_still_replays(img2img_png, tiny_sd, tmp_path, capsys):
    recipe = read_recipe(img2img_png)
    old = {k: v for k, v in recipe.inputs["init_image"].items() if k in ("path", "sha256")}
    tamper(img2img_png, inputs={"init_image": old})
    assert set(read_recipe(img2img_png).inputs["init_image"]) == {"path", "sha256"}
    code, _, err = run(capsys, "replay", img2img_png, "-o", tmp_path / "r.png", "--model", tiny_sd, "-q")
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "r.png"), pixels(img2img_png))
