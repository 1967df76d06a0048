"""The streaming GIF/WebP writers produce exactly Pillow's save_all bytes, holding one frame at a time."""

import io

import numpy as np
import pytest
from PIL import Image

from latentscape.io import animation
from latentscape.io.video import _gif_frame, frame_duration_ms, user_comment_exif


def _frames(n, size=(24, 18), repeat=(), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i in repeat:  # an exact copy of the previous frame: Pillow merges it into a longer one
            out.append(out[-1].copy())
            continue
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        arr[: size[1] // 2] = (i * 37) % 256  # a changing flat half and a noisy half
        out.append(Image.fromarray(arr, "RGB"))
    return out


def _pillow_gif(frames, loop, comment):
    p = [_gif_frame(f) for f in frames]
    buf = io.BytesIO()
    extra = ({"loop": 0} if loop else {}) | ({"comment": comment} if comment else {})
    p[0].save(buf, format="GIF", save_all=True, append_images=p[1:], duration=80, optimize=False, **extra)
    return buf.getvalue()


def _stream_gif(frames, loop, comment):
    buf = io.BytesIO()
    animation.write_gif((_gif_frame(f) for f in frames), buf, duration=80, loop=loop, comment=comment)
    return buf.getvalue()


CASES = {
    "plain": dict(n=7),
    "merged duplicates": dict(n=8, repeat=(2, 3, 7)),
    "one frame": dict(n=1),
    "all identical": dict(n=4, repeat=(1, 2, 3)),
    "odd size": dict(n=5, size=(33, 17)),
    "tiny (no interlace)": dict(n=4, size=(9, 7)),
    "large (interlaced)": dict(n=3, size=(70, 64)),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("loop,comment", [(True, b"Steps: 4, Seed: 3"), (False, None)])
def test_streaming_gif_is_byte_identical_to_pillow(case, loop, comment):
    frames = _frames(**CASES[case])
    assert _stream_gif(frames, loop, comment) == _pillow_gif(frames, loop, comment)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("loop,comment", [(True, "Steps: 4, Seed: 3"), (False, None)])
def test_streaming_webp_is_byte_identical_to_pillow(case, loop, comment):
    frames = _frames(**CASES[case])
    exif = user_comment_exif(comment) if comment else None
    ref = io.BytesIO()
    frames[0].save(ref, format="WEBP", save_all=True, append_images=frames[1:], duration=frame_duration_ms(12),
                   quality=90, loop=0 if loop else 1, **({"exif": exif} if exif else {}))
    out = io.BytesIO()
    animation.write_webp(iter(frames), out, duration=frame_duration_ms(12), loop=loop, quality=90, exif=exif)
    assert out.getvalue() == ref.getvalue()


def test_frame_metadata_does_not_reach_the_animation():
    """A frame read from a PNG with text chunks (or a GIF with a background index) writes the same file as the
    same pixels freshly decoded."""
    frames = _frames(3)
    tagged = [f.copy() for f in frames]
    for f in tagged:
        f.info.update({"parameters": "a cat", "background": 7, "comment": b"x"})
    assert _stream_gif(tagged, True, None) == _stream_gif(frames, True, None)


def test_the_gif_writer_holds_one_frame_not_all(monkeypatch):
    """Frames are pulled one at a time and each is written before the next two are read."""
    frames = _frames(6)
    pulled, sizes = [], []

    class Probe(io.BytesIO):
        def write(self, b):
            sizes.append((len(pulled), self.tell()))
            return super().write(b)

    def source():
        for f in frames:
            pulled.append(1)
            yield _gif_frame(f)

    buf = Probe()
    animation.write_gif(source(), buf, duration=80, loop=True, comment=None)
    first_write = min(n for n, _ in sizes)
    assert first_write == 2  # the header and frame 0 go out once frame 1 shows it is not a duplicate
    assert buf.getvalue() == _pillow_gif(frames, True, None)
