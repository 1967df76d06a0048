"""The CLI verbs of the foundation: outputs, --json, replay, and every bad-input path (message, exit
code 2, nothing written)."""

import json

import numpy as np
import pytest
from PIL import Image

from latentscape.interfaces.cli import main
from cli_helpers import run


def files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_generate_json_batch_and_replay_bit_exact(tiny_sd, tmp_path, capsys):
    code, out, _ = run(capsys, "generate", "a cat", "--model", tiny_sd, "--seed", 7, "--batch", 2, "--steps", 2, "-o", tmp_path / "cat.png", "--json")
    assert code == 0
    payload = json.loads(out)
    assert [o["seed"] for o in payload["outputs"]] == [7, 8]
    assert files(tmp_path) == ["cat-0.png", "cat-1.png"]
    code, _, _ = run(capsys, "replay", tmp_path / "cat-1.png", "-o", tmp_path / "again.png", "--quiet", "--model-from-recipe")
    assert code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), np.asarray(Image.open(tmp_path / "cat-1.png")))
    with Image.open(tmp_path / "cat-1.png") as im:
        assert "Seed: 8" in im.text["parameters"]


def test_live_preview_is_written(tiny_sd, tmp_path, capsys):
    code, _, _ = run(capsys, "generate", "p", "--model", tiny_sd, "--steps", 2, "--preview", tmp_path / "live.png", "-o", tmp_path / "o.png", "-q")
    assert code == 0
    with Image.open(tmp_path / "live.png") as im:
        assert im.size == (32, 32)


def test_default_output_folder_numbers_files(tiny_sd, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert run(capsys, "generate", "x", "--model", tiny_sd, "--seed", 3, "--steps", 1, "-q")[0] == 0
    assert files(tmp_path / "outputs") == ["00000-3.png", "00001-3.png"]


def test_img2img_encode_decode_inspect(tiny_sd, tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src)
    assert run(capsys, "img2img", src, "a cat", "--model", tiny_sd, "--strength", 0.5, "--steps", 4, "--seed", 1, "-o", tmp_path / "i2i.png", "-q")[0] == 0
    assert run(capsys, "replay", tmp_path / "i2i.png", "-o", tmp_path / "i2i_again.png", "-q", "--model-from-recipe")[0] == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "i2i.png")), np.asarray(Image.open(tmp_path / "i2i_again.png")))
    assert run(capsys, "encode", src, "--model", tiny_sd, "-o", tmp_path / "z.safetensors")[0] == 0
    assert run(capsys, "decode", tmp_path / "z.safetensors", "--model", tiny_sd, "-o", tmp_path / "dec.png")[0] == 0
    assert Image.open(tmp_path / "dec.png").size == (32, 32)
    code, out, _ = run(capsys, "inspect", src, "--model", tiny_sd, "-o", tmp_path / "preview.png", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["compression_ratio"] == 48.0 and (tmp_path / "preview.png").is_file()
    code, out, _ = run(capsys, "inspect", src, "--model", tiny_sd)
    assert "compression 48.0x fewer values" in out and "channel" in out


def test_replay_refuses_a_changed_input(tiny_sd, tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(src)
    assert run(capsys, "img2img", src, "p", "--model", tiny_sd, "--steps", 2, "-o", tmp_path / "o.png", "-q")[0] == 0
    Image.new("RGB", (32, 32), (10, 200, 10)).save(src)
    code, _, err = run(capsys, "replay", tmp_path / "o.png", "-o", tmp_path / "r.png", "--model", tiny_sd)
    assert code == 2 and "has changed since the output was made" in err
    assert not (tmp_path / "r.png").exists()


def test_models_lists_families(capsys, tiny_sd):
    code, out, _ = run(capsys, "models", "--json", "--scan", tiny_sd.parent)
    data = json.loads(out)
    assert code == 0 and [f["family"] for f in data["families"]] == ["sd", "sdxl", "sd3", "flux"]
    assert any(m["path"] == str(tiny_sd) for m in data["installed"])
    flux = data["families"][3]
    assert flux["size_multiple"] == 16 and "flow_euler" in flux["samplers"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "p", "--size", "33x32"], "size 33x32 is not a multiple of 8"),
        (["generate", "p", "--size", "big"], "--size got 'big'"),
        (["generate", "p", "--steps", "0"], "--steps got 0"),
        (["generate", "p", "--sampler", "flow_euler"], "--sampler got 'flow_euler'"),
        (["generate", "p", "-o", "{tmp}/out.jpg"], "unknown extension '.jpg'"),
        (["generate", "p", "--model", "{tmp}/nowhere"], "is not 'embedded', an existing diffusers folder"),
        (["img2img", "{tmp}/missing.png", "p"], "does not exist"),
        (["img2img", "{tmp}/notes.png", "p"], "is not an image that can be read"),
        (["img2img", "{tmp}/odd.png", "p"], "nearest valid size is 32x32"),
        (["img2img", "{tmp}/ok.png", "p", "--strength", "1.5"], "--strength got 1.5"),
        (["encode", "{tmp}/ok.png", "-o", "{tmp}/z.npy"], "unknown extension '.npy'"),
        (["decode", "{tmp}/notes.png", "-o", "{tmp}/d.png"], "not a readable .safetensors"),
        (["replay", "{tmp}/ok.png", "-o", "{tmp}/r.png"], "holds no latentscape recipe"),
        (["inspect", "{tmp}/notes.png"], "is not an image that can be read"),
    ],
)
def test_bad_input_one_sentence_exit_2_nothing_written(tiny_sd, tmp_path, capsys, argv, message):
    Image.new("RGB", (32, 32)).save(tmp_path / "ok.png")
    Image.new("RGB", (30, 33)).save(tmp_path / "odd.png")
    (tmp_path / "notes.png").write_text("not an image")
    before = files(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--model" not in argv and argv[0] != "replay":
        argv += ["--model", str(tiny_sd)]
    if "-o" not in argv and argv[0] in ("generate", "img2img"):
        argv += ["-o", str(tmp_path / "out.png")]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and err.count("\n") == 1  # one line
    assert files(tmp_path) == before  # nothing written, no temp files


def test_unknown_verb_and_missing_argument_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["paint"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["generate"])
    assert e.value.code == 2
