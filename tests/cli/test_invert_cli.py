"""`latentscape invert`: writes an inversion file that `decode` turns back into the image, prints PSNR/SSIM
against the VAE ceiling, and refuses bad input with one sentence, exit 2 and nothing written."""

import json

import numpy as np
import pytest
from PIL import Image
from cli_helpers import run



@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSCAPE_INVERSION_CACHE", str(tmp_path / "cache"))


def picture(path, size=32):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def outputs(folder):
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_invert_then_decode_gives_the_reconstruction(tiny_sd, tmp_path, capsys):
    image = picture(tmp_path / "a.png")
    code, out, _ = run(capsys, "invert", image, "--prompt", "a cat", "--steps", 4, "--model", tiny_sd,
                       "-o", tmp_path / "z.safetensors", "--reconstruction", tmp_path / "r.png", "--json", "-q")
    assert code == 0
    payload = json.loads(out)
    assert payload["method"] == "exact" and payload["sampler"] == "ddim" and payload["cached"] is False
    assert abs(payload["psnr_db"] - payload["ceiling_psnr_db"]) < 0.05
    code, _, _ = run(capsys, "decode", tmp_path / "z.safetensors", "--model", tiny_sd, "-o", tmp_path / "d.png")
    assert code == 0
    decoded = np.asarray(Image.open(tmp_path / "d.png")).astype(int)
    assert np.abs(decoded - np.asarray(Image.open(tmp_path / "r.png")).astype(int)).max() <= 1
    code, out, _ = run(capsys, "invert", image, "--prompt", "a cat", "--steps", 4, "--model", tiny_sd, "-o", tmp_path / "z2.safetensors", "-q")
    assert code == 0 and "from the cache" in out and "VAE round trip" in out


def test_decode_of_an_inversion_with_another_family_is_refused(tiny_sd, tiny_sd3, tmp_path, capsys):
    image = picture(tmp_path / "a.png")
    assert run(capsys, "invert", image, "--steps", 2, "--model", tiny_sd, "-o", tmp_path / "z.safetensors", "-q")[0] == 0
    code, _, err = run(capsys, "decode", tmp_path / "z.safetensors", "--model", tiny_sd3, "-o", tmp_path / "d.png")
    assert code == 2 and "made with a sd model" in err and err.count("\n") == 1
    assert not (tmp_path / "d.png").exists()


@pytest.mark.parametrize("extra, words", [
    (["--steps", "0"], "--steps got 0"),
    (["--method", "flow"], "--method 'flow' inverts flow-matching models"),
    (["--refine", "-2"], "--refine got -2"),
])
def test_bad_input_is_one_sentence_exit_2_nothing_written(tiny_sd, tmp_path, capsys, extra, words):
    image = picture(tmp_path / "a.png")
    code, _, err = run(capsys, "invert", image, "--model", tiny_sd, "-o", tmp_path / "z.safetensors", *extra)
    assert code == 2 and words in err and err.count("\n") == 1
    assert outputs(tmp_path) == ["a.png"] and not (tmp_path / "cache").exists()


def test_ddim_on_a_flow_model_and_an_off_grid_image_are_refused(tiny_sd3, tmp_path, capsys):
    image = picture(tmp_path / "a.png")
    code, _, err = run(capsys, "invert", image, "--model", tiny_sd3, "--method", "ddim", "-o", tmp_path / "z.safetensors")
    assert code == 2 and "--method 'ddim' inverts epsilon/v-prediction models" in err
    odd = picture(tmp_path / "odd.png", size=30)
    code, _, err = run(capsys, "invert", odd, "--model", tiny_sd3, "--steps", 2, "-o", tmp_path / "z.safetensors")
    assert code == 2 and "--resize stretch" in err and "--resize crop" in err
    assert outputs(tmp_path) == ["a.png", "odd.png"]
    code, _, _ = run(capsys, "invert", odd, "--model", tiny_sd3, "--steps", 2, "--resize", "stretch", "-o", tmp_path / "z.safetensors", "-q")
    assert code == 0 and (tmp_path / "z.safetensors").exists()


def test_help_lists_the_verb_without_importing_torch():
    import subprocess
    import sys

    code = "import sys; from latentscape.interfaces.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
