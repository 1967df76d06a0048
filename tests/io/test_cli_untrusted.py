"""Each hostile input of issue 12's bounds/parsing half, through the CLI: exit 2, one sentence, nothing written."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from untrusted_files import animated_gif_bytes, png_claiming_size, png_with_text, safetensors_bytes

from latentscape.interfaces.cli import main


def _setup(tmp_path, tiny_sd):
    (tmp_path / "bomb.png").write_bytes(png_claiming_size(100_000, 100_000))
    png_with_text(tmp_path / "chunkbomb.png", {"latentscape": "a" * (2 << 20)}, compressed=True)
    (tmp_path / "anim.gif").write_bytes(animated_gif_bytes(3))
    Image.new("RGB", (2056, 2048)).save(tmp_path / "huge.png")
    (tmp_path / "cut.safetensors").write_bytes(safetensors_bytes({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\x00" * 8))
    (tmp_path / "listindex").mkdir()
    (tmp_path / "listindex" / "model_index.json").write_text("[]")
    shutil.copytree(tiny_sd, tmp_path / "notes")
    (tmp_path / "notes" / "latentscape.json").write_text("{broken")
    recipe = {"workflow": "generate", "model": "embedded", "family": "sd", "seed": 1,
              "params": {"prompt": "p", "cfg": float("inf")}, "inputs": {}}
    png_with_text(tmp_path / "inf.png", {"latentscape": json.dumps(recipe)})
    float_tiff = np.full((8, 8), 0.5, np.float32)
    Image.fromarray(float_tiff, mode="F").save(tmp_path / "float.tiff")


CASES = [
    (["img2img", "{tmp}/bomb.png", "p", "-o", "{out}/x.png"], "100000x100000 = 10,000 Mpx, above the 67.1 Mpx limit on input images"),
    (["encode", "{tmp}/bomb.png", "-o", "{out}/z.safetensors"], "a decompression bomb"),
    (["replay", "{tmp}/chunkbomb.png", "-o", "{out}/x.png"], "a text-chunk bomb"),
    (["img2img", "{tmp}/anim.gif", "p", "-o", "{out}/x.png"], "is an animated GIF with 3 frames"),
    (["img2img", "{tmp}/huge.png", "p", "-o", "{out}/x.png"], "2056x2048 is 4.21 Mpx, above the 4.19 Mpx limit"),
    (["generate", "p", "--size", "0x0", "-o", "{out}/x.png"], "--size got '0x0'; width and height must be at least 1 pixel"),
    (["generate", "p", "--size", "100000x100000", "-o", "{out}/x.png"], "--size 100000x100000 is 10,000 Mpx"),
    (["generate", "p", "--size", "2056x2048", "-o", "{out}/x.png"], "--size 2056x2048 is 4.21 Mpx, above the 4.19 Mpx limit"),
    (["math", '1e308*"x"', "-o", "{out}/x.png"], "accepted: coefficients from -1000 to 1000"),
    (["generate", "p", "--model", "{tmp}/cut.safetensors", "--config", "{tiny}", "-o", "{out}/x.png"], "outside the file's 8 data bytes"),
    (["generate", "p", "--model", "{tmp}/listindex", "-o", "{out}/x.png"], "holds a JSON list; expected a diffusers pipeline index"),
    (["generate", "p", "--model", "{tmp}/notes", "-o", "{out}/x.png"], "latentscape.json' is not JSON"),
    (["replay", "{tmp}/inf.png", "-o", "{out}/x.png"], "params.cfg is inf; accepted: a finite number"),
]


@pytest.mark.parametrize("argv, message", CASES)
def test_refused_in_one_sentence_and_nothing_written(argv, message, tmp_path, tiny_sd, capsys):
    _setup(tmp_path, tiny_sd)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out"
    args = [a.format(tmp=tmp_path, out=out, tiny=tiny_sd) for a in argv]
    if argv[0] in ("generate", "img2img", "math"):
        args += ["--steps", "1", "-q"]
    if "--model" not in argv:
        args += ["--model", str(tiny_sd)]  # the tiny model loads in a moment; these files fail on their own
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"latentscape {argv[0]}: error: "), err
    assert message in err[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_float_tiff_encodes_to_a_grey_image_not_black(tmp_path, tiny_sd, capsys):
    _setup(tmp_path, tiny_sd)
    assert main(["inspect", str(tmp_path / "float.tiff"), "--model", str(tiny_sd), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["pixel_range"][0] == stats["pixel_range"][1] == pytest.approx(128 / 255 * 2 - 1, abs=1e-6)  # not -1 (black)
