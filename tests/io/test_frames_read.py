"""Reading frame sequences from folders, animations and videos; every bad input is one sentence."""

import numpy as np
import pytest
from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io.frames_read import read_frames
from latentscape.io.video import write_video


def _frames(n=4, size=(32, 24)):
    return [np.full((size[1], size[0], 3), 40 * i, np.uint8) for i in range(n)]


def test_folder_in_natural_order_animations_and_video(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(11):
        Image.fromarray(np.full((24, 32, 3), 10 * i, np.uint8)).save(folder / f"frame_{i}.png")
    (folder / "notes.txt").write_text("not a frame")
    got = read_frames(folder)
    assert [int(np.asarray(im)[0, 0, 0]) for im in got] == [10 * i for i in range(11)]  # frame_10 after frame_9
    for suffix in (".gif", ".webp", ".mp4"):
        write_video(_frames(), tmp_path / f"v{suffix}", fps=8)
        frames = read_frames(tmp_path / f"v{suffix}")
        assert len(frames) == 4 and frames[0].size == (32, 24) and frames[0].mode == "RGB"
        assert abs(int(np.asarray(frames[3])[10, 10, 0]) - 120) <= 3


@pytest.mark.parametrize("case, needle", [
    ("missing", "does not exist"),
    ("few", "at least 3"),
    ("mixed", "different sizes"),
    ("broken_mp4", "cannot be decoded"),
    ("broken_gif", "cannot be read"),
    ("suffix", "unknown extension"),
])
def test_bad_input_is_one_sentence(tmp_path, case, needle):
    path = tmp_path / case
    if case == "few":
        path.mkdir()
        for i, a in enumerate(_frames(2)):
            Image.fromarray(a).save(path / f"{i}.png")
    elif case == "mixed":
        path.mkdir()
        for i, a in enumerate(_frames(2) + _frames(1, (16, 16))):
            Image.fromarray(a).save(path / f"{i}.png")
    elif case == "broken_mp4":
        path = tmp_path / "x.mp4"
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    elif case == "broken_gif":
        path = tmp_path / "x.gif"
        path.write_bytes(b"GIF89a garbage")
    elif case == "suffix":
        path = tmp_path / "x.txt"
        path.write_text("hello")
    with pytest.raises(LatentscapeError, match=needle) as info:
        read_frames(path, minimum=3)
    assert "\n" not in str(info.value)
