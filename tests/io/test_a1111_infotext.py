"""The A1111/Forge infotext parser: real infotexts, Forge keys, quoting, extra-network tags, untrusted input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentscape.errors import LatentscapeError
from latentscape.io.a1111_infotext import parse_infotext, parse_settings_line

# An A1111 v1.10.1 txt2img infotext as A1111 writes it (from a public PNG-metadata test suite).
A1111_1_10 = ("cat portrait, \nNegative prompt: \nSteps: 13, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 4, "
              "Seed: 2535254266, Face restoration: CodeFormer, Size: 1216x832, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, "
              "FP8 weight: Enable for SDXL, Cache FP16 weight for LoRA: True, Version: v1.10.1")
FORGE_FLUX = ('a (red:1.2) fox,\nin the snow <lora:flux_realism:0.8>, <lora:Detail Tweaker:1>\n'
              'Negative prompt: blurry, "jpeg"\nlowres\n'
              'Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 42, '
              'Size: 896x1152, Model hash: 7d3d1873b6, Model: flux1-dev-bnb-nf4-v2, RNG: CPU, Clip skip: 2, '
              'Variation seed: 7, Variation seed strength: 0.25, ADetailer model: face_yolov8n.pt, '
              'ADetailer prompt: "a face, smiling: happy", Hires upscale: 2, Hires upscaler: Latent, '
              'Lora hashes: "flux_realism: 2b8ea4b3c5e1, Detail Tweaker: 7c6bad76eb54", '
              'Version: f2.0.1v1.10.1-previous-313-g8a042934')


def test_a_real_a1111_infotext():
    s = parse_infotext(A1111_1_10)
    assert (s.prompt, s.negative) == ("cat portrait,", "")
    assert (s.steps, s.sampler, s.schedule_type, s.cfg, s.seed) == (13, "DPM++ 2M", "Karras", 4.0, 2535254266)
    assert (s.width, s.height, s.rng, s.clip_skip, s.networks) == (1216, 832, None, None, ())
    assert s.fields["Model hash"] == "31e35c80fc" and s.fields["FP8 weight"] == "Enable for SDXL"
    assert s.a1111_version() == (1, 10)


def test_forge_keys_quoting_multiline_and_lora_tags():
    s = parse_infotext(FORGE_FLUX)
    assert s.prompt == "a (red:1.2) fox,\nin the snow ,"  # tags cut out and nothing else, as A1111 encodes it
    assert s.negative == 'blurry, "jpeg"\nlowres'
    assert [(n.kind, n.name, n.weight) for n in s.networks] == [("lora", "flux_realism", 0.8), ("lora", "Detail Tweaker", 1.0)]
    assert (s.cfg, s.distilled_cfg, s.rng, s.clip_skip) == (1.0, 3.5, "CPU", 2)
    assert (s.variation_seed, s.variation_strength) == (7, 0.25)
    assert s.fields["ADetailer prompt"] == "a face, smiling: happy"  # a JSON-quoted value keeps its commas and colons
    assert s.fields["Lora hashes"] == "flux_realism: 2b8ea4b3c5e1, Detail Tweaker: 7c6bad76eb54"
    assert s.fields["Hires upscaler"] == "Latent" and s.a1111_version() == (1, 10)


def test_escaped_quotes_and_what_is_not_a_settings_line():
    assert parse_settings_line('Steps: 2, Note: "say \\"hi\\", ok", Seed: 3') == {"Steps": "2", "Note": 'say "hi", ok', "Seed": "3"}
    assert parse_settings_line("a photo: by someone, style: oil") is None  # two pairs: a prompt line
    assert parse_settings_line("masterpiece, best quality, 1girl") is None
    # a prompt whose last line looks nothing like settings is all prompt, and that is refused (no settings)
    with pytest.raises(LatentscapeError, match="^'x.png' has no A1111 settings line"):
        parse_infotext("a cat\nNegative prompt: dog", source="'x.png'")


@pytest.mark.parametrize("line, message", [
    ("Steps: many, Sampler: Euler, Seed: 1", "Steps 'many' is not a whole number"),
    ("Steps: 20, Sampler: Euler, CFG scale: nan", "CFG scale nan is out of range"),
    ("Steps: 20, Sampler: Euler, Seed: 123456789012345678901234567890", "Seed has 30 digits"),
    ("Steps: 20, Sampler: Euler, Size: 512by512", "Size '512by512' is not WIDTHxHEIGHT"),
    ("Steps: 20, Sampler: Euler, Size: 100000x100000", "Size 100000x100000 is .* above the"),
    ("Steps: 20, Sampler: Euler, Variation seed strength: 3", "Variation seed strength 3 is out of range; expected 0 to 1"),
])
def test_bad_values_are_one_sentence_naming_the_field(line, message):
    with pytest.raises(LatentscapeError, match=f"^'x.png': {message}"):
        parse_infotext("a cat\n" + line, source="'x.png'")


def test_size_limits_and_bad_tags(monkeypatch):
    monkeypatch.setenv("LATENTSCAPE_MAX_TEXT_CHUNK", "1000")
    with pytest.raises(LatentscapeError, match="is 2.* bytes; the limit is 1000"):
        parse_infotext("a" * 2000 + "\nSteps: 1, Sampler: Euler, Seed: 1", source="'x.png'")
    monkeypatch.delenv("LATENTSCAPE_MAX_TEXT_CHUNK")
    with pytest.raises(LatentscapeError, match="tag '<lora:x:heavy>' has a weight that is not a number"):
        parse_infotext("<lora:x:heavy>\nSteps: 1, Sampler: Euler, Seed: 1")
    with pytest.raises(LatentscapeError, match="more than 500 fields"):
        parse_infotext("a\n" + ", ".join(f"K{i}: {i}" for i in range(600)))


_FRAGMENTS = st.sampled_from(["Steps", "Seed", "Size", "Sampler", "CFG scale", ": ", ", ", '"', "\\", "\n", "Negative prompt:",
                              "<lora:", ">", ":", "1e999", "-1", "64x64", "nan", "Euler a", "\x00", "é"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_FRAGMENTS, max_size=40).map("".join)))
def test_any_text_is_parsed_or_refused_in_one_sentence(text):
    try:
        s = parse_infotext(text)
    except LatentscapeError as exc:
        assert "\n" not in str(exc)
    else:
        assert s.steps is None or 1 <= s.steps <= 10000
        assert s.seed is None or -1 <= s.seed
        assert (s.width is None) == (s.height is None)
