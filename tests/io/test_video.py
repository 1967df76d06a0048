"""Videos are read back with independent readers (imageio's ffmpeg plugin, Pillow) and checked field by field."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io import video
from latentscape.io.video import check_video_path, pingpong, read_frames, save_frames, write_video


def gradient_frames(n: int, width: int, height: int) -> list[np.ndarray]:
    """Smooth, distinct frames (a moving diagonal gradient) that H.264 reproduces closely."""
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(n):
        r = x * 200 // max(width - 1, 1) + 10 * i
        g = y * 200 // max(height - 1, 1)
        b = np.full_like(x, 40 * i)
        frames.append(np.stack([r, g, b], axis=-1).astype(np.uint8))
    return frames


def test_pingpong_appends_the_reverse_without_repeating_endpoints():
    assert pingpong([0, 1, 2, 3]) == [0, 1, 2, 3, 2, 1]
    assert pingpong([0, 1, 2]) == [0, 1, 2, 1]
    assert pingpong([0, 1]) == [0, 1]
    assert pingpong([0]) == [0]
    assert pingpong([]) == []


def test_check_video_path_names_the_extension_and_the_accepted_ones():
    with pytest.raises(LatentscapeError) as err:
        check_video_path("x.avi")
    assert str(err.value) == "output 'x.avi' has an unknown extension '.avi'; accepted: .mp4, .gif, .webp."
    with pytest.raises(LatentscapeError, match="'out' has no extension; accepted: .mp4, .gif, .webp."):
        check_video_path("out")
    assert check_video_path("clip.MP4").name == "clip.MP4"


def test_mp4_is_h264_yuv420p_faststart_padded_to_even_size(tmp_path):
    frames = gradient_frames(6, 45, 33)  # odd width and height
    path = write_video(frames, tmp_path / "morph.mp4", fps=12)
    with imageio.get_reader(path, "ffmpeg") as reader:
        meta = reader.get_meta_data()
        decoded = [frame for frame in reader]
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == 12
    assert len(decoded) == 6
    assert decoded[0].shape == (34, 46, 3)  # padded, not rescaled
    first = decoded[0].astype(int)
    assert np.abs(first[:33, :45] - frames[0]).mean() < 3  # crf 18: near-lossless on a smooth image
    assert np.abs(first[:33, 45] - first[:33, 44]).mean() < 3  # padding repeats the edge column
    assert np.abs(first[33, :45] - first[32, :45]).mean() < 3  # ... and the edge row
    assert np.abs(decoded[-1][:33, :45].astype(int) - frames[-1]).mean() < 3
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: index before the media data


@pytest.mark.parametrize(("fps", "loop", "duration"), [(15, True, 70), (100, False, 20)])
def test_gif_durations_loop_flag_and_frame_count(tmp_path, fps, loop, duration):
    frames = [Image.fromarray(f) for f in gradient_frames(5, 16, 12)]
    path = write_video(frames, tmp_path / "a.gif", fps=fps, loop=loop)
    with Image.open(path) as gif:
        assert gif.n_frames == 5
        assert gif.size == (16, 12)
        assert ("loop" in gif.info) == loop and gif.info.get("loop", 0) == 0  # loop=0: forever; absent: once
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    assert durations == [duration] * 5  # 15 fps: 66.7 ms to whole centiseconds; 100 fps: 10 ms, raised to 20


@pytest.mark.parametrize(("loop", "loop_count"), [(True, 0), (False, 1)])
def test_webp_is_animated_with_frame_count_duration_and_loop(tmp_path, loop, loop_count):
    path = write_video(gradient_frames(4, 20, 10), tmp_path / "a.webp", fps=12, loop=loop)
    with Image.open(path) as webp:
        assert (webp.format, webp.n_frames, webp.size) == ("WEBP", 4, (20, 10))
        assert webp.info["loop"] == loop_count
        webp.load()  # Pillow fills in a WebP frame's duration when it decodes it
        assert webp.info["duration"] == 83


def test_bad_inputs_fail_with_a_sentence_and_write_nothing(tmp_path):
    frames = gradient_frames(2, 8, 8)
    with pytest.raises(LatentscapeError, match="fps got 0; accepted: a number greater than 0"):
        write_video(frames, tmp_path / "a.gif", fps=0)
    with pytest.raises(LatentscapeError, match="no frames"):
        write_video([], tmp_path / "a.gif")
    with pytest.raises(LatentscapeError, match="frame 1 is 8x6 but frame 0 is 8x8"):
        write_video([frames[0], frames[1][:6]], tmp_path / "a.mp4")
    with pytest.raises(LatentscapeError, match=r"frame 0 is a array float32 \(8, 8, 3\); accepted"):
        write_video([frames[0].astype(np.float32)], tmp_path / "a.webp")
    with pytest.raises(LatentscapeError, match="unknown extension '.avi'"):
        write_video(frames, tmp_path / "a.avi")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", video.VIDEO_FORMATS)
def test_a_failure_mid_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch, ext):
    target = tmp_path / f"out{ext}"
    target.write_bytes(b"previous render")
    real, calls = video._rgb_image, []

    def fail_on_third_frame(frame):
        calls.append(frame)
        if len(calls) == 3:
            raise RuntimeError("encoder died")
        return real(frame)

    monkeypatch.setattr(video, "_rgb_image", fail_on_third_frame)
    with pytest.raises(RuntimeError, match="encoder died"):
        write_video(gradient_frames(5, 16, 16), target)
    assert len(calls) == 3  # the failure really happened mid-way, after two frames went to the encoder
    assert list(tmp_path.iterdir()) == [target]
    assert target.read_bytes() == b"previous render"


def test_an_interrupted_mp4_stops_ffmpeg_which_only_ever_wrote_a_temp_file(tmp_path, monkeypatch):
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    def interrupt(frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(video.subprocess, "Popen", recording_popen)
    monkeypatch.setattr(video, "_rgb_image", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_video(gradient_frames(3, 16, 16), tmp_path / "out.mp4")
    (ffmpeg,) = started
    assert ffmpeg.returncode is not None  # killed and reaped, not left running
    output = Path(ffmpeg.args[-1])
    assert output.parent == tmp_path and output.name != "out.mp4"
    assert list(tmp_path.iterdir()) == []


def test_an_ffmpeg_error_is_raised_not_renamed_into_place(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "MP4_CRF", "high")  # not a number: ffmpeg exits with an error
    with pytest.raises(RuntimeError, match=r"ffmpeg failed to write '.*out\.mp4' \(exit status"):
        write_video(gradient_frames(3, 16, 16), tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


def test_save_and_read_frames_round_trip_exactly_and_resume_numbering(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (7, 9, 3), dtype=np.uint8) for _ in range(5)]
    first = save_frames(frames[:3], tmp_path / "frames")
    rest = save_frames(iter(frames[3:]), tmp_path / "frames", start=3)  # a generator works too
    assert [p.name for p in first + rest] == [f"frame_0000{i}.png" for i in range(5)]
    (tmp_path / "frames" / "notes.txt").write_text("not a frame")
    (tmp_path / "frames" / ".frame_00005.abc.partial.png").write_bytes(b"unfinished")
    back = read_frames(tmp_path / "frames")
    assert len(back) == 5
    for original, loaded in zip(frames, back):
        assert loaded.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(loaded), original)
    with pytest.raises(LatentscapeError, match="frame folder .* does not exist"):
        read_frames(tmp_path / "missing")
