"""Prompt weighting and editing end to end: generate with A1111 syntax, bad prompts refused before the model
loads (CLI: one sentence, exit 2, nothing written), weights interpolating along a path."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from latentscape.core.prompt_syntax import PromptSyntaxError, interpolate_weighted
from latentscape.interfaces.cli import main
from latentscape.models.load import load
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.prompt_editing import stage_schedule, step_of
from latentscape.workflows.render import lerp_conditioning

FAST = dict(seed=3, steps=4, width=32, height=32, cfg=5.0)


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return load(str(tiny_sd))


def _latents(model, prompt, **kw):
    return generate(model, GenerateConfig(prompt=prompt, **{**FAST, **kw})).latents


def test_weighted_generate_on_the_embedded_model(embedded):
    kw = dict(seed=0, steps=3, cfg=5.0)
    plain = generate(embedded, GenerateConfig(prompt="cat face, twitter style", **kw))
    same = generate(embedded, GenerateConfig(prompt="(cat face:1.0), twitter style", **kw))
    zero = generate(embedded, GenerateConfig(prompt="(cat face:0), twitter style", **kw))
    assert torch.equal(same.latents, plain.latents)
    assert list(same.images[0].getdata()) == list(plain.images[0].getdata())
    assert not torch.allclose(zero.latents, plain.latents, atol=1e-3)
    assert same.recipes[0].params["prompt"] == "(cat face:1.0), twitter style"  # the prompt as written is kept


def test_prompt_editing_switches_at_the_a1111_step(sd):
    cat, dog = _latents(sd, "a cat"), _latents(sd, "a dog")
    assert torch.equal(_latents(sd, "a [cat:dog:3]"), cat)  # 4 steps: indices 0..3 all use "cat"
    assert torch.equal(_latents(sd, "a [cat:dog:0]"), dog)
    edited = _latents(sd, "a [cat:dog:1]")
    assert not torch.equal(edited, cat) and not torch.equal(edited, dog)
    assert torch.equal(_latents(sd, "a [cat:dog:0.25]"), edited)  # int(0.25 * 4) = step 1
    # the same as switching by hand with denoise's cond_schedule
    from latentscape.sampling import denoise
    from latentscape.workflows.common import encode
    from latentscape.core.noise import draw_noise, seeded_generators

    cond, uncond = encode(sd, ["a cat", "a dog"], [""], need_uncond=True)
    gens = seeded_generators([3])
    noise = draw_noise(gens, sd.latent_format.latent_shape(32, 32))
    by_hand = denoise(sd, noise, cond.select([0]), uncond.select([0]), steps=4, guidance_scale=5.0, generators=gens,
                      cond_schedule=lambda i, total: cond.select([0]) if i <= 1 else cond.select([1]))
    assert torch.allclose(by_hand, edited, atol=1e-6)


def test_editing_batches_and_steps_beyond_are_refused(sd):
    out = generate(sd, GenerateConfig(prompt="a [cat:dog:1]", batch=2, **FAST))
    assert torch.allclose(out.latents[:1], _latents(sd, "a [cat:dog:1]"), atol=1e-5)  # batch-size float noise only
    assert torch.allclose(out.latents[1:], _latents(sd, "a [cat:dog:1]", seed=4), atol=1e-5)
    with pytest.raises(PromptSyntaxError, match="after step 9, but steps is 4"):
        _latents(sd, "a [cat:dog:9]")
    with pytest.raises(PromptSyntaxError, match="negative"):
        _latents(sd, "a cat", negative="[ugly:blurry:2]")


def test_step_of_maps_two_evaluations_per_step():
    assert [step_of(i, 4, 4) for i in range(4)] == [0, 1, 2, 3]
    assert [step_of(i, 7, 4) for i in range(7)] == [0, 0, 1, 1, 2, 2, 3]  # heun: 2 * 4 - 1 evaluations
    a, b = object(), object()
    at = stage_schedule([(1, a), (3, b)], 4)
    assert [at(i, 4) for i in range(4)] == [a, a, b, b]


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("latentscape.models.load.load", refuse)


@pytest.mark.parametrize("argv, needle", [
    (["generate", "a (cat"], "'(' is never closed"),
    (["generate", "a cat)"], "')' at character 6 closes nothing"),
    (["generate", "(cat:big)"], "the weight in '(cat:big)' is 'big', not a finite number"),
    (["generate", "(cat:nan)"], "not a finite number"),
    (["generate", "a [cat:dog:30]", "--steps", "20"], "prompt editing switches after step 30, but steps is 20"),
    (["generate", "a cat", "--negative", "[ugly"], "negative '[ugly'"),
    (["generate", "a cat", "--negative", "[ugly:blurry:3]"], "read in the prompt of generate"),
    (["sweep", "a [cat:dog:2]", "--cfg", "1,3"], "uses prompt editing"),
])
def test_bad_prompts_exit_2_before_the_model_loads(no_model, tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code = main([*argv, "-o", "out.png", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and f"latentscape {argv[0]}: error: " in err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("name", ["sd", "embedded"])  # tiny: weights alone; embedded: with A1111's mean restoration
def test_weights_interpolate_along_a_path(name, request):
    """(cat:1.0) -> (cat:0.0): the frame at t may encode the prompt with the interpolated weight; that
    conditioning lies between the endpoints' and moves steadily from one to the other, as the lerp of the
    endpoint conditionings (what morph does today) does (embedded, "(cat face:1.0), twitter style" -> ":0.0":
    2.1-2.7 % of the endpoints' distance apart)."""
    sd = request.getfixturevalue(name)
    a, b = "a (cat:1.0) on a chair", "a (cat:0.0) on a chair"
    ca, cb = sd.encode_prompts([a]), sd.encode_prompts([b])
    assert interpolate_weighted(a, b, 0.5) == "a (cat:0.5) on a chair"
    span = (cb.embeds - ca.embeds).norm()
    dist = []
    for t in (0.25, 0.5, 0.75):
        mid = sd.encode_prompts([interpolate_weighted(a, b, t)]).embeds
        lerped = lerp_conditioning(ca, cb, t).embeds
        assert (mid - lerped).norm() < 0.05 * span  # weights interpolate as the conditioning lerp does
        dist.append((mid - ca.embeds).norm() / span)
    assert 0.2 < dist[0] < 0.3 and 0.45 < dist[1] < 0.55 and 0.7 < dist[2] < 0.8


def test_long_prompt_warning_is_shown_by_default_on_the_cli(tiny_sd3, tmp_path, capsys, monkeypatch):
    """One warning line on stderr, without --verbose (the CLI's own logging setup, not pytest's capture)."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # so the CLI's basicConfig installs its handler
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)
    long = " ".join(["cat"] * 300)
    code = main(["generate", long, "--model", str(tiny_sd3), "--steps", "1", "--size", "32x32",
                 "-o", str(tmp_path / "x.png"), "-q"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 0 and lines == ["WARNING latentscape.models.prompt_encoding: prompt is 301 T5 tokens; sd3 reads only "
                                   "the first 256, the rest is ignored"], err


def test_morph_between_prompts_of_different_chunk_counts(sd):
    """A BREAK (two chunks) keyframe and a one-chunk keyframe batch together: the shorter is padded with
    empty-prompt chunks (A1111's "pad prompt/negative prompt"), so the longest keyframe's frame is still its
    generate image; the padded one is close to, not equal to, its own (the padding is attended to)."""
    from latentscape.workflows.morph import MorphConfig, morph

    kfs = ("a cat BREAK a red chair@1", "a dog@2")
    out = morph(sd, MorphConfig(keyframes=kfs, frames=3, steps=2, cfg=5.0, width=32, height=32))
    assert len(out.images) == 3
    ref = generate(sd, GenerateConfig(prompt="a cat BREAK a red chair", seed=1, steps=2, cfg=5.0, width=32, height=32))
    first, own = np.asarray(out.images[0], dtype=int), np.asarray(ref.images[0], dtype=int)
    assert np.abs(first - own).max() <= 1  # the keyframe's own image (to 1/255, as morph's endpoint claim)


def test_math_with_a_chunked_prompt_and_a_short_negative(sd):
    from latentscape.workflows.latent_math import MathConfig, latent_math

    out = latent_math(sd, MathConfig(expression='"a cat BREAK a red chair" - "a cat" + "a dog"', seed=1, steps=2,
                                     cfg=5.0, width=32, height=32))
    plain = latent_math(sd, MathConfig(expression='"a red chair" - "a cat" + "a dog"', seed=1, steps=2,
                                       cfg=5.0, width=32, height=32))
    assert len(out.images) == 1 and not torch.equal(out.latents, plain.latents)


def test_vary_keeps_the_prompt_editing_of_its_source(sd):
    """A generated image with an edited prompt varies with the same schedule: strength 0 is the source."""
    from latentscape.workflows.vary import VaryConfig, vary

    source = _latents(sd, "a [cat:dog:1]")
    out = vary(sd, VaryConfig(prompt="a [cat:dog:1]", seed=3, n=2, strength=0.0, variation_seed=7,
                              steps=4, cfg=5.0, width=32, height=32))
    assert torch.allclose(out.latents[0], source[0], atol=1e-5) and torch.allclose(out.latents[1], source[0], atol=1e-5)
    moved = vary(sd, VaryConfig(prompt="a [cat:dog:1]", seed=3, n=1, strength=0.5, variation_seed=7,
                                steps=4, cfg=5.0, width=32, height=32))
    assert not torch.allclose(moved.latents[0], source[0], atol=1e-3)
