"""`latentscape plot`: bad axes -> one sentence, exit 2, nothing written, no model loaded; a good plot writes a
sheet per Z value and cells whose PNGs replay to themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentscape.interfaces.cli import main

FAST = ["--steps", "2", "--size", "32x32", "-q"]


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def no_load(monkeypatch):
    """Any model load fails the test: every refusal must come before it."""
    import latentscape.models.load as load_module

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the plot was checked")

    monkeypatch.setattr(load_module, "load", refuse)


@pytest.mark.parametrize("argv, message", [
    (["--x", "colour=1,2"], "--x got the field 'colour', which is no plot field; accepted: prompt, negative, seed"),
    (["--x", "cfg=1,x"], "--x got 'x' for 'cfg'"),
    (["--y", "steps=2.5"], "--y got '2.5' for 'steps', which gives 2.5; accepted: whole numbers"),
    (["--x", "seed=1..20", "--y", "cfg=1..13"], "at most 256 cells"),
    (["--x", "seed=1..100000"], "--x got the range '1..100000', which gives 100000 values"),
    (["--x", "cfg=1,2", "--z", "cfg=3"], "--z got the field 'cfg', which x already varies"),
    (["--x", "sampler=euler,warp_drive"], "--x got the sampler 'warp_drive'"),
    (["--x", "prompt=S/R:dog,owl"], "does not contain 'dog'"),
    (["--x", "steps=0,2"], "--steps got 0"),
    (["--x", "cfg=1,inf"], "finite"),
    (["--x", "strength=0.3,0.6"], "img2img"),
    ([], "a plot needs at least one axis"),
    (["--x", "cfg"], "--x got 'cfg'; accepted: FIELD=VALUES"),
    (["--x", "cfg=1,2", "-o", "grid.jpg"], "unknown extension '.jpg'"),
])
def test_bad_plots_fail_before_the_model_and_write_nothing(argv, message, no_load, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "plot", "a cat", *argv, *FAST)
    assert code == 2 and out == ""
    assert err.startswith("latentscape plot: error: ") and message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_sheet_is_refused_before_the_model(no_load, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("p-1.png").write_bytes(b"mine")
    code, _, err = _run(capsys, "plot", "a cat", "--x", "cfg=1,2", "--z", "seed=1,2", *FAST, "-o", "p.png")
    assert code == 2 and "'p-1.png' already exists; pass --overwrite" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p-1.png"] and Path("p-1.png").read_bytes() == b"mine"


def test_sheets_per_z_and_cells_replay_to_themselves(tiny_sd, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    m = ["--model", tiny_sd]
    code, out, err = _run(capsys, "plot", "a red cat", "--x", "prompt=S/R:red,blue", "--y", "seed=3..4", "--z", "cfg=2,6",
                          "--save-cells", "cells", *m, *FAST, "-o", "p.png")
    assert code == 0, err
    assert "wrote p-0.png" in out and "wrote p-1.png" in out
    cells = sorted(p.name for p in Path("cells").iterdir())
    assert len(cells) == 8 and cells[0] == "cell-00-00-00.png" and cells[-1] == "cell-01-01-01.png"
    with Image.open("cells/cell-01-01-01.png") as im:  # z=1 (cfg 6), y=1 (seed 4), x=1 (blue)
        text = im.text["parameters"]
    assert text.startswith("a blue cat\n") and "Seed: 4" in text and "CFG scale: 6" in text
    # the cell is the standalone generate of its settings
    assert _run(capsys, "generate", "a blue cat", "--seed", 4, "--cfg", 6, *m, *FAST, "-o", "g.png")[0] == 0
    assert np.array_equal(np.asarray(Image.open("g.png")), np.asarray(Image.open("cells/cell-01-01-01.png")))
    for made in ("cells/cell-00-01-00.png", "p-1.png"):
        code, _, err = _run(capsys, "replay", made, "-o", "again.png", "-q", "--model-from-recipe", "--overwrite")
        assert code == 0, (made, err)
        assert np.array_equal(np.asarray(Image.open("again.png")), np.asarray(Image.open(made))), made
    with Image.open("p-1.png") as im:
        assert "Script: X/Y/Z plot" in im.text["parameters"] and "Z Value: CFG scale 6" in im.text["parameters"]


def test_folder_output_numbers_sheets_and_a_prompt_axis_can_stand_for_the_prompt(tiny_sd, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "plot", "--x", 'prompt="a cat, sitting","a dog"', "--model", tiny_sd, *FAST, "-o", "grids/")
    assert code == 0, err
    assert [p.name for p in Path("grids").iterdir()] == ["00000-plot.png"]
    code, _, err = _run(capsys, "plot", "--x", "cfg=1,2", "--model", tiny_sd, *FAST, "-o", "grids/")
    assert code == 2 and err.strip() == 'latentscape plot: error: a plot needs a prompt; pass PROMPT, or put whole prompts on an axis (--x prompt="a cat","a dog").'
