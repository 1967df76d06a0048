"""`--json` prints one documented schema (latentscape.result/1, docs/json-schema.md) on every verb: each
verb's output validates, names files that exist, and carries the very recipe and infotext those files hold."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from PIL import Image

from latentscape.interfaces.cli import build_parser, main
from latentscape.interfaces.result_schema import json_schema, validate
from latentscape.io.recipe import A1111_CHUNK, read_recipe

FAST = ["--steps", "2", "--size", "32x32", "-q", "--json"]
ROOT = Path(__file__).resolve().parents[2]


def _verbs_with_json() -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name for name, p in sub.choices.items() if any("--json" in a.option_strings for a in p._actions)}


def _runs(m: list[str]) -> dict[str, list[str]]:
    return {
        "generate": ["generate", "a red cat", "--seed", "3", "--batch", "2", *m, *FAST, "-o", "g.png"],
        "img2img": ["img2img", "in.png", "a dog", "--seed", "4", *m, *FAST, "-o", "i.png"],
        "replay": ["replay", "g-1.png", "-o", "r.png", "--model-from-recipe", "-q", "--json"],
        "encode": ["encode", "in.png", "-o", "z.safetensors", *m, "--json"],
        "decode": ["decode", "z.safetensors", "-o", "d.png", *m, "--json"],
        "inspect": ["inspect", "in.png", "-o", "preview.png", *m, "--json"],
        "invert": ["invert", "in.png", "--prompt", "a cat", "--steps", "2", "-o", "inv.safetensors", "--reconstruction",
                   "rec.png", *m, "-q", "--json"],
        "morph": ["morph", "a red cat@1", "a dog@2", "--frames", "3", "--contact-sheet", "sheet.png", *m, *FAST, "-o", "m.gif"],
        "vary": ["vary", "g-0.png", "-n", "2", "--model-from-recipe", "-q", "--json", "--steps", "2", "-o", "v.png"],
        "blend": ["blend", "a red cat@3", "a dog@9", *m, *FAST, "-o", "b.png"],
        "mix": ["mix", "a red cat@3", "a dog", "--ratio", "0,0.5", *m, *FAST, "-o", "mix.png"],
        "explore": ["explore", "a red cat@3", "--grid", "3x3", "--save-cells", "cells", *m, *FAST, "-o", "e.png"],
        "map": ["map", "a red cat@3", "a dog@9", "seed:5", "seed:6", "--grid", "2x2", *m, *FAST, "-o", "map.png"],
        "sweep": ["sweep", "a red cat", "--cfg", "1,5", "--seeds", "2", "--adherence", "none", *m, *FAST, "-o", "sw.png"],
        "plot": ["plot", "a red cat", "--x", "cfg=1,5", "--y", "seed=1..2", "--save-cells", "pc", *m, *FAST, "-o", "p.png"],
        "math": ["math", '"a red cat" - "cat" + "dog"', "--seed", "2", *m, *FAST, "-o", "math.png"],
        "smoothness": ["smoothness", "m.gif", "--distance", "lab", "--json"],
        "models": ["models", "--json", "--scan", "."],
    }


def test_the_schema_file_is_the_model():
    written = json.loads((ROOT / "docs" / "result.schema.json").read_text())
    assert written == json.loads(json.dumps(json_schema(), sort_keys=True))
    assert "latentscape.result/1" in (ROOT / "docs" / "json-schema.md").read_text()


def test_every_verb_prints_the_one_schema(tiny_sd, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (32, 32), (200, 60, 30)).save("in.png")
    runs = _runs(["--model", str(tiny_sd)])
    assert _verbs_with_json() - {"serve"} <= set(runs), "a verb with --json has no schema test"
    for verb, argv in runs.items():
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 0, (verb, captured.err)
        result = validate(captured.out)
        assert result.verb == verb
        doc = json.loads(captured.out)
        if verb not in ("smoothness", "models"):
            assert result.model == str(tiny_sd) and result.family == "sd" and result.timings.load_s > 0, verb
        assert result.timings.total_s >= result.timings.load_s
        for entry in result.outputs:
            path = Path(entry.path)
            assert path.is_file(), (verb, entry.path)
            if entry.recipe is not None and path.suffix == ".png":
                assert read_recipe(path).to_json() == json.dumps(entry.recipe, sort_keys=True, ensure_ascii=False), (verb, path)
                with Image.open(path) as im:
                    assert im.text[A1111_CHUNK] == entry.infotext, (verb, path)
        kinds = [o.kind for o in result.outputs]
        expected = {
            "generate": ["image", "image"], "img2img": ["image"], "replay": ["image"], "encode": ["latent"], "decode": ["image"],
            "inspect": ["preview"], "invert": ["inversion", "image"], "morph": ["video", "manifest", "sheet"],
            "vary": ["image", "image"], "blend": ["image"], "mix": ["image", "image"], "explore": ["sheet"] + ["cell"] * 9,
            "map": ["sheet", "html"], "sweep": ["sheet", "chart"], "plot": ["sheet"] + ["cell"] * 4, "math": ["image"],
            "smoothness": [], "models": [],
        }[verb]
        assert kinds == expected, (verb, kinds)
        if verb == "generate":
            assert result.seeds == [3, 4] and [o.seed for o in result.outputs] == [3, 4]
            assert "Seed: 4" in result.outputs[1].infotext
        if verb == "plot":
            assert doc["axes"] == {"x": {"field": "cfg", "values": [1.0, 5.0]}, "y": {"field": "seed", "values": [1, 2]}}
            assert result.seeds[-2:] == [1, 2]
        if verb == "sweep":
            assert [row["cfg"] for row in doc["table"]] == [1.0, 5.0]


@pytest.mark.parametrize("doc, words", [
    ({"schema": "latentscape.result/2"}, "schema"),
    ({"outputs": [{"path": "x.png", "kind": "image", "seed": 1, "infotext": "p", "recipe": None}]}, "infotext but no recipe"),
    ({"seeds": [9]}, "are not the outputs' seeds"),
    ({"timings": {"load_s": -1, "render_s": 0, "total_s": 0}}, "load_s"),
])
def test_the_validator_refuses_documents_off_the_schema(doc, words):
    good = {"schema": "latentscape.result/1", "verb": "generate", "model": "m", "family": "sd", "outputs": [], "seeds": [],
            "timings": {"load_s": 1.0, "render_s": 1.0, "total_s": 2.0}}
    validate(good)
    with pytest.raises(ValueError, match=words):
        validate({**good, **doc})
