import json

import pytest
from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io.recipe import Recipe, read_recipe, save_png


def _recipe(**params):
    base = {"prompt": "a cat, sitting", "negative": "", "steps": 30, "sampler": "euler", "cfg": 7.5, "width": 512, "height": 512}
    base.update(params)
    return Recipe(workflow="generate", model="/models/sd15", family="sd", params=base, seed=42, sampler_label="Euler",
                  versions={"latentscape": "0.1.0"})


def test_infotext_a1111_format():
    text = _recipe().infotext()
    # RNG: CPU always (latentscape's noise is A1111's CPU RNG); no hash or schedule known for this hand-made recipe
    assert text == ("a cat, sitting\nSteps: 30, Sampler: Euler, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: sd15, RNG: CPU, "
                    "Version: latentscape 0.1.0")
    full = Recipe(**{**_recipe().__dict__, "schedule_label": "Karras", "model_hash": "0123456789"}).infotext()
    assert "Sampler: Euler, Schedule type: Karras, CFG scale: 7.5" in full and "Model hash: 0123456789, Model: sd15" in full


def test_infotext_negative_and_quoting():
    r = Recipe(workflow="generate", model="m", family="sd", seed=1, sampler_label="Euler a",
               params={"prompt": "p", "negative": "blurry, low", "steps": 2, "cfg": 3.0, "width": 8, "height": 8},
               infotext_extra={"Note": "a:b"}, versions={"latentscape": "0.1.0"})
    lines = r.infotext().split("\n")
    assert lines[1] == "Negative prompt: blurry, low"
    # extra values are never JSON-quoted (civitai, sd-parsers and sd-prompt-reader cut quoted values at a comma)
    assert "Note: a -b," in lines[2] and '"' not in lines[2] and "CFG scale: 3," in lines[2]


def test_png_round_trip(tmp_path):
    path = tmp_path / "x.png"
    save_png(Image.new("RGB", (4, 4)), path, _recipe())
    back = read_recipe(path)
    assert back == _recipe()
    with Image.open(path) as im:
        assert im.text["parameters"].startswith("a cat, sitting\nSteps: 30")
        assert json.loads(im.text["latentscape"])["seed"] == 42
    assert not [p for p in tmp_path.iterdir() if p.name != "x.png"]  # no temp files left


def test_read_recipe_errors(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (2, 2)).save(plain)
    with pytest.raises(LatentscapeError, match="holds no latentscape recipe"):
        read_recipe(plain)
    with pytest.raises(LatentscapeError, match="does not exist"):
        read_recipe(tmp_path / "missing.png")
    text = tmp_path / "t.png"
    text.write_text("x")
    with pytest.raises(LatentscapeError, match="is not an image"):
        read_recipe(text)


def test_outputs_get_normal_permissions(tmp_path):
    import os
    import stat

    path = tmp_path / "perm.png"
    save_png(Image.new("RGB", (2, 2)), path, None)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
