"""Morph outputs on disk: the manifest written as frames complete, resume, ping-pong, frame folders,
contact sheets, and nothing half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageSequence

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.io.recipe import read_recipe
from latentscape.workflows.morph import MorphConfig, render_morph

KEYFRAMES = ("a red cat@5", "a dog in the snow@9", "city street at night@13")


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def stop_after(frames: int, stage: str = "final"):
    def progress(name, done, total):
        if name == stage and done >= frames:
            raise Stop

    return progress


@pytest.mark.parametrize("ext, pacing", [("gif", "uniform"), ("mp4", "perceptual")])
def test_resume_finishes_without_redoing_frames_and_gives_the_identical_video(sd, tmp_path, ext, pacing):
    config = MorphConfig(keyframes=KEYFRAMES, frames=7, steps=2, seed=1, batch_size=2, pacing=pacing)
    full = tmp_path / f"full.{ext}"
    render_morph(sd, config, full)

    part = tmp_path / f"part.{ext}"
    with pytest.raises(Stop):
        render_morph(sd, config, part, progress=stop_after(4))
    assert not part.exists()  # no half-written video
    manifest = json.loads((tmp_path / f"part.{ext}.manifest.json").read_text())
    done = [f for f in manifest["stages"]["final"]["frames"] if f is not None]
    assert len(done) == 4 and not manifest["complete"]
    assert sorted(p.name for p in (tmp_path / f"part.{ext}.frames").glob("*.png")) == [f"frame_0000{i}.png" for i in range(4)]

    steps = []
    render_morph(sd, config, part, resume=True, callback=lambda s: steps.append(s.step))
    # frames 4-5 and 6 in two batches of two steps (perceptual: frame 6, the last keyframe, is the probe's own
    # frame, loaded from disk); the probe and frames 0-3 are not redone
    assert len(steps) == (2 * 2 if pacing == "uniform" else 2)
    assert part.read_bytes() == full.read_bytes()
    manifest = json.loads((tmp_path / f"part.{ext}.manifest.json").read_text())
    assert manifest["complete"] and manifest["output"]["sha256"]
    assert not (tmp_path / f"part.{ext}.frames").exists()  # the working frames are removed once the video exists


def test_resume_without_save_frames_keeps_the_folder_the_interrupted_render_was_told_to_keep(sd, tmp_path):
    config = MorphConfig(keyframes=KEYFRAMES[:2], frames=5, steps=1, seed=1, batch_size=2)
    full = tmp_path / "full.gif"
    render_morph(sd, config, full)
    keep = tmp_path / "keep"
    part = tmp_path / "part.gif"
    with pytest.raises(Stop):
        render_morph(sd, config, part, save_frames=keep, progress=stop_after(2))
    assert json.loads((tmp_path / "part.gif.manifest.json").read_text())["keep_frames"] is True
    render_morph(sd, config, part, resume=True)  # no --save-frames: "leave it out" must not delete them
    assert sorted(p.name for p in keep.glob("*.png")) == [f"frame_0000{i}.png" for i in range(5)]
    assert part.read_bytes() == full.read_bytes()
    manifest = json.loads((tmp_path / "part.gif.manifest.json").read_text())
    assert manifest["complete"] and manifest["frames_dir"] == str(keep.resolve())


def test_resume_reuses_the_seed_a_keyframe_of_seed_minus_one_drew(sd, tmp_path):
    config = MorphConfig(keyframes=("a red cat@5", "seed:-1"), frames=4, steps=1, seed=1, batch_size=2)
    out = tmp_path / "r.gif"
    with pytest.raises(Stop):
        render_morph(sd, config, out, progress=stop_after(2))
    drawn = json.loads((tmp_path / "r.gif.manifest.json").read_text())["recipe"]["params"]["keyframes"][1]["seed"]
    steps = []
    render_morph(sd, config, out, resume=True, callback=lambda s: steps.append(s.step))
    assert len(steps) == 1  # only the last batch of two frames (one step) is rendered
    assert json.loads((tmp_path / "r.gif.manifest.json").read_text())["recipe"]["params"]["keyframes"][1]["seed"] == drawn


def test_resume_refuses_other_settings_and_a_missing_manifest(sd, tmp_path):
    config = MorphConfig(keyframes=KEYFRAMES[:2], frames=4, steps=1, seed=1, batch_size=2)
    out = tmp_path / "m.gif"
    with pytest.raises(Stop):
        render_morph(sd, config, out, progress=stop_after(2))
    with pytest.raises(LatentscapeError, match="frames = 4 but this run has 5"):
        render_morph(sd, MorphConfig(**{**config.__dict__, "frames": 5}), out, resume=True)
    with pytest.raises(LatentscapeError, match="does not exist"):
        render_morph(sd, config, tmp_path / "other.gif", resume=True)
    # a seed of -1 on resume means "the seed the interrupted render drew"
    render_morph(sd, MorphConfig(**{**config.__dict__, "seed": -1}), out, resume=True)
    assert json.loads((tmp_path / "m.gif.manifest.json").read_text())["recipe"]["seed"] == 1


def test_pingpong_plays_back_without_repeating_endpoints_and_frames_are_saved(sd, tmp_path):
    config = MorphConfig(keyframes=KEYFRAMES[:2], frames=4, steps=2, seed=3, pingpong=True, fps=10)
    frames_dir = tmp_path / "frames"
    out = render_morph(sd, config, tmp_path / "pp.gif", save_frames=frames_dir, contact_sheet=tmp_path / "sheet.png")
    saved = sorted(p.name for p in frames_dir.iterdir())
    assert saved == ["frame_00000.png", "frame_00001.png", "frame_00002.png", "frame_00003.png"]
    originals = [np.asarray(Image.open(frames_dir / name), dtype=np.float64) for name in saved]
    assert all(np.array_equal(o, np.asarray(im, dtype=np.float64)) for o, im in zip(originals, out.images))  # lossless
    with Image.open(tmp_path / "pp.gif") as gif:
        decoded = [np.asarray(f.convert("RGB"), dtype=np.float64) for f in ImageSequence.Iterator(gif)]
        assert gif.info["duration"] == 100 and gif.info["loop"] == 0
    order = [int(np.argmin([np.abs(d - o).mean() for o in originals])) for d in decoded]
    assert order == [0, 1, 2, 3, 2, 1]
    recipe = read_recipe(tmp_path / "sheet.png")  # the contact sheet carries the morph's recipe
    assert recipe.workflow == "morph" and recipe.params["frames"] == 4
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 2 * 32


def test_a_failed_render_leaves_no_video_and_keeps_an_earlier_one(sd, tmp_path):
    out = tmp_path / "keep.webp"
    out.write_bytes(b"earlier video")
    with pytest.raises(Stop):
        render_morph(sd, MorphConfig(keyframes=KEYFRAMES[:2], frames=3, steps=1), out, progress=stop_after(1))
    assert out.read_bytes() == b"earlier video"
    assert not list(tmp_path.glob(".*partial*"))


def test_unknown_output_extension_is_refused_before_rendering(sd, tmp_path):
    with pytest.raises(LatentscapeError, match="unknown extension '.avi'"):
        render_morph(sd, MorphConfig(keyframes=KEYFRAMES[:2], frames=3, steps=1), tmp_path / "x.avi")
    assert list(tmp_path.iterdir()) == []
