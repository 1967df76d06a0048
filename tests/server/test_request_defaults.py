"""A new API request gets the verb's own defaults, not the defaults an old recipe is read with."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("given, expected", [({}, "invert"), ({"image_mode": "noise"}, "noise")])
def test_image_mode_defaults_like_the_cli(embedded, tmp_path, given, expected):
    from latentscape.server.requests import Limits, build

    body = {"inputs": ["cat face, google style", "grinning face, twitter style"], "steps": 2, "seed": 3, **given}
    config = build("blend", body, embedded, tmp_path, Limits())
    assert config.image_mode == expected
    # a recipe written before the field existed still replays as what it was made with
    from latentscape.workflows.blend import BlendConfig

    assert BlendConfig.from_params({k: v for k, v in body.items() if k != "image_mode"}).image_mode == "noise"


def test_an_unknown_image_mode_is_refused_at_request_time(studio):
    from server_helpers import nothing_written, one_sentence

    client, state = studio
    body = {"inputs": ["cat face, google style", "fire, twitter style"], "steps": 2, "seed": 3, "image_mode": "paint"}
    message = one_sentence(client.post("/latentscape/v1/jobs/blend", json=body), 422)
    assert "image_mode got 'paint'" in message and "invert" in message and "noise" in message
    nothing_written(state)
