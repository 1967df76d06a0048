"""blend: a one-hot weight reproduces that input's standalone image, on every family."""

from __future__ import annotations

import pytest
from creative_helpers import FAMILIES, FAST, assert_same, load_family, max_diff, standalone

from latentscape.errors import LatentscapeError
from latentscape.io.images import pil_to_tensor
from latentscape.workflows.blend import BlendConfig, blend, check_inputs, check_weights
from latentscape.workflows.common import decode_images
from latentscape.workflows.replay import replay

INPUTS = ("a red cat@3", "a dog@9", "seed:4")  # seed:4 takes the nearest prompt ("a dog")


@pytest.mark.parametrize("fixture", FAMILIES)
def test_one_hot_weight_is_that_inputs_standalone_image(request, fixture):
    model = load_family(request, fixture)
    refs = [standalone(model, "a red cat", 3), standalone(model, "a dog", 9), standalone(model, "a dog", 4)]
    for k, ref in enumerate(refs):
        weights = [0.0, 0.0, 0.0]
        weights[k] = 1.0
        out = blend(model, BlendConfig(inputs=INPUTS, weights=tuple(weights), cfg=5.0, **FAST))
        assert_same(out.images[0], ref)
    mixed = blend(model, BlendConfig(inputs=INPUTS, cfg=5.0, **FAST))
    assert all(max_diff(mixed.images[0], ref) > 1 for ref in refs)


def test_blend_does_not_depend_on_input_order_and_replays(request):
    model = load_family(request, "tiny_sd")
    inputs = ("a red cat@3", "a dog@9", "a dog@4")  # explicit prompts: a seed-only input takes its neighbour's
    a = blend(model, BlendConfig(inputs=inputs, weights=(1, 2, 3), cfg=5.0, **FAST))
    b = blend(model, BlendConfig(inputs=(inputs[2], inputs[0], inputs[1]), weights=(3, 1, 2), cfg=5.0, **FAST))
    assert_same(a.images[0], b.images[0])
    again = replay(model, a.recipes[0])
    assert max_diff(again.images[0], a.images[0]) == 0


def test_images_blend_in_latent_space(request, tmp_path):
    model = load_family(request, "tiny_sd")
    photo = standalone(model, "mountain landscape", 1)
    photo.save(tmp_path / "photo.png")
    inputs = ("a red cat@3", str(tmp_path / "photo.png"))
    text_only = blend(model, BlendConfig(inputs=inputs, weights=(1, 0), strength=0.0, image_mode="noise", cfg=5.0, **FAST))
    assert text_only.info["mode"] == "latent"
    assert_same(text_only.images[0], standalone(model, "a red cat", 3))
    image_only = blend(model, BlendConfig(inputs=inputs, weights=(0, 1), strength=0.0, image_mode="noise", cfg=5.0, **FAST))
    roundtrip = decode_images(model, model.encode_images(pil_to_tensor([photo])))[0]
    assert_same(image_only.images[0], roundtrip)
    repainted = blend(model, BlendConfig(inputs=inputs, strength=0.5, image_mode="noise", cfg=5.0, **FAST))
    assert repainted.recipes[0].inputs["images"][0]["path"].endswith("photo.png")
    assert max_diff(replay(model, repainted.recipes[0]).images[0], repainted.images[0]) == 0


@pytest.mark.parametrize(
    "inputs, weights, fragment",
    [
        (("a", "b", "c", "d", "e", "f"), None, "got 6 inputs; accepted: 2 to 5"),
        (("a",), None, "got 1 inputs"),
        (("a", "b"), (1, 2, 3), "got 3 weights for 2 inputs"),
        (("a", "b"), (0, 0), "do not all equal 0"),
        (("a", "b"), (1, -1), "numbers >= 0"),
        (("a", "video:x.mp4"), None, "unknown kind 'video:'"),
    ],
)
def test_bad_inputs_fail_with_one_sentence(inputs, weights, fragment):
    with pytest.raises(LatentscapeError) as err:
        check_weights(weights, len(check_inputs(inputs)))
    assert fragment in str(err.value)
