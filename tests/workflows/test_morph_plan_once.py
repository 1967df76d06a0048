"""A morph parses, validates and plans its keyframes once: the library's render_morph (and its resume), the
CLI (whose early check before the model loads is the same check_config) and the plain morph() call."""

from __future__ import annotations

import json

import pytest
from PIL import Image

import latentscape
from latentscape.interfaces.cli import main
from latentscape.workflows import morph as morph_module
from latentscape.workflows.morph import MorphConfig, morph, render_morph


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


@pytest.fixture()
def picture(tmp_path):
    path = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (200, 40, 90)).save(path)
    return path


@pytest.fixture()
def calls(monkeypatch):
    """Counts of the planning function, the keyframe parser and the image-keyframe reader, as morph calls them."""
    counts = {"plan": 0, "parse": 0, "images": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(morph_module, "_plan", counted("plan", morph_module._plan))
    monkeypatch.setattr(morph_module, "parse_keyframe", counted("parse", morph_module.parse_keyframe))
    monkeypatch.setattr(morph_module, "load_keyframe_images", counted("images", morph_module.load_keyframe_images))
    return counts


def test_render_morph_plans_once_and_its_frames_are_the_morph_calls(sd, picture, tmp_path, calls):
    config = MorphConfig(keyframes=(f"image:{picture}", "a red cat@5", "seed:7"), frames=4, steps=1, seed=3, batch_size=4)
    out = render_morph(sd, config, tmp_path / "m.gif", save_frames=tmp_path / "frames")
    assert calls == {"plan": 1, "parse": 3, "images": 1}  # one plan; each keyframe parsed and each image read once
    calls.update(plan=0, parse=0, images=0)
    alone = morph(sd, config)
    assert calls == {"plan": 1, "parse": 3, "images": 1}
    assert [im.tobytes() for im in out.images] == [im.tobytes() for im in alone.images]
    assert out.recipe.to_json() == alone.recipe.to_json()  # the same recipe (render_morph's files anchor its inputs)


def test_a_resume_plans_once(sd, tmp_path, calls):
    config = MorphConfig(keyframes=("a red cat", "a dog in the snow@9"), frames=3, steps=1, batch_size=3)
    first = render_morph(sd, config, tmp_path / "m.gif")
    calls.update(plan=0, parse=0, images=0)
    again = render_morph(sd, config, tmp_path / "m.gif", resume=True)  # seed -1: the drawn seed comes from the manifest
    assert calls["plan"] == 1 and calls["parse"] == 2
    assert again.recipe.seed == first.recipe.seed


def test_the_cli_parses_each_keyframe_once_and_plans_once(tiny_sd, picture, tmp_path, capsys, calls):
    out = tmp_path / "m.gif"
    code = main(["morph", f"image:{picture}", "a red cat@5", "seed:7", "--model", str(tiny_sd), "--frames", "4",
                 "--steps", "1", "--seed", "3", "--batch-size", "4", "-o", str(out), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["frames"] == 4
    # the early check (before the model loads) reads the image to refuse a bad one; the plan reads it at the model's size
    assert calls == {"plan": 1, "parse": 3, "images": 2}
