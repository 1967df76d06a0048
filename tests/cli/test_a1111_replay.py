"""AUTOMATIC1111/Forge PNGs as inputs: `replay a1111.png` renders their settings, A1111 sampler names work on
every verb, what cannot be honoured is named, and png:PATH keyframes take a PNG's prompt and seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from latentscape.io.recipe import read_recipe
from latentscape.workflows.keyframes import Keyframe, parse_keyframe
from cli_helpers import run, pixels

# A1111 v1.10.1's own infotext (see tests/io/test_a1111_infotext.py), with the size and steps scaled down to
# the tiny test model (32x32) and the noise made A1111's CPU RNG, the one latentscape reproduces.
REAL = ("cat portrait, \nNegative prompt: blurry\nSteps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 4, "
        "Seed: 2535254266, Size: 32x32, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, RNG: CPU, Version: v1.10.1")


def a1111_png(path, infotext):
    """A PNG as A1111 writes it: a 'parameters' text chunk and no latentscape recipe (black pixels: unused)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)
    Image.new("RGB", (32, 32)).save(path, pnginfo=info)
    return path


def test_replay_of_an_a1111_png_equals_generate_with_its_settings(tiny_sd, tmp_path, capsys):
    src = a1111_png(tmp_path / "a1111.png", REAL)
    code, out, err = run(capsys, "replay", src, "-o", tmp_path / "r.png", "--model", tiny_sd, "--quiet", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert (payload["source"], payload["workflow"], payload["sampler"], payload["seed"]) == ("a1111", "generate", "dpmpp_2m_karras", 2535254266)
    assert "made with model 'sd_xl_base_1.0' (hash 31e35c80fc)" in err and "RNG" not in err
    code, _, err = run(capsys, "generate", "cat portrait,", "--negative", "blurry", "--steps", 3, "--sampler", "DPM++ 2M",
                       "--schedule", "Karras", "--cfg", 4, "--seed", 2535254266, "--size", "32x32", "--model", tiny_sd,
                       "-o", tmp_path / "g.png", "--quiet")
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "r.png"), pixels(tmp_path / "g.png"))
    recipe = read_recipe(tmp_path / "r.png")  # the reproduction is a latentscape output, replayable as such
    assert recipe.params["sampler"] == "dpmpp_2m_karras" and recipe.params["prompt"] == "cat portrait,"


def test_a1111_defaults_bare_dpmpp_2m_is_karras_and_old_versions_uniform(tiny_sd, tmp_path, capsys):
    new = a1111_png(tmp_path / "new.png", REAL.replace("Schedule type: Karras, ", ""))
    old = a1111_png(tmp_path / "old.png", REAL.replace("Schedule type: Karras, ", "").replace("v1.10.1", "v1.6.0"))
    for src, sampler in ((new, "dpmpp_2m_karras"), (old, "dpmpp_2m_uniform")):
        code, out, err = run(capsys, "replay", src, "-o", tmp_path / f"{src.stem}-r.png", "--model", tiny_sd, "--quiet", "--json")
        assert code == 0, err
        assert json.loads(out)["sampler"] == sampler


def test_variation_seed_replays_as_vary(tiny_sd, tmp_path, capsys):
    src = a1111_png(tmp_path / "v.png", REAL.replace("RNG: CPU", "RNG: CPU, Variation seed: 77, Variation seed strength: 0.3"))
    code, out, err = run(capsys, "replay", src, "-o", tmp_path / "r.png", "--model", tiny_sd, "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["workflow"] == "vary"
    code, _, err = run(capsys, "vary", "cat portrait,@2535254266", "--variation-seed", 77, "--strength", 0.3, "-n", 1,
                       "--negative", "blurry", "--steps", 3, "--sampler", "dpmpp_2m_karras", "--cfg", 4, "--size", "32x32",
                       "--model", tiny_sd, "-o", tmp_path / "v-ref.png", "--quiet")
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "r.png"), pixels(tmp_path / "v-ref.png"))
    infotext = Image.open(tmp_path / "r.png").text["parameters"]
    assert "Variation seed: 77" in infotext and "Variation seed strength: 0.3" in infotext


def test_unhonoured_settings_warn_once_each_and_strict_refuses(tiny_sd, tmp_path, capsys):
    text = ("cat portrait <lora:add_detail:0.8>\nSteps: 2, Sampler: Euler a, CFG scale: 4, Seed: 5, Size: 32x32, Clip skip: 2, "
            "Hires upscale: 2, Hires upscaler: Latent, ADetailer model: face_yolov8n.pt, Face restoration: CodeFormer, Version: v1.10.1")
    src = a1111_png(tmp_path / "a.png", text)
    code, _, err = run(capsys, "replay", src, "-o", tmp_path / "s.png", "--model", tiny_sd, "--quiet", "--strict")
    assert code == 2 and not (tmp_path / "s.png").exists()
    assert err.startswith("latentscape replay: error: --strict: 'a.png' has settings latentscape cannot honour".replace("'a.png'", f"'{src}'"))
    code, _, err = run(capsys, "replay", src, "-o", tmp_path / "r.png", "--model", tiny_sd, "--quiet")
    assert code == 0 and (tmp_path / "r.png").exists()
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warnings[:6] == [
        "warning: the prompt's LoRA <lora:add_detail:0.8> is not applied: latentscape does not load LoRA weights.",
        "warning: hires fix (Hires upscale 2, Hires upscaler Latent) is not applied: latentscape renders the first pass only, at Size.",
        "warning: ADetailer (face_yolov8n.pt) is not applied: latentscape has no detection/inpainting pass.",
        "warning: no RNG field (A1111's default: GPU): latentscape's noise is A1111's CPU RNG, so the noise differs from the original's.",
        "warning: Clip skip 2 is not applied: latentscape's text encoders use their last layer.",
        "warning: fields latentscape does not read (Face restoration) may change the image in A1111.",
    ]
    assert read_recipe(tmp_path / "r.png").params["prompt"] == "cat portrait"  # the tag is not encoded as text
    code, _, err = run(capsys, "replay", src, "-o", tmp_path / "m.png", "--model-from-recipe")
    assert code == 2 and "names its model only by name and hash; pass --model" in err


@pytest.mark.parametrize("change, message", [
    (("DPM++ 2M", "DPM++ SDE"), "sampler got 'DPM++ SDE', which latentscape does not know; accepted: euler, euler_a"),
    (("Schedule type: Karras", "Schedule type: Align Your Steps"), "schedule got 'Align Your Steps', which is an A1111 schedule latentscape cannot reproduce"),
    (("Steps: 3", "Steps: lots"), "Steps 'lots' is not a whole number"),
])
def test_bad_a1111_settings_exit_2_before_any_model_loads(tmp_path, capsys, change, message):
    src = a1111_png(tmp_path / "bad.png", REAL.replace(*change))
    # a --model that does not exist: the settings are refused before anything loads
    code, _, err = run(capsys, "replay", src, "-o", tmp_path / "out.png", "--model", tmp_path / "no-such-model")
    assert code == 2 and not (tmp_path / "out.png").exists()
    assert err.count("\n") == 1 and message in err and err.startswith(f"latentscape replay: error: the A1111 parameters in '{src}'")


def test_a1111_sampler_names_on_generate_and_morph(tiny_sd, tmp_path, capsys):
    common = ["a cat", "--steps", 2, "--seed", 9, "--model", tiny_sd, "--quiet"]
    assert run(capsys, "generate", *common, "--sampler", "Euler a", "-o", tmp_path / "a.png")[0] == 0
    assert run(capsys, "generate", *common, "--sampler", "euler_a", "-o", tmp_path / "b.png")[0] == 0
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
    assert "Sampler: Euler a" in Image.open(tmp_path / "a.png").text["parameters"]
    code, _, err = run(capsys, "morph", "a cat", "a dog", "--frames", 3, "--steps", 2, "--sampler", "EULER A", "--model", tiny_sd,
                       "-o", tmp_path / "m.gif", "--quiet")
    assert code == 0, err
    code, _, err = run(capsys, "generate", *common, "--sampler", "Euler a", "--schedule", "Karras", "-o", tmp_path / "c.png")
    assert code == 2 and "the Karras schedule is not available with Euler a" in err and not (tmp_path / "c.png").exists()


def test_png_keyframes_take_prompt_seed_and_cfg_not_pixels(tiny_sd, tmp_path, capsys):
    a = a1111_png(tmp_path / "a.png", REAL)
    code, _, err = run(capsys, "generate", "a dog", "--seed", 11, "--cfg", 3, "--steps", 2, "--model", tiny_sd, "-o", tmp_path / "ours.png", "--quiet")
    assert code == 0, err
    assert parse_keyframe(f"png:{a}") == Keyframe(prompt="cat portrait,", seed=2535254266, cfg=4.0)
    assert parse_keyframe(f"png:{tmp_path / 'ours.png'}") == Keyframe(prompt="a dog", seed=11, cfg=3.0)  # a latentscape PNG: its recipe
    code, _, err = run(capsys, "morph", f"png:{a}", f"png:{tmp_path / 'ours.png'}", "--frames", 3, "--steps", 2, "--model", tiny_sd,
                       "--save-frames", tmp_path / "frames", "-o", tmp_path / "m.gif", "--quiet")
    assert code == 0, err
    # each end of the path is that PNG's prompt and seed rendered, not its pixels
    for frame, (prompt, seed, cfg) in (("frame_00000.png", ("cat portrait,", 2535254266, 4)), ("frame_00002.png", ("a dog", 11, 3))):
        code, _, err = run(capsys, "generate", prompt, "--seed", seed, "--cfg", cfg, "--steps", 2, "--model", tiny_sd,
                           "-o", tmp_path / f"ref-{frame}", "--quiet")
        assert code == 0, err
        assert np.array_equal(pixels(tmp_path / "frames" / frame), pixels(tmp_path / f"ref-{frame}"))
    plain = tmp_path / "plain.png"
    Image.new("RGB", (32, 32)).save(plain)
    code, _, err = run(capsys, "morph", f"png:{plain}", "a cat", "--model", tiny_sd, "-o", tmp_path / "x.gif")
    assert code == 2 and "holds no generation settings" in err and f"use image:{plain}" in err


@pytest.mark.parametrize("sampler", ["euler_a", "dpmpp_2m", "ddim", "euler_exponential"])
def test_a_latentscape_png_stripped_to_its_infotext_replays_to_the_same_pixels(tiny_sd, tmp_path, capsys, sampler):
    """The infotext latentscape writes, read back as A1111 reads it, is the job that made the image."""
    code, _, err = run(capsys, "generate", "a red cat", "--negative", "dog", "--seed", 21, "--cfg", 5.5, "--steps", 3,
                       "--sampler", sampler, "--model", tiny_sd, "-o", tmp_path / "ours.png", "--quiet")
    assert code == 0, err
    infotext = Image.open(tmp_path / "ours.png").text["parameters"]
    stripped = a1111_png(tmp_path / "stripped.png", infotext)  # the parameters chunk alone, as civitai re-uploads keep it
    code, _, err = run(capsys, "replay", stripped, "-o", tmp_path / "again.png", "--model", tiny_sd, "--quiet")
    assert code == 0, err
    assert not [line for line in err.splitlines() if line.startswith("warning: ") and "made with model" not in line]
    assert np.array_equal(pixels(tmp_path / "again.png"), pixels(tmp_path / "ours.png"))


def test_png_inputs_of_blend_are_prompt_and_seed(tiny_sd, tmp_path, capsys):
    a = a1111_png(tmp_path / "a.png", REAL)
    code, _, err = run(capsys, "blend", f"png:{a}", "a dog@3", "--weights", "1,0", "--steps", 2, "--model", tiny_sd,
                       "-o", tmp_path / "b.png", "--quiet")
    assert code == 0, err
    recipe = read_recipe(tmp_path / "b.png")
    first = recipe.params["inputs"][0]
    assert (first["prompt"], first["seed"], first["cfg"], first["image"]) == ("cat portrait,", 2535254266, 4.0, None)
    assert recipe.inputs == {}  # the PNG's pixels are not an input file of the job
