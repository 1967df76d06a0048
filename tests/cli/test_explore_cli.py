"""The exploration verbs on the command line: bad input -> one sentence, exit 2, nothing written; good input
-> images, sheets and pages whose recipes `replay` reproduces."""

from __future__ import annotations

import json
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


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


BAD = [
    (["blend", "a", "b", "c", "d", "e", "f"], "got 6 inputs; accepted: 2 to 5"),
    (["blend", "a", "b", "--weights", "1,2,3"], "got 3 weights for 2 inputs"),
    (["blend", "a", "b", "--weights", "0,0"], "do not all equal 0"),
    (["blend", "a", "b", "--weights", "1,x"], "--weights got '1,x'"),
    (["blend", "a", "video:b.mp4"], "unknown kind 'video:'"),
    (["map", "a", "b", "c", "d", "--grid", "0x0"], "--grid got 0x0"),
    (["map", "a", "b", "c"], "got 3 corners"),
    (["map", "a", "b", "c", "latent:x.pt"], "unknown kind 'latent:'"),
    (["map", "a", "b", "c", "d", "--html", "page.txt"], "--html 'page.txt' has an unknown extension"),
    (["explore", "a cat", "--grid", "0x0"], "--grid got 0x0"),
    (["explore", "a cat", "--grid", "4x4"], "odd whole numbers"),
    (["explore", "a cat", "--radius", "3"], "--radius got 3.0"),
    (["explore", "clip:a.mp4"], "unknown kind 'clip:'"),
    (["explore", "a cat", "-o", "sheet.jpg"], "unknown extension '.jpg'"),
    (["vary", "missing.png"], "is not an existing file"),
    (["vary", "a cat@3", "--strength", "medium"], "--strength got 'medium'"),
    (["mix", "a cat", "a dog", "--ratio", "2"], "--ratio got 2"),
    (["mix", "a cat", "image:x.png"], "STYLE got"),
    (["sweep", "a cat", "--cfg", "1,x"], "--cfg got '1,x'"),
    (["sweep", "a cat", "--cfg", "1,-3"], "--cfg got -3"),
    (["sweep", "a cat", "--adherence", "clip"], "needs --clip-model"),
    (["math", '"a cat" +'], "ends where a term was expected"),
    (["math", "king - man"], "is not quoted"),
    (["math", '"a" * "b"'], "cannot be multiplied"),
    (["blend", "a", "b", "--preview", "live.jpg"], "--preview 'live.jpg' has an unknown extension '.jpg'"),
    (["math", "(" * 100 + '"a"' + ")" * 100], "nest more than 64 deep at position 65"),
    (["math", '"a" + ' + "-" * 3000 + '"b"'], "nest more than 64 deep at position 71"),
    (["math", '"a" + seed:' + "9" * 25], "seed 9999999999999999999999999 at position 7 is out of range"),
    (["blend", "a cat@" + "9" * 25, "a dog"], "out of range; expected 0 to 18446744073709551615"),
]


@pytest.mark.parametrize("argv, fragment", BAD, ids=[" ".join(a[:2])[:40] + f"-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_is_one_sentence_exit_2_and_writes_nothing(argv, fragment, tiny_sd, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cells = ["--save-cells", "cells"] if argv[0] in ("explore", "map", "sweep") else []
    code, out, err = _run(capsys, *argv, "--model", tiny_sd, *FAST, *cells)
    assert code == 2
    assert fragment in err, err
    message = err.strip()
    assert message.startswith(f"latentscape {argv[0]}: error: ") and "\n" not in message and "Traceback" not in err
    assert _files(tmp_path) == [], "nothing may be written on bad input"


def _same(a: Path, b: Path) -> int:
    return int(np.abs(np.asarray(Image.open(a)).astype(int) - np.asarray(Image.open(b)).astype(int)).max())


def test_every_verb_writes_outputs_that_replay(tiny_sd, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    m = ["--model", tiny_sd, *FAST]
    assert _run(capsys, "generate", "a red cat", "--seed", "3", "--cfg", "5", *m, "-o", "gen.png")[0] == 0
    runs = {
        "vary": ["vary", "gen.png", "-n", "2", "--strength", "0", "--variation-seed", "7", "-q", "-o", "v.png", "--model-from-recipe"],
        "blend": ["blend", "a red cat@3", "a dog@9", "gen.png", "--weights", "1,1,1", *m, "-o", "b.png"],
        "mix": ["mix", "a red cat@3", "a dog", "--ratio", "0,0.5", "--mode", "schedule", *m, "-o", "mix.png"],
        "explore": ["explore", "a red cat@3", "--grid", "3x3", "--save-cells", "cells", *m, "-o", "e.png"],
        "map": ["map", "a red cat@3", "a dog@9", "seed:5", "gen.png", "--grid", "2x3", *m, "-o", "map.png"],
        "sweep": ["sweep", "a red cat", "--cfg", "1,5", "--seeds", "2", *m, "-o", "sw.png"],
        "math": ["math", '"a red cat" - "cat" + 0.5*seed:3 + 0.5*seed:4', *m, "-o", "math.png"],
    }
    for verb, argv in runs.items():
        code, out, err = _run(capsys, *argv)
        assert code == 0, (verb, err)
    assert _same(Path("v-0.png"), Path("gen.png")) <= 1  # strength 0 is the source
    assert Path("map.html").read_text().count("data:image/png;base64,") == 6
    assert len(list(Path("cells").glob("cell-*.png"))) == 9
    for made in ["v-1.png", "b.png", "mix-1.png", "e.png", "cells/cell-004.png", "map.png", "sw.png", "sw-chart.png", "math.png"]:
        code, _, err = _run(capsys, "replay", made, "-o", "again.png", "-q", "--model-from-recipe", "--overwrite")
        assert code == 0, (made, err)
        assert _same(Path(made), Path("again.png")) == 0, made
    code, out, _ = _run(capsys, "math", '"a red cat"', "--seed", "3", "--cfg", "5", *m, "-o", "m1.png", "--json")
    assert json.loads(out)["expression"] == '"a red cat"' and _same(Path("m1.png"), Path("gen.png")) <= 1


def test_map_of_a_folder_writes_a_scatter_page(tiny_sd, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "set"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (60 * i, 255 - 60 * i, 90)).save(folder / f"{i}.png")
    code, out, err = _run(capsys, "map", "--images", "set", "--model", tiny_sd, "-q", "-o", "pca.png", "--html", "pca.html")
    assert code == 0, err
    text = Path("pca.html").read_text()
    assert text.count("data:image/png;base64,") == 4 and "PC1" in text
    assert _run(capsys, "map", "a", "b", "c", "d", "--images", "set", "--model", tiny_sd)[0] == 2


def test_preview_is_written_by_the_creative_verbs(tiny_sd, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "blend", "a red cat@3", "a dog@9", "--model", tiny_sd, *FAST, "--preview", "live.png", "-o", "b.png")
    assert code == 0, err
    with Image.open("live.png") as live:  # the live x0 preview of the last step, at the image's size
        assert live.size == (32, 32)
        assert np.asarray(live).std() > 0


def test_off_grid_images_are_an_error_unless_resize_says_how(tiny_sd, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (36, 36), (200, 40, 40)).save("odd.png")
    code, _, err = _run(capsys, "blend", "odd.png", "a dog@9", "--model", tiny_sd, "--steps", "2", "-q", "-o", "b.png")
    assert code == 2 and "36x36" in err and "nearest valid size is 40x40" in err and "--resize" in err
    assert _files(tmp_path) == [tmp_path / "odd.png"]
    code, _, err = _run(capsys, "blend", "odd.png", "a dog@9", "--model", tiny_sd, "--steps", "2", "-q", "-o", "b.png", "--resize", "stretch")
    assert code == 0, err
    with Image.open("b.png") as made:
        assert made.size == (40, 40)
