"""`latentscape generate --from FILE`: invert -> generate --from gives decode's image, replay re-makes it and
refuses a changed file; what the file cannot do, and damaged files, are one sentence with exit 2 and nothing written."""

import numpy as np
import pytest
from PIL import Image

from tests.cli.cli_helpers import pixels, run


@pytest.fixture(scope="module")
def files(tiny_sd, tmp_path_factory):
    """An exact inversion (4 steps, caption 'a cat') and a plain latent file of one 32x32 picture, by the CLI."""
    from latentscape.interfaces.cli import main

    folder = tmp_path_factory.mktemp("from")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "a.png")
    assert main(["invert", str(folder / "a.png"), "--prompt", "a cat", "--steps", "4", "--no-cache", "-q",
                 "--model", str(tiny_sd), "-o", str(folder / "inv.safetensors")]) == 0
    assert main(["encode", str(folder / "a.png"), "--model", str(tiny_sd), "-o", str(folder / "z.safetensors")]) == 0
    assert main(["decode", str(folder / "inv.safetensors"), "--model", str(tiny_sd), "-o", str(folder / "decoded.png")]) == 0
    return folder


def test_generate_from_an_inversion_is_decode_and_replays(capsys, files, tiny_sd, tmp_path):
    model = ["--model", str(tiny_sd), "-q"]
    code, out, err = run(capsys, "generate", "--from", files / "inv.safetensors", *model, "-o", tmp_path / "back.png")
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "back.png"), pixels(files / "decoded.png"))
    text = Image.open(tmp_path / "back.png").text["parameters"]
    assert text.startswith("a cat\n") and "Steps: 4, Sampler: DDIM" in text and "Start latents: exact inversion" in text
    code, _, err = run(capsys, "generate", "a dog", "--from", files / "inv.safetensors", *model, "-o", tmp_path / "dog.png")
    assert code == 0, err
    assert np.abs(pixels(tmp_path / "dog.png") - pixels(tmp_path / "back.png")).mean() > 0.5  # an edit of the image
    code, _, err = run(capsys, "replay", tmp_path / "dog.png", *model, "-o", tmp_path / "again.png")
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "again.png"), pixels(tmp_path / "dog.png"))


def test_generate_from_a_latent_file_is_img2img(capsys, files, tiny_sd, tmp_path):
    model = ["--model", str(tiny_sd), "-q", "--steps", "4", "--seed", "3"]
    code, _, err = run(capsys, "generate", "a cat", "--from", files / "z.safetensors", "--strength", "0.5", *model, "-o", tmp_path / "z.png")
    assert code == 0, err
    code, _, err = run(capsys, "img2img", files / "a.png", "a cat", "--strength", "0.5", *model, "-o", tmp_path / "i.png")
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "z.png"), pixels(tmp_path / "i.png"))


def test_replay_refuses_a_changed_inversion(capsys, files, tiny_sd, tmp_path):
    import shutil

    inv = tmp_path / "inv.safetensors"
    shutil.copy(files / "inv.safetensors", inv)
    assert run(capsys, "generate", "--from", inv, "--model", tiny_sd, "-q", "-o", tmp_path / "b.png")[0] == 0
    data = bytearray(inv.read_bytes())
    data[-1] ^= 1
    inv.write_bytes(bytes(data))
    code, _, err = run(capsys, "replay", tmp_path / "b.png", "--model", tiny_sd, "-q", "-o", tmp_path / "never.png")
    assert code == 2 and "has changed since the output was made" in err and "--inputs" in err
    assert not (tmp_path / "never.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--from", "inv.safetensors", "--steps", "8"], "error: --steps got 8, but "),
    (["--from", "inv.safetensors", "--sampler", "euler"], "pass --sampler ddim (or leave it out)"),
    (["--from", "inv.safetensors", "--seed", "5"], "error: --seed got 5, which plays no part"),
    (["--from", "inv.safetensors", "--strength", "0.5"], "error: --strength applies to latent files from `encode`"),
    (["--from", "inv.safetensors", "--size", "64x64"], "differs from the 32x32 of the file"),
    (["--from", "z.safetensors"], "needs a PROMPT: a latent file from `encode` holds no caption"),
    (["--from", "z.safetensors", "p", "--strength", "2"], "error: --strength got 2.0"),
    (["--from", "missing.safetensors"], "error: --from 'missing.safetensors' does not exist"),
    (["--from", "a.png"], "is not a valid .safetensors file"),
])
def test_bad_input_is_one_sentence_and_writes_nothing(capsys, files, tiny_sd, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(files)
    out = tmp_path / "never.png"
    code, stdout, err = run(capsys, "generate", *argv, "--model", tiny_sd, "-q", "-o", out)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_a_prompt_or_a_file_is_required(capsys):
    from latentscape.interfaces.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["generate", "-q"])
    assert exit_.value.code == 2 and "required: prompt (or --from FILE" in capsys.readouterr().err


def test_a_file_of_another_family_is_refused(capsys, files, tiny_sd3, tmp_path):
    code, _, err = run(capsys, "generate", "--from", files / "inv.safetensors", "--sampler", "flow_euler", "--model", tiny_sd3,
                       "-q", "-o", tmp_path / "never.png")
    assert code == 2 and "holds an inversion of a sd model" in err and "use --model " in err
    assert not (tmp_path / "never.png").exists()
