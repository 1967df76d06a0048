"""`latentscape morph` and `replay` of a morph: outputs, JSON, keyframe files and every bad-input path
(one sentence, exit code 2, nothing written)."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import pytest
from PIL import Image
from cli_helpers import run



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


def test_pinned_keyframe_file_with_schedules_derives_frames_and_replays(tiny_sd, tmp_path, capsys):
    kf = tmp_path / "pins.json"
    kf.write_text(json.dumps({"keyframes": {"0": "a red cat@1", "2": "a dog in the snow@2", "5": {"prompt": "a house", "seed": 3}},
                              "schedules": {"guidance_rescale": "0:(0), 5:(0.5)"}}))
    out = tmp_path / "pins.gif"
    code, stdout, err = run(capsys, "morph", "--keyframes", kf, "--cfg-schedule", "0:(3), 2:(8), 5:(5)", "--model", tiny_sd,
                            "--steps", 2, "--pacing", "perceptual", "-o", out, "--json")
    assert code == 0, err
    payload = json.loads(stdout)
    assert payload["frames"] == 6 and payload["keyframe_frames"] == [0, 2, 5]  # frames from the last pin
    manifest = json.loads((tmp_path / "pins.gif.manifest.json").read_text())
    params = manifest["recipe"]["params"]
    assert params["schedules"] == {"cfg": "0:(3), 2:(8), 5:(5)", "guidance_rescale": "0:(0), 5:(0.5)"} and params["frames"] == 6
    values = manifest["schedule"]["frames"]
    assert [values[i]["cfg"] for i in (0, 2, 5)] == [3, 8, 5] and [values[i]["frame"] for i in (0, 2, 5)] == [0, 2, 5]
    for v in values:  # perceptual pacing moves in-between frames: each takes the schedule at its place on the path
        f = v["frame"]
        assert v["cfg"] == pytest.approx(3 + 2.5 * f if f <= 2 else 8 - (f - 2)) and v["guidance_rescale"] == pytest.approx(0.1 * f)
    code, _, err = run(capsys, "replay", tmp_path / "pins.gif.manifest.json", "-o", tmp_path / "again.gif", "--quiet", "--model", tiny_sd)
    assert code == 0, err
    assert (tmp_path / "again.gif").read_bytes() == out.read_bytes()


@pytest.mark.parametrize("document, argv, needle", [
    ({"0": "a", "30": "b"}, ["--frames", "24"], "keyframe 2 is pinned to frame 30, beyond the last frame 23"),
    ({"0": "a", "12": "b"}, ["--frames", "24"], "frames must be 13"),
    ('{"0": "a", "12": "b", "12": "c"}', [], 'gives the key "12" twice'),
    ({"0": "a", "12": "b", "6": "c"}, [], "lists frame 6 after frame 12"),
    ([{"prompt": "a", "frame": 0}, {"prompt": "b", "frame": 7.5}], [], "has frame 7.5"),
    (["a", "b"], ["--frames", "8", "--cfg-schedule", "0:(7), 9:(3)"], "schedules.cfg has a point at frame 9, beyond the last frame 7"),
    (["a", "b"], ["--cfg-schedule", "0:7 24:9"], "separate FRAME:(VALUE) points with commas"),
    (["a", "b"], ["--guidance-rescale-schedule", "0:(inf)"], "expected a finite number"),
    (["a", "b"], ["--cfg-schedule", "0:(7*t)"], "math expressions"),
    ({"keyframes": ["a", "b"], "schedules": {"cfg": "0:(7)"}}, ["--cfg-schedule", "0:(5)"], "both schedule cfg"),
    (["a", "b"], ["--seed-behavior", "schedule"], "needs seed_behavior schedule"),
])  # fmt: skip
def test_bad_pins_and_schedules_exit_2_with_one_sentence_and_write_nothing(tiny_sd, tmp_path, capsys, document, argv, needle):
    kf = tmp_path / "k.json"
    kf.write_text(document if isinstance(document, str) else json.dumps(document))
    code, _, err = run(capsys, "morph", "--keyframes", kf, *argv, "--model", tiny_sd, "--steps", 1, "-o", tmp_path / "x.gif")
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert files(tmp_path) == ["k.json"]
