"""Recipes serialise every Keyframe field, so an unpinned keyframe carries ``frame: null``; replaying a blend,
map or mix recipe (CLI ``replay`` and the studio's Replay button) must accept that, while a real frame pin
stays refused where pins mean nothing."""

import pytest

from latentscape.errors import LatentscapeError
from latentscape.workflows.keyframes import Keyframe, keyframe_from_dict


def test_a_null_frame_from_a_recipe_is_accepted_anywhere():
    assert keyframe_from_dict({"prompt": "cat face", "seed": 1, "image": None, "cfg": None, "frame": None}, "inputs item 1") \
        == Keyframe(prompt="cat face", seed=1)


def test_a_frame_pin_is_still_refused_outside_morph_paths():
    with pytest.raises(LatentscapeError, match="unknown keys frame"):
        keyframe_from_dict({"prompt": "cat face", "frame": 3}, "inputs item 1")
    assert keyframe_from_dict({"prompt": "cat face", "frame": 3}, "keyframe 1", pinned=True).frame == 3
