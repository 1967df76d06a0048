"""One schema for recipes read back from files (issue 12): every field typed and bounded before anything
runs; errors name the field and the accepted values, never a CLI flag."""

import json

import pytest
from untrusted_files import png_with_text

from latentscape.errors import LatentscapeError
from latentscape.io.recipe import Recipe, read_recipe
from latentscape.io.recipe_schema import MAX_DEPTH, validate_params
from latentscape.workflows.generate import GenerateConfig
from latentscape.workflows.morph import MorphConfig

SHA = "0" * 64


def _data(**changes):
    data = {"workflow": "generate", "model": "embedded", "family": "sd", "seed": 3, "batch_index": 1,
            "params": {"prompt": "cat face, google style", "cfg": 7.5, "steps": 2, "batch": 2},
            "inputs": {"init_image": {"path": "in.png", "sha256": SHA, "relative": "in.png", "size": 10}},
            "load": {"config": None, "dtype": "fp32"}, "versions": {"latentscape": "0.1.0"}}
    for key, value in changes.items():
        if key.startswith("p_"):
            data["params"][key[2:]] = value
        else:
            data[key] = value
    return data


def _refused(data) -> str:
    with pytest.raises(LatentscapeError) as info:
        recipe = Recipe.from_json(json.dumps(data) if not isinstance(data, str) else data)
        validate_params(GenerateConfig, recipe.params, batch_index=recipe.batch_index)
    text = str(info.value)
    assert "\n" not in text and "--" not in text  # one sentence, fields not flags
    return text


def test_a_good_recipe_passes_and_round_trips():
    recipe = Recipe.from_json(json.dumps(_data()))
    validate_params(GenerateConfig, recipe.params, batch_index=recipe.batch_index)
    assert recipe.params["cfg"] == 7.5 and recipe.inputs["init_image"]["relative"] == "in.png"


@pytest.mark.parametrize("change, message", [
    ({"p_cfg": "abc"}, "the recipe's params.cfg is 'abc'; accepted: a finite number."),
    ({"p_cfg": [7]}, "the recipe's params.cfg is [7]; accepted: a finite number."),
    ({"p_seed": "abc"}, "the recipe's params.seed is 'abc'; accepted: a whole number."),
    ({"p_steps": 2.5}, "the recipe's params.steps is 2.5; accepted: a whole number."),
    ({"p_steps": True}, "the recipe's params.steps is true; accepted: a whole number."),
    ({"p_prompt": 123}, "the recipe's params.prompt is 123; accepted: a string."),
    ({"p_prompt": None}, "the recipe's params.prompt is null; accepted: a string."),
    ({"p_prompt": {}}, "the recipe's params.prompt is {}; accepted: a string."),
    ({"batch_index": 2}, "the recipe's batch_index is 2; accepted: 0 to 1 (params.batch is 2)."),
    ({"batch_index": -1}, "the recipe's batch_index is -1; accepted: a number >= 0."),
    ({"seed": "7"}, "the recipe's seed is '7'; accepted: a whole number."),
    ({"seed": 2**64}, "the recipe's seed is 18446744073709551616; accepted: a number <= 18446744073709551615."),
    ({"family": "kandinsky"}, "the recipe's family is 'kandinsky'; accepted: one of sd, sdxl, sd3 or flux."),
    ({"workflow": 5}, "the recipe's workflow is 5; accepted: a string."),
    ({"params": []}, "the recipe's params is []; accepted: an object."),
    ({"inputs": {"init_image": {"path": "x"}}}, "the recipe has no inputs.init_image.sha256; accepted: a value (the field is required)."),
    ({"inputs": {"init_image": [{"path": "x", "sha256": "zz"}]}}, "the recipe's inputs.init_image[0].sha256 is 'zz'; accepted: 64 lowercase hex digits."),
    ({"inputs": {"init_image": 5}}, "the recipe's inputs.init_image is 5; accepted: an object."),
    ({"load": {"dtype": "fp64"}}, "the recipe's load.dtype is 'fp64'; accepted: one of fp32, fp16 or bf16."),
])
def test_wrong_types_name_the_field_and_the_accepted_values(change, message):
    assert _refused(_data(**change)) == message


def test_missing_required_fields():
    data = _data()
    del data["family"]
    assert _refused(data) == "the recipe has no family; accepted: a value (the field is required)."
    data = _data()
    del data["params"]["prompt"]
    assert _refused(data) == "the recipe has no params.prompt; accepted: a value (the field is required)."


def test_infinity_and_nan_are_refused():
    text = json.dumps(_data()).replace('"cfg": 7.5', '"cfg": Infinity')
    assert _refused(text) == "the recipe's params.cfg is inf; accepted: a finite number (JSON has no Infinity or NaN)."
    assert "is nan" in _refused(json.dumps(_data()).replace('"cfg": 7.5', '"cfg": NaN'))


def test_nesting_size_and_shape_are_bounded():
    deep = _data(p_extra=json.loads("[" * 40 + "]" * 40))
    assert f"nests deeper than {MAX_DEPTH} levels" in _refused(deep)
    very_deep = '{"params": ' + "[" * 100_000 + "]" * 100_000 + "}"  # the json module itself would recurse
    assert "nests deeper" in _refused(very_deep)
    assert "holds more than 50,000 values" in _refused(_data(p_extra=list(range(60_000))))
    assert "a string of 200,000 characters" in _refused(_data(p_prompt="x" * 200_000))
    assert _refused("[1, 2]") == "the recipe is a JSON list; accepted: a JSON object of recipe fields."
    assert _refused("{nope").startswith("the recipe is not valid JSON")
    assert _refused('{"seed": 1' + "0" * 5000 + "}").startswith("the recipe is not valid JSON")  # int digit cap


def test_morph_keyframes_are_typed_through_the_config_dataclass():
    params = {"keyframes": [{"prompt": "a", "seed": 1}, {"prompt": "b", "cfg": 3}], "frames": 5}
    validate_params(MorphConfig, params)
    params["keyframes"][0]["seed"] = "x"
    with pytest.raises(LatentscapeError, match=r"^the recipe's params.keyframes\[0\].seed is 'x'; accepted: a whole number.$"):
        validate_params(MorphConfig, params)
    with pytest.raises(LatentscapeError, match=r"params.frames is 'many'; accepted: a whole number"):
        validate_params(MorphConfig, {"keyframes": ["a", "b"], "frames": "many"})


def test_read_recipe_names_the_file(tmp_path):
    png = png_with_text(tmp_path / "r.png", {"latentscape": json.dumps(_data(p_cfg="abc"))})
    recipe = read_recipe(png)  # the Recipe fields are fine; params are the workflow's to check
    with pytest.raises(LatentscapeError, match=r"the recipe in '.*r.png''s params.cfg is 'abc'"):
        validate_params(GenerateConfig, recipe.params, source=f"the recipe in '{png}'")
    bad = png_with_text(tmp_path / "b.png", {"latentscape": json.dumps(_data(seed=-5))})
    with pytest.raises(LatentscapeError, match=r"^the recipe in '.*b.png''s seed is -5; accepted: a number >= 0.$"):
        read_recipe(bad)


@pytest.mark.parametrize("change, message", [
    ({"p_cfg": "abc"}, "params.cfg is 'abc'; accepted: a finite number."),
    ({"p_prompt": 123}, "params.prompt is 123; accepted: a string."),
    ({"batch_index": 9}, "batch_index is 9; accepted: 0 to 1"),
])
def test_replay_refuses_a_bad_recipe_before_loading_a_model(tmp_path, capsys, change, message, monkeypatch):
    from latentscape.interfaces.cli import main

    def no_load(*args, **kwargs):
        raise AssertionError("the model must not be loaded for a bad recipe")

    monkeypatch.setattr("latentscape.models.load.load", no_load)
    data = _data(**change)
    data["inputs"] = {}
    png = png_with_text(tmp_path / "r.png", {"latentscape": json.dumps(data)})
    out = tmp_path / "out"
    code = main(["replay", str(png), "-o", str(out / "again.png"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("latentscape replay: error: ") and message in err[0]
    assert not out.exists()
