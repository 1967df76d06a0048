"""`latentscape explore IMAGE`: inverted by default (the centre cell is the image's VAE round trip), `--image-mode
noise --strength S` is img2img; the sheet and cells replay; a second run reads the inversion from the cache; bad
input is one sentence, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import pixels, run

FAST = ["--steps", "3", "-q", "--seed", "2"]


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


@pytest.fixture()
def source(tmp_path, monkeypatch):
    """source.png (32x32, pixels no other test inverts) in the working folder; a fresh inversion cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LATENTSCAPE_INVERSION_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(4242)
    arr = (np.array((200, 120, 40)) * 0.7 + rng.random((32, 32, 3)) * 75).clip(0, 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "source.png")
    return tmp_path / "source.png"


def round_trip(model_path, image) -> np.ndarray:
    import latentscape
    from latentscape.io.images import load_image, pil_to_tensor
    from latentscape.workflows.common import decode_images

    model = latentscape.load(str(model_path))
    return np.asarray(decode_images(model, model.encode_images(pil_to_tensor([load_image(image)])))[0], dtype=np.int16)


def test_explore_an_image_inverts_it_replays_and_caches(tiny_sd, source, capsys):
    code, out, err = run(capsys, "explore", source, "--grid", "3x3", "--save-cells", "cells", "--model", tiny_sd, *FAST,
                         "-o", "e.png", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["mode"] == "inverted" and result["inversion"]["cached"] is False
    centre = pixels("cells/cell-004.png")
    assert np.abs(centre - round_trip(tiny_sd, source)).max() <= 1
    assert all(np.abs(pixels(f"cells/cell-{i:03d}.png") - centre).max() > 1 for i in range(9) if i != 4)
    for made in ("e.png", "cells/cell-004.png", "cells/cell-000.png"):
        code, _, err = run(capsys, "replay", made, "-o", "again.png", "-q", "--model-from-recipe", "--overwrite")
        assert code == 0, (made, err)
        assert np.abs(pixels(made) - pixels("again.png")).max() == 0, made
    code, out, err = run(capsys, "explore", f"image:{source}", "--grid", "3x3", "--model", tiny_sd, *FAST, "-o", "e2.png", "--json")
    assert code == 0, err
    assert json.loads(out)["inversion"]["cached"] is True
    assert np.abs(pixels("e2.png") - pixels("e.png")).max() == 0
    code, out, err = run(capsys, "explore", source, "--grid", "1x1", "--model", tiny_sd, "--steps", "3", "--seed", "2", "-o", "e3.png")
    assert code == 0 and "image inverted (from the cache)" in out, (out, err)


def test_noise_mode_is_img2img_at_strength(tiny_sd, source, capsys):
    code, out, err = run(capsys, "explore", source, "--grid", "3x1", "--image-mode", "noise", "--strength", "0.6", "--cfg", "5",
                         "--save-cells", "cells", "--model", tiny_sd, *FAST, "-o", "n.png", "--json")
    assert code == 0, err
    assert json.loads(out)["mode"] == "img2img" and json.loads(out)["inversion"] is None
    code, _, err = run(capsys, "img2img", source, "", "--strength", "0.6", "--cfg", "5", "--model", tiny_sd, *FAST, "-o", "g.png")
    assert code == 0, err
    assert np.abs(pixels("cells/cell-001.png") - pixels("g.png")).max() <= 1  # the centre: img2img of the point's seed
    assert np.abs(pixels("cells/cell-000.png") - pixels("cells/cell-001.png")).max() > 1
    code, _, err = run(capsys, "replay", "cells/cell-002.png", "-o", "again.png", "-q", "--model-from-recipe")
    assert code == 0 and np.abs(pixels("cells/cell-002.png") - pixels("again.png")).max() == 0, err


@pytest.mark.parametrize("argv, fragment", [
    (["--size", "64x32"], "is 32x32 but --size asks for 64x32; accepted: an image of that size, no --size"),
    (["--image-mode", "noise", "--strength", "0"], "--strength got 0.0 with 3 steps; accepted with --image-mode noise"),
    (["--image-mode", "noise", "--strength", "1.5"], "--strength got 1.5"),
])  # fmt: skip
def test_bad_image_input_is_one_sentence_exit_2_nothing_written(tiny_sd, source, capsys, argv, fragment):
    before = files(source.parent)
    code, _, err = run(capsys, "explore", source, *argv, "--model", tiny_sd, *FAST, "--save-cells", "cells", "-o", "x.png")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("latentscape explore: error: ") and fragment in lines[0], err
    assert files(source.parent) == before


def test_unknown_image_mode_is_refused_before_anything_runs(tiny_sd, source, capsys):
    before = files(source.parent)
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "explore", source, "--image-mode", "img2img", "--model", tiny_sd, "-o", "x.png")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and "--image-mode" in err and "invert" in err and "noise" in err
    assert files(source.parent) == before
