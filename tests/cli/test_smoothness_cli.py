"""`latentscape smoothness PATH`: a GIF and a folder scored by both distances, --json, and bad input."""

import json
from contextlib import nullcontext

import numpy as np
import pytest
from PIL import Image

from latentscape.io.video import write_video
from cli_helpers import run


def _disc_frames(xs):
    yy, xx = np.mgrid[:64, :64]
    frames = []
    for x in xs:
        a = np.full((64, 64, 3), 255, np.uint8)
        a[(yy - 32) ** 2 + (xx - x) ** 2 < 100] = (200, 30, 30)
        frames.append(a)
    return frames


def test_gif_with_a_jump_and_a_smooth_folder(tmp_path, capsys):
    write_video(_disc_frames([10, 14, 18, 22, 26, 50, 54, 58]), tmp_path / "jump.gif", fps=8)
    code, out, _ = run(capsys, "smoothness", tmp_path / "jump.gif", "--distance", "lab", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["frames"] == 8 and set(report["distances"]) == {"lab", "ssim"}
    for stats in report["distances"].values():  # both metrics see the cut between frame 4 and 5
        assert stats["largest_step"] == 4 and stats["max_over_mean"] > 2
        assert stats["one_minus_gini"] < 0.8

    folder = tmp_path / "smooth"
    folder.mkdir()
    for i, a in enumerate(_disc_frames(range(10, 50, 4))):
        Image.fromarray(a).save(folder / f"{i:03d}.png")
    code, out, _ = run(capsys, "smoothness", folder, "--distance", "lab")
    assert code == 0
    assert "10 frames" in out and "lab: max/mean" in out and "ssim: max/mean" in out
    code, out, _ = run(capsys, "smoothness", folder, "--distance", "lab", "--json")
    for stats in json.loads(out)["distances"].values():
        assert stats["one_minus_gini"] > 0.95 and stats["max_over_mean"] < 1.1


@pytest.mark.parametrize("case, needle", [
    ("missing", "does not exist"),
    ("two", "at least 3"),
    ("mixed", "different sizes"),
    ("video", "cannot be decoded"),
])
def test_bad_input_one_sentence_exit_2_nothing_written(tmp_path, capsys, case, needle):
    path = tmp_path / case
    if case in ("two", "mixed"):
        path.mkdir()
        sizes = [(32, 32), (32, 32)] + ([(16, 32)] if case == "mixed" else [])
        for i, (w, h) in enumerate(sizes):
            Image.new("RGB", (w, h), (i * 50, 0, 0)).save(path / f"{i}.png")
    elif case == "video":
        path = tmp_path / "cut.mp4"
        path.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(200))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out, err = run(capsys, "smoothness", path)
    assert code == 2 and out == ""
    assert err.startswith("latentscape smoothness: error: ") and needle in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_morph_adaptive_prints_the_report_and_stores_it(tiny_sd, tmp_path, capsys):
    code, out, _ = run(capsys, "morph", "a red cat@1", "a dog@2", "--model", tiny_sd, "--frames", 5, "--steps", 3,
                       "--pacing", "adaptive", "--max-step", 1.4, "-o", tmp_path / "m.gif", "-q")
    assert code == 0
    assert "ssim: max/mean" in out and "model evaluations:" in out and "of a full render" in out
    manifest = json.loads((tmp_path / "m.gif.manifest.json").read_text())
    assert manifest["recipe"]["params"]["max_step"] == 1.4 and manifest["recipe"]["params"]["pacing"] == "adaptive"
    assert set(manifest["pacing"]["report"]["distances"]) == {"lab", "ssim"}
    code, out, _ = run(capsys, "smoothness", tmp_path / "m.gif", "--json")
    assert code == 0 and json.loads(out)["frames"] == 5


@pytest.mark.parametrize("value", ["1", "0.5", "abc"])
def test_morph_max_step_bad_value(tiny_sd, tmp_path, capsys, value):
    with pytest.raises(SystemExit) if value == "abc" else nullcontext():
        code, _, err = run(capsys, "morph", "a@1", "b@2", "--model", tiny_sd, "--pacing", "adaptive", "--max-step", value,
                           "-o", tmp_path / "m.gif")
        assert code == 2 and "--max-step" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
