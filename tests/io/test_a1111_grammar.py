"""Every verb's outputs parse under AUTOMATIC1111's documented infotext grammar, field by field.

The parser below is written here from A1111's description of its "parameters" text, independently of
latentscape's writer: the prompt is every line before the one starting ``Negative prompt:``; the negative
prompt runs from there to the last line; the last line holds ``Key: value`` pairs separated by commas
(a key starts with a word character and has word characters, spaces, ``-`` and ``/``; a value is either
double-quoted JSON or runs to the next comma), and it only counts as parameters when it has at least three
such pairs. civitai, sd-parsers and sd-prompt-reader split that line on commas without honouring quotes,
so every line must also read the same when split that naive way.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pytest
from PIL import Image

import latentscape
from latentscape.io.recipe import save_png
from latentscape.models.model_hash import model_hash
from latentscape.models.registry import EMBEDDED_DIR

PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
A1111_SAMPLERS = {"Euler", "Euler a", "Heun", "DDIM", "DPM++ 2M", "UniPC", "LCM"}
A1111_SCHEDULES = {"Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
                   "Align Your Steps", "Simple", "Normal", "DDIM", "Beta"}
FAST = dict(steps=2, width=32, height=32)


def parse_infotext(text: str) -> tuple[str, str, dict[str, str]]:
    """(prompt, negative prompt, fields) as A1111's grammar reads ``text``."""
    lines = text.strip().split("\n")
    fields: dict[str, str] = {}
    if len(PARAM.findall(lines[-1])) >= 3:
        for key, value in PARAM.findall(lines[-1]):
            fields[key.strip()] = json.loads(value) if value.startswith('"') else value.strip()
        lines = lines[:-1]
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    return "\n".join(prompt), "\n".join(negative), fields


def naive_fields(text: str) -> dict[str, str]:
    """The last line split the way civitai / sd-parsers / sd-prompt-reader do: on commas, then on ': '."""
    return dict(part.strip().split(": ", 1) for part in text.strip().split("\n")[-1].split(","))


def check(text: str, *, prompt: str, seed: int, size: str = "32x32", hashed: bool = True, **fields) -> dict[str, str]:
    """Parse ``text`` and check every field A1111 needs; ``fields`` are further expected values."""
    got_prompt, _, parsed = parse_infotext(text)
    assert parsed, f"no parameters line in {text!r}"
    assert naive_fields(text) == parsed, "a value holds a comma or quote that naive parsers would cut"
    assert '"' not in text.split("\n")[-1]
    assert got_prompt == prompt and (prompt or not fields.get("nonempty"))
    assert int(parsed["Seed"]) == seed
    assert parsed["RNG"] == "CPU"
    assert parsed["Size"] == size and re.fullmatch(r"\d+x\d+", parsed["Size"])
    assert int(parsed["Steps"]) >= 1
    assert parsed["Sampler"] in A1111_SAMPLERS
    assert parsed.get("Schedule type", "Automatic") in A1111_SCHEDULES
    float(parsed["CFG scale"])
    assert parsed["Version"].startswith("latentscape ")
    if hashed:
        assert re.fullmatch(r"[0-9a-f]{10}", parsed["Model hash"])
    for key, value in fields.items():
        assert parsed.get(key) == str(value), (key, parsed.get(key), value)
    return parsed


def png_text(tmp_path, image: Image.Image, recipe, name: str) -> str:
    """The ``parameters`` chunk of the PNG written for ``recipe``."""
    path = save_png(image, tmp_path / f"{name}.png", recipe)
    with Image.open(path) as im:
        return im.text["parameters"]


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def test_model_hash_is_the_sha256_of_the_denoiser_file_and_the_embedded_model_has_one(sd, tiny_sd):
    unet = tiny_sd / "unet" / "diffusion_pytorch_model.safetensors"
    assert sd.model_hash == hashlib.sha256(unet.read_bytes()).hexdigest()[:10]
    weights = EMBEDDED_DIR / "unet" / "diffusion_pytorch_model.safetensors"
    assert model_hash(EMBEDDED_DIR) == hashlib.sha256(weights.read_bytes()).hexdigest()[:10]


def test_model_hash_of_a_single_file_is_that_files(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"not really weights, but bytes to hash")
    assert model_hash(f) == hashlib.sha256(f.read_bytes()).hexdigest()[:10]
    f.write_bytes(b"changed")  # size and mtime change: the cache does not answer for the old content
    assert model_hash(f) == hashlib.sha256(b"changed").hexdigest()[:10]


def test_generate_img2img_and_vary(sd, tmp_path):
    from latentscape.workflows.generate import GenerateConfig, generate
    from latentscape.workflows.vary import VaryConfig, vary

    out = generate(sd, GenerateConfig(prompt="a cat, sitting", negative="blurry", seed=5, cfg=6.0, batch=2, **FAST))
    for i, (im, r) in enumerate(zip(out.images, out.recipes)):
        text = png_text(tmp_path, im, r, f"g{i}")
        check(text, prompt="a cat, sitting", seed=5 + i, **{"CFG scale": 6, "Schedule type": "DDIM"})
        assert parse_infotext(text)[1] == "blurry"
    out.images[0].save(tmp_path / "in.png")
    img = generate(sd, GenerateConfig(prompt="a dog", seed=2, init_image=str(tmp_path / "in.png"), strength=0.5, steps=2))
    check(img.recipes[0].infotext(), prompt="a dog", seed=2, **{"Denoising strength": 0.5})
    v = vary(sd, VaryConfig(prompt="a cat", seed=3, n=2, strength=0.3, variation_seed=9, sampler="dpmpp_2m", **FAST))
    for i, r in enumerate(v.recipes):
        # DPM++ 2M without Karras must say so: a bare "DPM++ 2M" is Karras in A1111 >= 1.9
        check(png_text(tmp_path, v.images[i], r, f"v{i}"), prompt="a cat", seed=3,
              **{"Variation seed": 9 + i, "Variation seed strength": 0.3, "Sampler": "DPM++ 2M", "Schedule type": "DDIM"})


def test_blend_mix_and_math(sd, tmp_path):
    from latentscape.workflows.blend import BlendConfig, blend
    from latentscape.workflows.latent_math import MathConfig, latent_math
    from latentscape.workflows.mix import MixConfig, mix

    b = blend(sd, BlendConfig(inputs=("a cat, fluffy@4", "a dog@6"), weights=(1.0, 3.0), cfg=5.0, **FAST))
    check(png_text(tmp_path, b.images[0], b.recipes[0], "b"), prompt="a dog", seed=6)
    m = mix(sd, MixConfig(content="a house", style="oil painting, thick", ratio=(0.0, 0.5, 1.0), mode="schedule", seed=3,
                          steps=4, width=32, height=32))
    prompts = [parse_infotext(r.infotext())[0] for r in m.recipes]
    # A1111 prompt editing: content for the first N steps, then style
    assert prompts == ["a house", "[a house:oil painting, thick:2]", "oil painting, thick"]
    for i, r in enumerate(m.recipes):
        check(png_text(tmp_path, m.images[i], r, f"m{i}"), prompt=prompts[i], seed=3)
    e = mix(sd, MixConfig(content="a house", style="a boat", ratio=(0.2, 0.8), mode="embed", seed=3, **FAST))
    assert [parse_infotext(r.infotext())[0] for r in e.recipes] == ["a house", "a boat"]
    x = latent_math(sd, MathConfig(expression='"a red cat" - "red" + 2 * "blue"', seed=8, **FAST))
    parsed = check(png_text(tmp_path, x.images[0], x.recipes[0], "x"), prompt="blue", seed=8)
    assert "Math" in parsed


def test_grids_every_cell_its_own_infotext(sd, tmp_path):
    from latentscape.workflows.explore import ExploreConfig, explore
    from latentscape.workflows.latent_map import MapConfig, latent_map
    from latentscape.workflows.sweep import SweepConfig, sweep

    ex = explore(sd, ExploreConfig(point="a tree, green@7", grid="3x3", radius=0.4, **FAST))
    for i, r in enumerate(ex.recipes):
        parsed = check(png_text(tmp_path, ex.images[i], r, f"e{i}"), prompt="a tree, green", seed=7)
        assert "Variation strength" not in parsed  # not an A1111 key
    assert float(parse_infotext(ex.recipes[4].infotext())[2]["Explore strength"]) == 0  # the centre is the point
    check(png_text(tmp_path, ex.info["sheet"], ex.info["sheet_recipe"], "es"), prompt="a tree, green", seed=7,
          size="32x32")

    mp = latent_map(sd, MapConfig(corners=("a cat@1", "a dog@2", "a cow@3", "a pig@4"), grid="2x2", **FAST))
    for i, (r, (p, s)) in enumerate(zip(mp.recipes, [("a cat", 1), ("a dog", 2), ("a cow", 3), ("a pig", 4)])):
        check(png_text(tmp_path, mp.images[i], r, f"map{i}"), prompt=p, seed=s)
    check(mp.info["sheet_recipe"].infotext(), prompt="a cow", seed=3)

    sw = sweep(sd, SweepConfig(prompts=("a fox", "a owl"), cfgs=(1.0, 4.0), seeds=2, seed=10, adherence="none", **FAST))
    expected = [(p, s, c) for p in ("a fox", "a owl") for s in (10, 11) for c in (1, 4)]
    for i, (r, (p, s, c)) in enumerate(zip(sw.recipes, expected)):
        check(png_text(tmp_path, sw.images[i], r, f"s{i}"), prompt=p, seed=s, **{"CFG scale": c})
    for view in ("sheet", "chart"):
        check(sw.info[f"{view}_recipe"].infotext(), prompt="a owl", seed=10)


def test_morph_frames_sheet_and_video_carry_their_infotext(sd, tmp_path):
    import imageio_ffmpeg

    from latentscape.io.recipe import read_recipe
    from latentscape.workflows.morph import MorphConfig, render_morph

    config = MorphConfig(keyframes=("a cat, small@1", "a dog@2"), frames=3, steps=2, cfg=5.0, batch_size=3, **{"width": 32, "height": 32})
    out = render_morph(sd, config, tmp_path / "m.mp4", save_frames=tmp_path / "frames", contact_sheet=tmp_path / "sheet.png")
    frames = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(frames) == 3
    expected = [("a cat, small", 1), ("a dog", 2), ("a dog", 2)] if out.positions[1] > 0.5 else [("a cat, small", 1), ("a cat, small", 1), ("a dog", 2)]
    for i, (path, (p, s)) in enumerate(zip(frames, expected)):
        with Image.open(path) as im:
            parsed = check(im.text["parameters"], prompt=p, seed=s)
        assert parsed["Morph frame"] == str(i)
        assert read_recipe(path).batch_index == i and read_recipe(path).workflow == "morph"
    with Image.open(tmp_path / "sheet.png") as im:
        check(im.text["parameters"], prompt="a cat, small", seed=1)
    dump = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "m.mp4"), "-f", "ffmetadata", "-"],
                          capture_output=True, text=True, check=True).stdout
    # FFMETADATA escapes = ; # \ and newlines with a backslash
    tags, key = {}, None
    for line in re.split(r"(?<!\\)\n", dump):
        if "=" in line and not line.startswith(";"):
            k, v = re.split(r"(?<!\\)=", line, maxsplit=1)
            tags[k] = re.sub(r"\\(.)", r"\1", v, flags=re.S)
    check(tags["parameters"], prompt="a cat, small", seed=1)
    assert json.loads(tags["comment"])["workflow"] == "morph"


def test_flux_guidance_is_distilled_cfg(request, tmp_path):
    from latentscape.workflows.generate import GenerateConfig, generate

    flux = latentscape.load(str(request.getfixturevalue("tiny_flux")))
    out = generate(flux, GenerateConfig(prompt="a lamp", seed=1, cfg=3.5, **FAST))
    check(out.recipes[0].infotext(), prompt="a lamp", seed=1, **{"CFG scale": 1, "Distilled CFG Scale": 3.5,
                                                                    "Schedule type": "Simple"})


def test_old_recipes_stay_readable_and_untrusted_infotext_fields_are_checked():
    from latentscape.io.recipe import Recipe

    old = {"workflow": "generate", "model": "embedded", "family": "sd", "seed": 3, "sampler_label": "Euler",
           "params": {"prompt": "a cat", "steps": 2, "sampler": "euler", "cfg": 7.5, "width": 64, "height": 64},
           "infotext_extra": {"Blend": 'a, "b": c'}, "versions": {"latentscape": "0.1.0"}}
    recipe = Recipe.from_json(json.dumps(old))  # written before Schedule type / Model hash / prompt lines existed
    parsed = check(recipe.infotext(), prompt="a cat", seed=3, size="64x64", hashed=False)
    assert parsed["Blend"] == "a; 'b' - c"  # free of the characters parsers cut on
    planted = Recipe.from_json(json.dumps({**old, "model_hash": "x, Seed: 9", "prompt_line": 5, "schedule_label": ["Karras"]}))
    assert (planted.model_hash, planted.prompt_line, planted.schedule_label) == ("", None, "")
    assert int(parse_infotext(planted.infotext())[2]["Seed"]) == 3
