"""Morph frames stream through disk: the outputs are the bytes main wrote before streaming, and nothing holds
every frame in memory (the frame list, the renderer's reuse table, the video writer, the distances)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

import latentscape
from latentscape.io.frame_files import FrameFiles
from latentscape.workflows.morph import MorphConfig, morph, render_morph

# Computed by bench/output_hashes.py from an untouched checkout of main at 8a9e898 (the frames in memory,
# Pillow's save_all) with one torch thread, as the tests run: the same 12-frame render must give the same
# files. (bench/output_hashes.py also compares the MP4s, frame PNG files and contact sheets: all identical.)
MAIN = {
    "uniform.gif": "e19f70287d06498ca80996eaa1c5c7c7ca8798f90e80dba2ac54472d0a3ed4cc",
    "uniform.webp": "7ef76bd75d8d07fb59518e7182968506ae621cdf10bf14f3ebbb85f25f577666",
    "uniform.pixels": "64b921c0ad69d5b7ac7b8997ea4d1cf64dd8348ead43948b60ad742426dfff35",
    "closed_pingpong.gif": "cb34c6254cbac4ec5cd07044ca7a5d5dc687e8e2583ca7f806990322e657c7ca",
    "closed_pingpong.webp": "12e337ecc78170721074ef084fc4a72cc6fb5eea1806c3a978ff99c367d7bf96",
    "closed_pingpong.pixels": "c4f90a9d357fe8178c394cfba1f68d04f6ebf5a1b9d798d350df8de6503eb9c4",
    "perceptual.gif": "3980c7cfdaa14d68f7eab65c29bc3a6a0ef01ec987c8f14443936f77e9871eab",
}
# perceptual pacing measures its probe in float32 now (main: float64): the positions move by ~1e-8 in u,
# which can move a pixel by 1/255 (here the GIF is main's to the byte; the frame PNGs' pixels are new)
PERCEPTUAL = {"perceptual.pixels": "a59ccc07c673bc73024fcf932b237becc3daa258e248825dc033f59eb0e213af"}
CASES = {"uniform": {"pacing": "uniform"}, "perceptual": {"pacing": "perceptual"},
         "closed_pingpong": {"pacing": "uniform", "closed": True, "pingpong": True}}


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    from tiny_models import make_sd

    # the folder named as in bench/output_hashes.py: the model's name is in every file's infotext
    return latentscape.load(str(make_sd(tmp_path_factory.mktemp("streaming") / "sd")))


def _config(**kw) -> MorphConfig:
    return MorphConfig(keyframes=("a cat", "a dog@5", "a bird@9"), frames=12, seed=3, steps=4, batch_size=5, **kw)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pixels(paths) -> str:
    return _sha(b"".join(np.asarray(Image.open(p).convert("RGB")).tobytes() for p in sorted(paths)))


@pytest.mark.parametrize("case", CASES)
def test_a_twelve_frame_render_writes_mains_bytes(sd, case, tmp_path):
    expected = {**MAIN, **PERCEPTUAL}
    for ext in (".gif", ".webp") if case != "perceptual" else (".gif",):
        frames = tmp_path / f"frames{ext}"
        render_morph(sd, _config(**CASES[case]), tmp_path / f"morph{ext}", save_frames=frames)
        assert _sha((tmp_path / f"morph{ext}").read_bytes()) == expected[f"{case}{ext}"], ext
        assert _pixels(frames.glob("frame_*.png")) == expected[f"{case}.pixels"]


def test_library_morph_returns_frames_on_disk_that_live_with_the_result(sd):
    out = morph(sd, _config(pacing="uniform"))
    assert isinstance(out.images, FrameFiles) and len(out.images) == 12
    folder = out.images.paths[0].parent
    assert folder.is_dir() and sorted(p.name for p in folder.glob("frame_*.png"))[-1] == "frame_00011.png"
    assert _sha(b"".join(np.asarray(im).tobytes() for im in out.images)) == MAIN["uniform.pixels"]
    middle = out.images[3:6]  # a slice keeps the folder alive on its own
    del out
    assert folder.is_dir() and len(middle) == 3 and middle[0].size == (32, 32)
    del middle
    assert not folder.exists()  # the last reference gone, the temporary folder goes too


def test_render_morph_without_save_frames_says_its_frames_are_gone(sd, tmp_path):
    out = render_morph(sd, _config(), tmp_path / "m.gif")
    assert len(out.images) == 12 and not (tmp_path / "m.gif.frames").exists()
    with pytest.raises(latentscape.errors.LatentscapeError, match="no longer on disk: render_morph removes its frames"):
        out.images[0]


def test_the_renderer_keeps_paths_not_images(sd, tmp_path, monkeypatch):
    """Every frame of every stage goes to disk as its batch completes; what stays in memory are paths."""
    from latentscape.workflows import morph_render

    seen = []
    real = morph_render.FrameRenderer.stage

    def stage(self, name, positions):
        frames = real(self, name, positions)
        seen.append((name, frames, dict(self.rendered)))
        return frames

    monkeypatch.setattr(morph_render.FrameRenderer, "stage", stage)
    render_morph(sd, _config(pacing="perceptual"), tmp_path / "m.gif", save_frames=tmp_path / "kept")
    assert [s[0] for s in seen][:2] == ["probe", "final"]
    for _, frames, rendered in seen:
        assert isinstance(frames, FrameFiles)
        assert not any(isinstance(v, Image.Image) for v in rendered.values())


def test_the_video_writer_pulls_frames_one_at_a_time(tmp_path):
    """write_video takes a generator and never holds more than a frame or two of it (GIF, WebP and MP4)."""
    from latentscape.io.video import write_video

    for ext in (".gif", ".webp", ".mp4"):
        alive = []

        def frames():
            rng = np.random.default_rng(0)
            for i in range(10):
                im = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
                alive.append(i)
                yield im

        write_video(frames(), tmp_path / f"g{ext}", fps=12)
        assert alive == list(range(10)) and (tmp_path / f"g{ext}").stat().st_size > 0


def test_a_frame_of_another_size_mid_stream_leaves_nothing(tmp_path):
    from latentscape.errors import LatentscapeError
    from latentscape.io.video import write_video

    frames = (Image.new("RGB", (16, 16) if i != 3 else (16, 18)) for i in range(6))
    for ext in (".gif", ".webp", ".mp4"):
        frames = (Image.new("RGB", (16, 16) if i != 3 else (16, 18)) for i in range(6))
        with pytest.raises(LatentscapeError, match="frame 3 is 16x18 but frame 0 is 16x16"):
            write_video(frames, tmp_path / f"bad{ext}")
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_streamed_distances_are_the_pairwise_ones_whatever_the_chunk(closed, chunk):
    """One pass over the frames, chunk by chunk, gives every adjacent distance (and the loop's closing
    one) exactly as measuring each pair on its own does, by both metrics of a report."""
    from latentscape.workflows.morph_pacing import consecutive_distances
    from latentscape.workflows.smoothness import adjacent_distances, report_from, report_metrics

    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (24, 24, 3)).astype(np.int16)
    frames = [Image.fromarray(np.clip(base + rng.integers(-30, 30, base.shape) * (i % 3), 0, 255).astype(np.uint8))
              for i in range(7)]
    got = adjacent_distances(iter(frames), report_metrics("lab"), closed, chunk=chunk)
    for metric in ("lab", "ssim"):
        want = consecutive_distances(frames, metric, closed)
        assert len(got[metric]) == (7 if closed else 6)
        np.testing.assert_allclose(got[metric], want, rtol=1e-6, atol=1e-9)
    report = report_from(got, len(frames))
    assert report.frames == 7 and set(report.stats) == {"lab", "ssim"}
    assert report.stats["lab"].max == pytest.approx(max(got["lab"]))
