"""Data loss and argument validation on the CLI: no silent overwrite, never an input as the output, folders
as -o, unwritable places and full disks found before any work, SIGTERM like Ctrl-C, stale temp files of
the same output cleaned, every bad value refused before the model loads, path-like keyframes."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from PIL import Image
from cli_helpers import run


FAST = ["--steps", "1", "-q"]


def one_sentence(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err and ": error: " in err


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if anything loads a model."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("latentscape.models.load.load", refuse)


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (200, 40, 10)).save(path)
    return path


@pytest.mark.parametrize("argv, needle", [
    (["generate", "p", "--cfg", "inf"], "--cfg got inf; expected a finite number"),
    (["generate", "p", "--cfg", "nan"], "--cfg got nan; expected a finite number"),
    (["generate", "p", "--steps", "0"], "--steps got 0; expected a whole number from 1 to 1000"),
    (["generate", "p", "--seed", "-5"], "--seed got -5; expected a whole number from 0"),
    (["generate", "p", "--guidance-rescale", "inf"], "--guidance-rescale got inf"),
    (["generate", "p", "--guidance-rescale", "2"], "--guidance-rescale got 2.0; expected a number from 0 to 1"),
    (["generate", "p", "--batch", "0"], "--batch got 0"),
    (["img2img", "{src}", "p", "--strength", "1.5"], "--strength got 1.5; expected a number from 0"),
    (["img2img", "{src}", "p", "--strength", "nan"], "--strength got nan"),
    (["morph", "a", "b", "-o", "{tmp}/m.gif", "--cfg", "inf"], "--cfg got inf"),
    (["morph", "a", "b", "-o", "{tmp}/m.gif", "--steps", "0"], "--steps got 0"),
    (["blend", "a", "b", "--strength", "inf"], "--strength got inf"),
    (["mix", "a", "b", "--ratio", "0,nan"], "--ratio got nan"),
    (["explore", "a@1", "--radius", "inf"], "--radius got inf"),
    (["vary", "a cat@3", "--cfg=-inf"], "--cfg got -inf"),
    (["morph", "missing.png", "a cat", "-o", "{tmp}/m.gif"], "keyframe 'missing.png' looks like an image path but does not exist"),
    (["morph", "{tmp}/shots/cat", "a cat", "-o", "{tmp}/m.gif"], "looks like an image path but does not exist"),
    (["blend", "{tmp}/shots/", "a cat"], "looks like an image path but is a folder"),
])
def test_bad_values_are_refused_before_the_model_loads(no_model, tmp_path, src, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shots").mkdir()
    argv = [a.format(tmp=tmp_path, src=src) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and one_sentence(err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "shots"]


def test_a_prompt_with_a_slash_is_still_a_prompt_and_prompt_colon_forces_one():
    from latentscape.workflows.keyframes import parse_keyframe

    assert parse_keyframe("AC/DC logo").prompt == "AC/DC logo"
    assert parse_keyframe("AC/DC").prompt == "AC/DC"  # no folder AC here
    assert parse_keyframe("prompt:cat.png").prompt == "cat.png"


def test_an_existing_output_is_kept_unless_overwrite(tiny_sd, tmp_path, capsys):
    out = tmp_path / "o.png"
    out.write_bytes(b"my precious file")
    code, _, err = run(capsys, "generate", "p", "--model", tiny_sd, *FAST, "-o", out)
    assert code == 2 and f"-o '{out}' already exists; pass --overwrite to replace it" in err and one_sentence(err)
    assert out.read_bytes() == b"my precious file"
    assert run(capsys, "generate", "p", "--model", tiny_sd, *FAST, "-o", out, "--overwrite")[0] == 0
    assert Image.open(out).size == (32, 32)
    # a batch checks every name before writing any
    (tmp_path / "b-1.png").write_bytes(b"mine")
    code, _, err = run(capsys, "generate", "p", "--model", tiny_sd, *FAST, "--batch", 2, "-o", tmp_path / "b.png")
    assert code == 2 and "b-1.png' already exists" in err and not (tmp_path / "b-0.png").exists()
    # the other writing verbs refuse too
    for argv in (["blend", "a@1", "b@2", "-o", out], ["morph", "a", "b", "--frames", 2, "-o", out.with_suffix(".gif")],
                 ["replay", out, "-o", out.with_name("o2.png")], ["encode", out, "-o", out.with_suffix(".safetensors")]):
        target = argv[-1]
        open(target, "ab").close()
        before = open(target, "rb").read()
        code, _, err = run(capsys, *argv, "--model", tiny_sd)
        assert code == 2 and "already exists" in err, (argv, err)
        assert open(target, "rb").read() == before


def test_the_output_is_never_an_input(tiny_sd, src, tmp_path, capsys):
    for output in (src, tmp_path / "." / "in.png"):
        code, _, err = run(capsys, "img2img", src, "p", "--model", tiny_sd, *FAST, "-o", output, "--overwrite")
        assert code == 2 and "is the input" in err and one_sentence(err)
    os.link(src, tmp_path / "hard.png")
    os.symlink(src, tmp_path / "soft.png")
    for output in (tmp_path / "hard.png", tmp_path / "soft.png"):
        code, _, err = run(capsys, "img2img", src, "p", "--model", tiny_sd, *FAST, "-o", output, "--overwrite")
        assert code == 2 and "is the input" in err
    code, _, err = run(capsys, "blend", src, "a@1", "--model", tiny_sd, *FAST, "-o", tmp_path / "hard.png", "--overwrite")
    assert code == 2 and "is the input" in err
    assert Image.open(src).getpixel((0, 0)) == (200, 40, 10)


def test_a_folder_as_output_gets_numbered_names(tiny_sd, tmp_path, capsys):
    folder = tmp_path / "outs"
    folder.mkdir()
    (folder / "00004-1.png").write_bytes(b"earlier")
    assert run(capsys, "generate", "p", "--model", tiny_sd, *FAST, "--seed", 7, "--batch", 2, "-o", folder)[0] == 0
    assert sorted(p.name for p in folder.iterdir()) == ["00004-1.png", "00005-7.png", "00006-8.png"]
    assert run(capsys, "blend", "a@1", "b@2", "--model", tiny_sd, *FAST, "-o", f"{tmp_path / 'new'}/")[0] == 0
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["00000-1.png"]


def test_unwritable_places_and_a_full_disk_are_found_before_the_model_loads(no_model, tmp_path, capsys, monkeypatch):
    (tmp_path / "file.txt").write_text("x")
    code, _, err = run(capsys, "generate", "p", "-o", tmp_path / "file.txt" / "sub" / "o.png")
    assert code == 2 and "'file.txt' is a file, so the folder" in err.replace(str(tmp_path) + "/", "") and one_sentence(err)
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    code, _, err = run(capsys, "morph", "a", "b", "--frames", 48, "-o", tmp_path / "m.mp4")
    assert code == 2 and "MB free but this job needs about" in err and one_sentence(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_save_frames_never_replaces_another_renders_frames(no_model, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_00000.png").write_bytes(b"from another render")
    code, _, err = run(capsys, "morph", "a", "b", "--frames", 3, "--save-frames", frames, "-o", tmp_path / "m.gif")
    assert code == 2 and "already holds frames (frame_00000.png, ...); pass --overwrite" in err
    assert (frames / "frame_00000.png").read_bytes() == b"from another render"


def test_sigterm_during_the_encode_is_handled_like_ctrl_c(tiny_sd, tmp_path, capsys, monkeypatch):
    import latentscape.io.video as video

    real = video._write_gif

    def killed(frames, tmp, **kwargs):
        real(frames, tmp, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-encode, before the rename

    monkeypatch.setattr(video, "_write_gif", killed)
    out = tmp_path / "m.gif"
    code, _, err = run(capsys, "morph", "a", "b", "--frames", 3, "--model", tiny_sd, *FAST, "-o", out)
    assert code == 143 and "latentscape morph: terminated; finished frames are kept" in err
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
    assert signal.getsignal(signal.SIGTERM) is not None  # the CLI put the previous handler back
    monkeypatch.setattr(video, "_write_gif", real)
    code, _, err = run(capsys, "morph", "a", "b", "--frames", 3, "--model", tiny_sd, *FAST, "-o", out, "--resume")
    assert code == 0, err


def test_stale_partials_of_the_same_output_only_are_removed(tiny_sd, tmp_path, capsys):
    stale = tmp_path / ".o.0123abcd.partial.png"
    others = [tmp_path / ".other.0123abcd.partial.png", tmp_path / ".o.notahex!.partial.png", tmp_path / "o.png.bak",
              tmp_path / ".o.0123abcd.partial.gif"]
    for p in [stale, *others]:
        p.write_bytes(b"x")
    assert run(capsys, "generate", "p", "--model", tiny_sd, *FAST, "-o", tmp_path / "o.png")[0] == 0
    assert not stale.exists() and all(p.read_bytes() == b"x" for p in others)


def test_strength_zero_keeps_the_image(tiny_sd, src, tmp_path, capsys):
    assert run(capsys, "img2img", src, "p", "--model", tiny_sd, "--strength", 0, *FAST, "-o", tmp_path / "k.png")[0] == 0
    assert run(capsys, "encode", src, "--model", tiny_sd, "-o", tmp_path / "z.safetensors")[0] == 0
    assert run(capsys, "decode", tmp_path / "z.safetensors", "--model", tiny_sd, "-o", tmp_path / "rt.png")[0] == 0
    kept, round_trip = (np.asarray(Image.open(tmp_path / n).convert("RGB"), dtype=np.int16) for n in ("k.png", "rt.png"))
    assert np.abs(kept - round_trip).max() <= 1
    other = tmp_path / "other.png"
    Image.new("RGB", (32, 32), (10, 40, 200)).save(other)
    code, _, err = run(capsys, "morph", src, other, "--strength", 0, "--frames", 3, "--model", tiny_sd, *FAST,
                       "--save-frames", tmp_path / "f", "-o", tmp_path / "m.gif")
    assert code == 0, err
    first = np.asarray(Image.open(tmp_path / "f" / "frame_00000.png").convert("RGB"), dtype=np.int16)
    assert np.abs(first - round_trip).max() <= 1
