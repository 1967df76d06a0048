"""generate from a latent file: an inversion renders its image again (or an edit of it), a plain latent file is
img2img in latent space; foreign, damaged and hostile files are refused in one sentence; replay checks the file."""

import json
import struct

import numpy as np
import pytest
import torch
from PIL import Image

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.io.latents import save_latents
from latentscape.workflows.common import decode_images
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.invert import invert_image, reconstruct_file
from latentscape.workflows.inversion_file import save_inversion
from latentscape.workflows.latents import encode_image
from latentscape.workflows.replay import check_inputs, replay

STEPS = 4


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def _px(images):
    return np.stack([np.asarray(i) for i in images]).astype(np.int16)


def picture(path, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def inversion_file(sd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("inv")
    result = invert_image(sd, picture(folder / "a.png"), prompt="a cat", steps=STEPS, cache=False)
    path = folder / "a.safetensors"
    save_inversion(path, result.inversion, result.image_latents, result.meta, result.info)
    return path, result


def from_inversion(path, **changes):
    return GenerateConfig(**{"prompt": None, "from_latents": str(path), "steps": STEPS, "sampler": "ddim", **changes})


def test_an_unchanged_inversion_renders_its_image_again(sd, inversion_file):
    path, result = inversion_file
    out = generate(sd, from_inversion(path))
    assert np.array_equal(_px(out.images), _px(reconstruct_file(sd, path)))  # what `decode` of the file gives
    assert (out.latents - result.image_latents).abs().max() < 1e-4  # exact: the image's latents to float error
    assert np.abs(_px(out.images) - _px(decode_images(sd, result.image_latents))).max() <= 1  # its VAE round trip
    r = out.recipes[0]
    assert r.params["prompt"] == "a cat" and r.params["cfg"] == 1.0 and r.params["strength"] == 1.0 and r.seed == 0
    assert r.inputs["from_latents"]["path"] == str(path) and len(r.inputs["from_latents"]["sha256"]) == 64
    text = r.infotext()
    assert "Steps: 4, Sampler: DDIM" in text and f"Start latents: exact inversion {r.inputs['from_latents']['sha256'][:10]}" in text


def test_another_prompt_or_cfg_edits_the_inversion(sd, inversion_file):
    path, _ = inversion_file
    same = _px(generate(sd, from_inversion(path)).images)
    prompt = _px(generate(sd, from_inversion(path, prompt="a dog")).images)
    cfg = _px(generate(sd, from_inversion(path, cfg=4.0)).images)
    assert np.abs(prompt - same).mean() > 0.5 and np.abs(cfg - same).mean() > 0.5
    edited = generate(sd, from_inversion(path, prompt="a dog")).recipes[0]
    assert edited.params["prompt"] == "a dog" and edited.infotext().startswith("a dog\n")


@pytest.mark.parametrize("changes, message", [
    ({"steps": 5}, "steps got 5, but '.*' is an exact inversion with 4 ddim steps, which replays only with those: pass steps=4"),
    ({"sampler": "euler"}, "sampler got 'euler', but .* pass sampler='ddim'"),
    ({"seed": 7}, "seed got 7, which plays no part with the inversion"),
    ({"batch": 2}, r"batch got 2; the file '.*' holds 1 item\(s\)"),
    ({"width": 64, "height": 64}, "size 64x64 differs from the 32x32 of the file"),
])
def test_what_an_inversion_cannot_replay_is_refused_naming_what_it_was_made_with(sd, inversion_file, changes, message):
    path, _ = inversion_file
    with pytest.raises(LatentscapeError, match=message) as info:
        generate(sd, from_inversion(path, **changes))
    assert info.value.field in ("steps", "sampler", "seed", "batch", "width")


def test_a_flow_models_inversion_renders_its_image_again(tiny_sd3, tmp_path):
    sd3 = latentscape.load(str(tiny_sd3))
    result = invert_image(sd3, picture(tmp_path / "f.png", seed=2), steps=3, cache=False)
    path = save_inversion(tmp_path / "f.safetensors", result.inversion, result.image_latents, result.meta, result.info)
    out = generate(sd3, GenerateConfig(prompt=None, from_latents=str(path), steps=3, sampler="euler"))  # flow_euler here
    assert np.array_equal(_px(out.images), _px(reconstruct_file(sd3, path)))
    assert (out.latents - result.image_latents).abs().max() < 1e-4 and out.recipes[0].params["sampler"] == "euler"


def test_an_inversion_of_another_family_is_refused(tiny_sd3, inversion_file):
    path, _ = inversion_file
    sd3 = latentscape.load(str(tiny_sd3))
    with pytest.raises(LatentscapeError, match=r"holds an inversion of a sd model .* but model .* is sd3 .*use model='") as info:
        generate(sd3, GenerateConfig(prompt=None, from_latents=str(path), steps=STEPS, sampler="flow_euler"))
    assert info.value.field == "model"


def _raw_safetensors(path, header: dict, data: bytes = b"", claim: int | None = None):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if claim is None else claim) + text + data)
    return path


def _meta(**extra):
    meta = {"family": "sd", "model": "x", "channels": 4, "scale": 0.18215, "shift": 0.0, "width": 32, "height": 32, "space": "inversion"}
    return {"__metadata__": {**{k: json.dumps(v) for k, v in meta.items()}, **extra}}


@pytest.mark.parametrize("name, build, message", [
    ("truncated", lambda p, good: p.write_bytes(good.read_bytes()[:100]), "is not a valid .safetensors file"),
    ("huge-header", lambda p, good: _raw_safetensors(p, {}, claim=2**40), "announce a"),
    ("not-safetensors", lambda p, good: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64), "is not a valid .safetensors file"),
    ("no-latents", lambda p, good: _raw_safetensors(p, {"other": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
     "has no 'latents' tensor"),
    ("no-metadata", lambda p, good: _raw_safetensors(p, {"latents": {"dtype": "F32", "shape": [1, 4, 4, 4], "data_offsets": [0, 256]}}, b"\0" * 256),
     "lacks latentscape metadata"),
    ("bad-record", lambda p, good: _raw_safetensors(
        p, {"latents": {"dtype": "F32", "shape": [1, 4, 4, 4], "data_offsets": [0, 256]}, **_meta(inversion="{nope")}, b"\0" * 256),
     "its inversion record is not JSON"),
    ("exact-without-step-noise", lambda p, good: _raw_safetensors(
        p, {"latents": {"dtype": "F32", "shape": [1, 4, 4, 4], "data_offsets": [0, 256]},
            "image_latents": {"dtype": "F32", "shape": [1, 4, 4, 4], "data_offsets": [256, 512]},
            **_meta(inversion=json.dumps({"method": "exact", "sampler": "ddim", "steps": 4, "cfg": 1.0}))}, b"\0" * 512),
     "an exact inversion needs float32 'step_noise'"),
])
def test_damaged_and_hostile_files_are_refused_before_any_tensor_is_read(sd, inversion_file, tmp_path, monkeypatch, name, build, message):
    import safetensors

    good, _ = inversion_file
    path = tmp_path / f"{name}.safetensors"
    build(path, good)
    monkeypatch.setattr(safetensors, "safe_open", lambda *a, **k: pytest.fail("a tensor was read"))
    with pytest.raises(LatentscapeError, match=message):
        generate(sd, from_inversion(path))


def test_a_missing_file_is_one_sentence(sd, tmp_path):
    with pytest.raises(LatentscapeError, match="from_latents '.*nothing.safetensors' does not exist") as info:
        generate(sd, from_inversion(tmp_path / "nothing.safetensors"))
    assert info.value.field == "from_latents"


@pytest.fixture(scope="module")
def latent_file(sd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lat")
    image = picture(folder / "b.png", seed=1)
    latents, meta = encode_image(sd, image)
    path = save_latents(folder / "b.safetensors", latents, meta)
    return path, image, latents


def test_a_latent_file_is_img2img_in_latent_space(sd, latent_file):
    path, image, latents = latent_file
    kept = generate(sd, GenerateConfig(prompt="a cat", from_latents=str(path), strength=0.0, steps=STEPS))
    assert np.array_equal(_px(kept.images), _px(decode_images(sd, latents)))  # strength 0: the latents' decode
    from_file = generate(sd, GenerateConfig(prompt="a cat", from_latents=str(path), strength=0.5, steps=STEPS, seed=3))
    from_image = generate(sd, GenerateConfig(prompt="a cat", init_image=str(image), strength=0.5, steps=STEPS, seed=3))
    assert np.array_equal(_px(from_file.images), _px(from_image.images))  # the same img2img, without the VAE encode
    assert np.abs(_px(from_file.images) - _px(kept.images)).mean() > 0.5
    r = from_file.recipes[0]
    assert r.seed == 3 and "Denoising strength: 0.5" in r.infotext() and "Start latents: " in r.infotext()
    batch = generate(sd, GenerateConfig(prompt="a cat", from_latents=str(path), strength=0.5, steps=STEPS, seed=3, batch=2))
    assert batch.seeds == [3, 4] and np.array_equal(_px(batch.images[:1]), _px(from_file.images))


def test_a_latent_file_is_checked_like_an_input_image(sd, latent_file):
    path, _, _ = latent_file
    with pytest.raises(LatentscapeError, match="prompt got None") as info:
        generate(sd, GenerateConfig(prompt=None, from_latents=str(path)))
    assert info.value.field == "prompt"
    with pytest.raises(LatentscapeError, match="strength got 1.5"):
        generate(sd, GenerateConfig(prompt="p", from_latents=str(path), strength=1.5))
    with pytest.raises(LatentscapeError, match="two starting points"):
        generate(sd, GenerateConfig(prompt="p", from_latents=str(path), init_image=str(path)))


def test_a_prompt_is_needed_without_an_inversion_before_any_model_loads():
    from latentscape.workflows.fields import check_fields

    with pytest.raises(LatentscapeError, match="prompt got None; expected text") as info:
        check_fields(GenerateConfig(prompt=None))
    assert info.value.field == "prompt"
    check_fields(GenerateConfig(prompt=None, from_latents="inv.safetensors"))  # the inversion's caption, read later


def test_recipes_without_a_file_are_as_they_were(sd):
    r = generate(sd, GenerateConfig(prompt="p", seed=1, steps=2)).recipes[0]
    assert "from_latents" not in r.params and r.inputs == {}


def test_replay_reads_the_recorded_file_and_refuses_a_changed_one(sd, inversion_file, tmp_path):
    import shutil

    source, _ = inversion_file
    path = tmp_path / "inv.safetensors"
    shutil.copy(source, path)
    out = generate(sd, from_inversion(path, prompt="a dog"))
    again = replay(sd, out.recipes[0], check_inputs(out.recipes[0]))
    assert np.array_equal(_px(again.images), _px(out.images))
    moved = tmp_path / "moved"
    moved.mkdir()
    path.rename(moved / "inv.safetensors")  # found again by its SHA-256
    again = replay(sd, out.recipes[0], check_inputs(out.recipes[0], search=[moved]))
    assert np.array_equal(_px(again.images), _px(out.images))
    data = bytearray((moved / "inv.safetensors").read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(LatentscapeError, match="from_latents .* has changed since the output was made"):
        check_inputs(out.recipes[0])


def test_vary_treats_an_output_made_from_a_file_as_an_image(sd, inversion_file, tmp_path):
    from latentscape.io.recipe import save_png
    from latentscape.workflows.vary import vary_config

    path, _ = inversion_file
    out = generate(sd, from_inversion(path))
    save_png(out.images[0], tmp_path / "x.png", out.recipes[0])
    config, recipe = vary_config(str(tmp_path / "x.png"))
    assert recipe is None and config.init_image == str(tmp_path / "x.png")  # its seed does not describe it: img2img


def test_the_server_refuses_a_request_that_names_a_latent_file(tmp_path):
    from latentscape.server.requests import Limits, Uploads, _prepare

    with pytest.raises(LatentscapeError, match="from_latents names files on the server"):
        _prepare("generate", {"prompt": "p", "from_latents": "/etc/passwd"}, Uploads(tmp_path, Limits()), Limits())
