"""Frame pins (pure): checking and filling keyframe frames, and the frame number of a path position."""

from __future__ import annotations

import pytest

from latentscape.core.frame_pins import frame_at, resolve_pins
from latentscape.core.paths import keyframe_frames, uniform_positions
from latentscape.errors import LatentscapeError


@pytest.mark.parametrize("pins, frames, closed, expected", [
    ([0, 2, 7], None, False, (8, [0, 2, 7])),  # frames from the last pin
    ([0, 2, 7], 8, False, (8, [0, 2, 7])),
    ([None, 48, 60], None, False, (61, [0, 48, 60])),  # the first keyframe is frame 0 unpinned too
    ([None, None, 10, None], 17, False, (17, [0, 5, 10, 16])),  # unpinned: spread evenly, last = frames - 1
    ([0, None, None, 9], None, False, (10, [0, 3, 6, 9])),
    ([0, 4], 10, True, (10, [0, 4])),
    ([None, 6, None], 9, True, (9, [0, 6, 8])),  # spread between pin 6 and the loop's return (frame 9)
])  # fmt: skip
def test_resolve_pins(pins, frames, closed, expected):
    assert resolve_pins(pins, frames, closed) == expected


def test_pinned_timing_places_uniform_frames_exactly_on_their_numbers():
    at = [0, 2, 7]
    positions = uniform_positions(3, 8, keyframe_at=at)
    assert positions == [0.0, 0.5, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0]
    assert [frame_at(u, at, 8, False) for u in positions] == list(range(8))  # whole, not 4.999999
    # unpinned paths: the even timing of keyframe_frames, same mapping
    even = keyframe_frames(3, 9, False)
    assert [frame_at(u, even, 9, False) for u in uniform_positions(3, 9)] == list(range(9))


def test_frame_at_in_a_closed_loop_and_between_frames():
    assert frame_at(1.5, [0, 4], 10, True) == 7.0  # the return segment runs from frame 4 to 10 (= frame 0 again)
    assert frame_at(0.3, [0, 5], 6, False) == pytest.approx(1.5)


@pytest.mark.parametrize("pins, frames, closed, needle", [
    ([3, 9], None, False, "keyframe 1 is pinned to frame 3; the first keyframe is frame 0"),
    ([0, 5, 5], None, False, "keyframes 2 and 3 are both pinned to frame 5"),
    ([0, 9, 5], None, False, "keyframe 3 is pinned to frame 5, before keyframe 2's frame 9"),
    ([0, 30], 24, False, "keyframe 2 is pinned to frame 30, beyond the last frame 23 (frames = 24)"),
    ([0, 12], 24, False, "so frames must be 13 (or left out)"),
    ([0, 12], None, True, "frames is needed for a closed loop"),
    ([0, 24], 24, True, "pinned to frame 24, beyond the last frame 23"),
    ([0, None], None, False, "the last keyframe (keyframe 2) is not pinned"),
    ([0, None, None, 2], None, False, "keyframes 2 and 3 must lie between frames 0 and 2"),
    ([0, 23, None], 24, False, "the last keyframe (keyframe 3) ends the path on frame 23, which keyframe 2 is pinned to"),
])  # fmt: skip
def test_bad_pins_are_one_sentence(pins, frames, closed, needle):
    with pytest.raises(LatentscapeError) as err:
        resolve_pins(pins, frames, closed)
    assert needle in str(err.value) and "\n" not in str(err.value) and str(err.value).endswith(".")
