"""mix: ratio 0 is the content's image, ratio 1 the style prompt's (from the content's noise)."""

from __future__ import annotations

import pytest
import torch
from creative_helpers import FAMILIES, FAST, assert_same, load_family, max_diff, standalone

from latentscape.core.noise import seeded_noise
from latentscape.errors import LatentscapeError
from latentscape.sampling import denoise
from latentscape.workflows.mix import MixConfig, mix, switch_step
from latentscape.workflows.replay import replay


@pytest.mark.parametrize("fixture", FAMILIES)
@pytest.mark.parametrize("mode", ["embed", "schedule"])
def test_ratio_0_is_the_content_and_1_the_style(request, fixture, mode):
    model = load_family(request, fixture)
    out = mix(model, MixConfig(content="a red cat@3", style="a dog", ratio=(0.0, 0.5, 1.0), mode=mode, cfg=5.0, **FAST))
    assert_same(out.images[0], standalone(model, "a red cat", 3))
    assert_same(out.images[2], standalone(model, "a dog", 3))


def test_schedule_switches_prompts_at_the_step(request):
    model = load_family(request, "tiny_sd")
    assert [switch_step(r, 10) for r in (0.0, 0.3, 0.5, 1.0)] == [10, 7, 5, 0]
    cond = model.encode_prompts(["a red cat", "a dog"])
    noise = seeded_noise([1], (4, 4, 4))
    kw = dict(steps=4, guidance_scale=1.0)
    plain = denoise(model, noise, cond.select(0), **kw)
    same = denoise(model, noise, cond.select(0), cond_schedule=lambda i, n: cond.select(0), **kw)
    assert torch.equal(plain, same)
    style = denoise(model, noise, cond.select(1), **kw)
    switched = denoise(model, noise, cond.select(0), cond_schedule=lambda i, n: cond.select(1), **kw)
    assert torch.equal(style, switched)
    half = denoise(model, noise, cond.select(0), cond_schedule=lambda i, n, a=cond.select(0), b=cond.select(1): a if i < 2 else b, **kw)
    assert not torch.equal(half, plain) and not torch.equal(half, style)


def test_mix_replays_and_validates(request):
    model = load_family(request, "tiny_sd")
    out = mix(model, MixConfig(content="a red cat@3", style="a dog", ratio=(0.25, 0.75), mode="schedule", cfg=5.0, steps=4, width=32, height=32))
    again = replay(model, out.recipes[1])
    assert max_diff(again.images[1], out.images[1]) == 0
    for bad, fragment in ((dict(ratio=1.5), "--ratio got 1.5"), (dict(mode="blend"), "--mode got 'blend'"),
                          (dict(style="image:x.png"), "STYLE got")):
        with pytest.raises(LatentscapeError, match=fragment):
            mix(model, MixConfig(**{"content": "a cat", "style": "a dog", **bad}, **FAST))
