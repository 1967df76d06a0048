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


def test_resume_keeps_the_save_frames_folder_and_needs_it_named_again(sd, tmp_path):
    config = MorphConfig(keyframes=KEYFRAMES[:2], frames=5, steps=1, seed=1, batch_size=2)
    full = tmp_path / "full.gif"
    render_morph(sd, config, full)
    keep = tmp_path / "keep"
    part = tmp_path / "part.gif"
    with pytest.raises(Stop):
        render_morph(sd, config, part, save_frames=keep, progress=stop_after(2))
    assert json.loads((tmp_path / "part.gif.manifest.json").read_text())["keep_frames"] is True
    # the manifest's word is not enough to use a folder: the resume must name it
    with pytest.raises(LatentscapeError, match=r"keeps its frames in '.*keep', not in '.*part.gif.frames'; pass save_frames"):
        render_morph(sd, config, part, resume=True)
    render_morph(sd, config, part, resume=True, save_frames=keep)
    assert sorted(p.name for p in keep.glob("*.png")) == [f"frame_0000{i}.png" for i in range(5)]
    assert part.read_bytes() == full.read_bytes()
    manifest = json.loads((tmp_path / "part.gif.manifest.json").read_text())
    assert manifest["complete"] and manifest["frames_dir"] == str(keep.resolve())


def _planted(sd, tmp_path, config, output, **changes):
    """Interrupt a render of ``output``, then edit its manifest as an attacker would."""
    with pytest.raises(Stop):
        render_morph(sd, config, output, progress=stop_after(2))
    path = tmp_path / f"{output.name}.manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def victim(tmp_path):
    folder = tmp_path / "precious"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "frame_00000.png").write_bytes(b"not a frame of yours")
    (folder / "sub" / "deep.txt").write_text("mine too")
    return folder


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("complete", [False, True])
def test_a_planted_manifest_cannot_make_resume_touch_another_folder(sd, victim, tmp_path, complete):
    before = _tree(victim)
    config = MorphConfig(keyframes=KEYFRAMES[:2], frames=4, steps=1, seed=1, batch_size=2)
    out = tmp_path / "m.gif"
    _planted(sd, tmp_path, config, out, frames_dir=str(victim), keep_frames=False, complete=complete)
    if complete:  # a finished manifest: the resume renders into the output's own folder and cleans only that
        render_morph(sd, config, out, resume=True)
        assert out.is_file() and not (tmp_path / "m.gif.frames").exists()
    else:
        with pytest.raises(LatentscapeError, match="keeps its frames in '.*precious'.*is used only when it is named"):
            render_morph(sd, config, out, resume=True)
    assert _tree(victim) == before


@pytest.mark.parametrize("change, needle", [
    ({"stages": {"final": {"positions": [0, 0.5, 1, 1.5], "frames": [None]}}}, r"stages.final.frames has 1 entries, expected a list of 4"),
    ({"stages": {"final": {"positions": "0,1", "frames": []}}}, r"stages.final.positions is not a list of finite numbers"),
    ({"stages": {"final": {"positions": [0], "frames": [{"png": "../../etc/passwd", "sha256": "0" * 64, "u": 0, "t": 0, "a": 0, "b": 1}]}}},
     r"stages.final.frames\[0\].png is \"../../etc/passwd\", expected \"frame_00000.png\""),
    ({"stages": {"final": {"positions": [0], "frames": [{"png": "frame_00000.png", "sha256": "x", "u": 0, "t": 0, "a": 0, "b": 1}]}}},
     r"sha256 is not a SHA-256"),
    ({"stages": {"final": {"positions": [0], "frames": [{"png": "frame_00000.png", "sha256": "0" * 64, "u": "0", "t": 0, "a": 0, "b": 1}]}}},
     r"frames\[0\].u is a string, expected a finite number"),
    ({"stages": []}, r"stages is a list, expected an object or null"),
    ({"stages": {"other": {}}}, r"stages.other is not a stage"),
    ({"keep_frames": "yes"}, r"keep_frames is a string, expected true/false or null"),
    ({"frames_dir": 5}, r"frames_dir is a number, expected a string or null"),
    ({"format": "1"}, r"has format \"1\"; accepted: a whole number"),
])
def test_a_damaged_manifest_is_one_sentence_and_nothing_is_touched(sd, victim, tmp_path, change, needle):
    config = MorphConfig(keyframes=KEYFRAMES[:2], frames=4, steps=1, seed=1, batch_size=2)
    out = tmp_path / "m.gif"
    path = _planted(sd, tmp_path, config, out, **change)
    frames = _tree(tmp_path / "m.gif.frames")
    with pytest.raises(LatentscapeError, match=needle) as info:
        render_morph(sd, config, out, resume=True)
    assert "\n" not in str(info.value)
    assert not out.exists() and _tree(tmp_path / "m.gif.frames") == frames
    assert json.loads(path.read_text())["recipe"]  # the manifest is left as it was


def test_cleanup_removes_only_its_own_frame_files_and_never_the_users_probe_folder(sd, tmp_path):
    keep = tmp_path / "frames"
    (keep / "probe").mkdir(parents=True)
    (keep / "probe" / "mine.png").write_bytes(b"the user's own probe folder")
    work = tmp_path / "p.gif.frames"
    work.mkdir()
    (work / "readme.txt").write_text("someone put this here")
    config = MorphConfig(keyframes=KEYFRAMES[:2], frames=4, steps=1, seed=1, batch_size=2, pacing="perceptual")
    render_morph(sd, config, tmp_path / "p.gif", save_frames=keep)
    assert (keep / "probe" / "mine.png").read_bytes() == b"the user's own probe folder"
    assert sorted(p.name for p in keep.glob("frame_*.png")) == [f"frame_0000{i}.png" for i in range(4)]
    # the probe frames lived in the output's own folder: removed; the stranger's file and its folder stay
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == ["readme.txt"]

    render_morph(sd, config, tmp_path / "q.gif")  # no --save-frames: the working folder goes entirely
    assert not (tmp_path / "q.gif.frames").exists()


def test_resume_reuses_the_seed_a_keyframe_of_seed_minus_one_drew(sd, tmp_path):
    config = MorphConfig(keyframes=("a red cat@5", "seed:-1"), frames=4, steps=1, seed=1, batch_size=2, pacing="uniform")
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


def test_resume_of_a_render_started_with_another_batch_size_finishes_with_it(sd, tmp_path):
    """A render interrupted before the morph default became 24 (batch 8 in its manifest) resumes with the
    default config: it keeps the batch size it started with, so the video is the uninterrupted one."""
    import dataclasses

    from latentscape.workflows.morph import DEFAULT_BATCH

    old = MorphConfig(keyframes=KEYFRAMES[:2], frames=5, steps=1, seed=1, batch_size=2)
    full = tmp_path / "full.gif"
    render_morph(sd, old, full)
    part = tmp_path / "part.gif"
    with pytest.raises(Stop):
        render_morph(sd, old, part, progress=stop_after(2))
    now = dataclasses.replace(old, batch_size=DEFAULT_BATCH)
    out = render_morph(sd, now, part, resume=True)
    assert part.read_bytes() == full.read_bytes()
    assert out.recipe.params["batch_size"] == 2
    with pytest.raises(LatentscapeError):  # an explicit other size is still a different render
        render_morph(sd, dataclasses.replace(old, batch_size=3), tmp_path / "full.gif", resume=True)
