"""`--image-mode invert|noise` on the verbs that take images: the default inverts (a morph's first and last
frames are the images' VAE round trips), `noise` is img2img, bad input is one sentence, exit 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cli_helpers import pixels, run


def files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


@pytest.fixture()
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, colour in enumerate(((220, 60, 40), (40, 80, 210))):
        arr = (np.array(colour) * 0.7 + rng.random((32, 32, 3)) * 70).clip(0, 255).astype(np.uint8)
        paths.append(tmp_path / f"in{i}.png")
        Image.fromarray(arr).save(paths[-1])
    return paths


def test_morph_between_two_images_lands_on_their_round_trips(tiny_sd, tmp_path, capsys, images, monkeypatch):
    import latentscape
    from latentscape.workflows.common import decode_images
    from latentscape.io.images import load_image, pil_to_tensor

    monkeypatch.setenv("LATENTSCAPE_INVERSION_CACHE", str(tmp_path / "cache"))
    frames = tmp_path / "frames"
    code, out, err = run(capsys, "morph", *images, "--frames", 3, "--steps", 3, "--model", tiny_sd, "-o", tmp_path / "m.gif",
                         "--save-frames", frames, "--json", "--seed", 1)
    assert code == 0, err
    model = latentscape.load(str(tiny_sd))
    for frame, path in ((0, images[0]), (2, images[1])):
        trip = np.asarray(decode_images(model, model.encode_images(pil_to_tensor([load_image(path)])))[0], dtype=np.int16)
        assert np.abs(pixels(frames / f"frame_{frame:05d}.png") - trip).max() <= 1
    manifest = json.loads((tmp_path / "m.gif.manifest.json").read_text())
    assert manifest["recipe"]["params"]["image_mode"] == "invert"
    code, _, err = run(capsys, "morph", *images, "--frames", 3, "--steps", 3, "--model", tiny_sd, "-o", tmp_path / "n.gif",
                       "--save-frames", tmp_path / "nframes", "--image-mode", "noise", "--seed", 1)
    assert code == 0, err
    assert np.abs(pixels(tmp_path / "nframes" / "frame_00000.png") - pixels(frames / "frame_00000.png")).max() > 1


@pytest.mark.parametrize("verb, args", [
    ("morph", ["-o", "x.gif"]), ("blend", []), ("map", ["a cat", "a dog"]), ("math", None), ("vary", None),
])  # fmt: skip
def test_unknown_image_mode_is_one_sentence_exit_2_nothing_written(tiny_sd, tmp_path, capsys, monkeypatch, images, verb, args):
    monkeypatch.chdir(tmp_path)
    before = files(tmp_path)
    if verb == "math":
        argv = [f"image:{images[0]}"]
    elif verb == "vary":
        argv = [images[0]]
    else:
        argv = [*images, *args]
    with pytest.raises(SystemExit) as exit_:  # argparse refuses the choice: usage, then one error line
        run(capsys, verb, *argv, "--image-mode", "img2img", "--model", tiny_sd)
    code, err = exit_.value.code, capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "--image-mode" in err and "invert" in err and "noise" in err and "Traceback" not in err
    assert files(tmp_path) == before


@pytest.mark.parametrize("verb", ["morph", "blend"])
def test_images_of_another_size_say_what_resize_does(tiny_sd, tmp_path, capsys, monkeypatch, images, verb):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (48, 32)).save(tmp_path / "wide.png")
    before = files(tmp_path)
    extra = ["-o", "x.gif"] if verb == "morph" else []
    code, _, err = run(capsys, verb, images[0], tmp_path / "wide.png", *extra, "--model", tiny_sd, "--steps", 2)
    if verb == "morph":
        assert code == 2 and "--resize stretch" in err and len(err.strip().splitlines()) == 1
    else:  # blend, map and math stretch every input to the job's size (the first image's)
        assert code == 0, err
    assert files(tmp_path) == before or verb == "blend"


def test_steps_below_one_is_one_sentence(tiny_sd, tmp_path, capsys, monkeypatch, images):
    monkeypatch.chdir(tmp_path)
    before = files(tmp_path)
    code, _, err = run(capsys, "morph", *images, "-o", "x.gif", "--steps", 0, "--model", tiny_sd)
    assert code == 2 and "steps" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert files(tmp_path) == before
