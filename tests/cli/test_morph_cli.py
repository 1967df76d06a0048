"""`latentscape morph` and `replay` of a morph: outputs, JSON, keyframe files and every bad-input path
(one sentence, exit code 2, nothing written)."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import pytest
from PIL import Image

from latentscape.interfaces.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_morph_mp4_with_frames_json_and_replay(tiny_sd, tmp_path, capsys):
    out = tmp_path / "m.mp4"
    code, stdout, _ = run(capsys, "morph", "a red cat", "a dog in the snow", "seed:4", "--model", tiny_sd, "--frames", 5,
                          "--steps", 2, "--seed", 3, "--batch-size", 3, "--save-frames", tmp_path / "frames", "-o", out, "--json")
    assert code == 0
    payload = json.loads(stdout)
    assert payload["seed"] == 3 and payload["frames"] == 5 and payload["keyframe_frames"] == [0, 2, 4]
    assert set(payload["smoothness"]["after"]) == {"max", "mean", "total", "max_over_mean"}
    assert files(tmp_path) == ["frames/frame_00000.png", "frames/frame_00001.png", "frames/frame_00002.png",
                               "frames/frame_00003.png", "frames/frame_00004.png", "m.mp4", "m.mp4.manifest.json"]
    reader = imageio.get_reader(out, format="ffmpeg")
    meta = reader.get_meta_data()
    assert meta["codec"] == "h264" and tuple(meta["size"]) == (32, 32)
    assert sum(1 for _ in reader) == 5
    reader.close()

    code, _, _ = run(capsys, "replay", tmp_path / "m.mp4.manifest.json", "-o", tmp_path / "again.mp4", "--quiet", "--model", tiny_sd)
    assert code == 0
    assert (tmp_path / "again.mp4").read_bytes() == out.read_bytes()


def test_keyframe_file_perceptual_pacing_and_the_printed_smoothness(tiny_sd, tmp_path, capsys):
    kf = tmp_path / "path.json"
    kf.write_text(json.dumps({"keyframes": [{"prompt": "a red cat", "seed": 1}, "a dog in the snow@1", {"seed": 9, "cfg": 4}]}))
    code, stdout, err = run(capsys, "morph", "--keyframes", kf, "--model", tiny_sd, "--frames", 6, "--steps", 2,
                            "--pacing", "perceptual", "--loop", "--pingpong", "-o", tmp_path / "p.webp")
    assert code == 0, err
    assert "before (uniform): max" in stdout and "after:" in stdout and "path length" in stdout
    with Image.open(tmp_path / "p.webp") as im:
        assert im.n_frames >= 2
    manifest = json.loads((tmp_path / "p.webp.manifest.json").read_text())
    assert manifest["recipe"]["params"]["closed"] is True and len(manifest["stages"]["final"]["positions"]) == 6


@pytest.mark.parametrize("argv, needle", [
    (["a cat", "-o", "x.gif"], "at least 2 keyframes"),
    (["a cat", "a dog", "--frames", "1", "-o", "x.gif"], "--frames got 1"),
    (["a cat", "a dog", "-o", "x.avi"], "unknown extension '.avi'"),
    (["a cat", "image:missing.png", "-o", "x.gif"], "does not exist"),
    (["a cat", "a dog", "-o", "x.gif", "--contact-sheet", "s.jpg"], "--contact-sheet"),
    (["a cat", "a dog", "-o", "x.gif", "--resume"], "manifest"),
    (["a cat@" + "9" * 25, "a dog", "-o", "x.gif"], "out of range; expected 0 to 18446744073709551615, or -1 for random"),
    (["a cat", "seed:18446744073709551616", "-o", "x.gif"], "out of range"),
    (["a cat", "seed:-2", "-o", "x.gif"], "seed -2 is out of range"),
])  # fmt: skip
def test_bad_input_one_sentence_exit_2_nothing_written(tiny_sd, tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "morph", *argv, "--model", tiny_sd, "--steps", 1)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert files(tmp_path) == []


def test_unreadable_and_mismatched_image_keyframes(tiny_sd, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    Image.new("RGB", (48, 32)).save(tmp_path / "b.png")
    before = files(tmp_path)
    code, _, err = run(capsys, "morph", f"image:{broken}", "a cat", "--model", tiny_sd, "-o", tmp_path / "x.gif")
    assert code == 2 and "not an image" in err
    code, _, err = run(capsys, "morph", tmp_path / "a.png", tmp_path / "b.png", "--model", tiny_sd, "-o", tmp_path / "x.gif")
    assert code == 2 and "48x32" in err and "32x32" in err and "--resize" in err
    assert files(tmp_path) == before
