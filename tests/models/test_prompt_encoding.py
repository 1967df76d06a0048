"""Weighted and long prompts on the CLIP families (tiny SD, SDXL and the embedded model), T5 families' warnings."""

import logging

import pytest
import torch

from latentscape.core.prompt_syntax import Chunk, PromptSyntaxError
from latentscape.models.load import load
from latentscape.models.prompt_encoding import emphasis, encode_weighted
from latentscape.workflows.common import encode

PLAIN = "a photo of a cat sitting on a red chair"
LONG = ", ".join([PLAIN] * 10)  # 109 tokens: two chunks (the first cut after a comma)


@pytest.fixture(scope="module")
def clip_models(tiny_sd, tiny_sdxl, embedded):
    return {"sd": load(str(tiny_sd)), "sdxl": load(str(tiny_sdxl)), "embedded": embedded}


@pytest.mark.parametrize("name", ["sd", "sdxl", "embedded"])
def test_plain_prompt_is_bit_identical_to_diffusers_encode_prompt(clip_models, name):
    model = clip_models[name]
    prompt = PLAIN if name != "embedded" else "grinning face, google style"
    ref_embeds, *rest = (model.pipe.encode_prompt([prompt], device=model.device, num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False))
    cond = model.encode_prompts([prompt])
    assert torch.equal(cond.embeds, ref_embeds.to(model.dtype))
    if name == "sdxl":
        assert torch.equal(cond.pooled, rest[1].to(model.dtype))
    # the chunked/weighted path gives the same bits for a plain prompt that fits, so switching paths is seamless
    embeds, pooled = encode_weighted(model.clip_encoders(), prompt, model.device)
    assert torch.equal(embeds.to(model.dtype), cond.embeds)
    if name == "sdxl":
        assert torch.equal(pooled.to(model.dtype), cond.pooled)


@pytest.mark.parametrize("name", ["sd", "sdxl", "embedded"])
def test_weight_one_equals_plain_and_weight_zero_differs(clip_models, name):
    model = clip_models[name]
    plain = model.encode_prompts(["cat face"])
    assert torch.equal(model.encode_prompts(["(cat face:1.0)"]).embeds, plain.embeds)
    zero = model.encode_prompts(["(cat face:0)"])
    assert zero.embeds.shape == plain.embeds.shape and not torch.allclose(zero.embeds, plain.embeds)
    up = model.encode_prompts(["(cat face:1.5)"])
    assert not torch.allclose(up.embeds, plain.embeds)
    if name == "sdxl":  # the pooled vector is CLIP's own (A1111 weights the token embeddings only)
        assert torch.equal(zero.pooled, plain.pooled)


def test_emphasis_scales_tokens_and_restores_the_mean():
    torch.manual_seed(0)
    z = torch.rand(1, 6, 4) + 0.5  # a healthy mean: A1111's restoration applies
    out = emphasis(z, Chunk((7, 8), (1.3, 0.8)))
    assert torch.allclose(out.mean(), z.mean())
    ratio = out / z  # token 0 is the start token (weight 1), tokens 1 and 2 are weighted, the rest padding
    k = ratio[0, 0, 0]
    assert k != 1 and torch.allclose(ratio[0, 1], 1.3 * k) and torch.allclose(ratio[0, 2], 0.8 * k)
    assert torch.allclose(ratio[0, 3:], k.expand(3, 4))
    assert emphasis(z, Chunk((7, 8), (1.0, 1.0))) is z


def test_emphasis_skips_an_ill_conditioned_mean_restoration():
    torch.manual_seed(0)
    z = torch.randn(1, 6, 4)
    z = z - z.mean()  # mean ~0, as after an untrained LayerNorm: old/new mean is noise
    out = emphasis(z, Chunk((7,), (0.0,)))
    assert torch.equal(out[0, 1], torch.zeros(4)) and torch.equal(out[0, 2:], z[0, 2:])  # the weight alone


@pytest.mark.parametrize("name", ["sd", "sdxl"])
def test_long_prompt_is_chunked_not_cut(clip_models, name):
    model = clip_models[name]
    cond = model.encode_prompts([LONG])
    assert cond.embeds.shape[1] == 2 * 77
    cut = model.pipe.encode_prompt([LONG], device=model.device, num_images_per_prompt=1, do_classifier_free_guidance=False)[0]
    assert not torch.equal(cond.embeds[:, :77], cut)  # cut at the last comma before token 75, not at 75
    # the first chunk is the first six repeats up to their comma (66 of 75 tokens), wrapped and padded on its own
    head = model.encode_prompts([", ".join([PLAIN] * 6) + ","])
    assert torch.equal(cond.embeds[:, :77], head.embeds)
    tail = model.encode_prompts([", ".join([PLAIN] * 4)])
    assert torch.equal(cond.embeds[:, 77:], tail.embeds)
    if name == "sdxl":
        assert torch.equal(cond.pooled, head.pooled)  # pooled from the first chunk


def test_break_starts_a_new_chunk_and_lengths_match_for_batching(clip_models):
    model = clip_models["sd"]
    two = model.encode_prompts(["a cat BREAK a dog"])
    assert two.embeds.shape[1] == 154
    cat, dog = model.encode_prompts(["a cat"]).embeds, model.encode_prompts(["a dog"]).embeds
    assert torch.equal(two.embeds[:, :77], cat) and torch.equal(two.embeds[:, 77:], dog)
    # a long prompt with a short negative: both come out at 154 tokens, the negative padded by empty chunks
    cond, uncond = encode(model, ["a cat BREAK a dog", "a cat"], ["ugly"], need_uncond=True)
    assert cond.embeds.shape[1] == uncond.embeds.shape[1] == 154
    empty = model.encode_prompts([""]).embeds
    assert torch.equal(uncond.embeds[:, 77:], empty)
    assert torch.equal(cond.embeds[1:, :77], cat) and torch.equal(cond.embeds[1:, 77:], empty)
    # a batch of one call: plain and chunked prompts together
    mixed = model.encode_prompts(["a cat", "a cat BREAK a dog"])
    assert torch.equal(mixed.embeds[0, :77], cat[0]) and torch.equal(mixed.embeds[1], two.embeds[0])


def test_sdxl_empty_negative_stays_zero_when_padded(clip_models):
    model = clip_models["sdxl"]
    cond, uncond = encode(model, ["a cat BREAK a dog"], [""], need_uncond=True)
    assert uncond.embeds.shape == cond.embeds.shape and not uncond.embeds.any()


@pytest.mark.parametrize("bad, what", [("a (cat", "never closed"), ("(cat:x)", "not a finite number"),
                                       ("a [cat:dog:3]", "prompt editing")])
def test_bad_prompts_are_refused_with_the_field(clip_models, bad, what):
    model = clip_models["sd"]
    with pytest.raises(PromptSyntaxError, match=what):
        model.encode_prompts([bad])
    with pytest.raises(PromptSyntaxError, match="^negative"):
        model.encode_negatives([bad])


def test_t5_families_warn_when_cut_and_drop_weights(tiny_sd3, tiny_sd3_no_t5, caplog):
    sd3 = load(str(tiny_sd3))
    long = " ".join(["cat"] * 300)
    with caplog.at_level(logging.WARNING, logger="latentscape"):
        sd3.encode_prompts([long])
    assert any("T5 tokens" in r.message and "256" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="latentscape"):
        weighted = sd3.encode_prompts(["a (cat:1.3) face"])
    assert any("token weights" in r.message for r in caplog.records)
    assert torch.equal(weighted.embeds, sd3.encode_prompts(["a cat face"]).embeds)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="latentscape"):
        sd3.encode_prompts(["a cat face"])
    assert not caplog.records
    no_t5 = load(str(tiny_sd3_no_t5))
    with caplog.at_level(logging.WARNING, logger="latentscape"):
        no_t5.encode_prompts([" ".join(["cat"] * 100)])
    assert any("without T5" in r.message for r in caplog.records)
