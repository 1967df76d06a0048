"""The shipped model (src/latentscape/models/embedded): it loads in plain diffusers, is deterministic per seed,
and a known caption draws an emoji-like picture. Needs no data set and no network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentscape.models.load import EMBEDDED_DIR

pytestmark = pytest.mark.skipif(not (EMBEDDED_DIR / "model_index.json").is_file(), reason="the embedded model is not exported")

PROMPT = "grinning face, google style"


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    p = StableDiffusionPipeline.from_pretrained(EMBEDDED_DIR, dtype=torch.float32)
    p.set_progress_bar_config(disable=True)
    return p


def _draw(pipe, seed: int, prompt: str = PROMPT, steps: int = 10) -> np.ndarray:
    return pipe(prompt, num_inference_steps=steps, guidance_scale=7.5, height=64, width=64,
                generator=torch.Generator().manual_seed(seed), output_type="np").images[0]


def test_folder_is_a_complete_small_fp16_pipeline():
    names = {p.name for p in EMBEDDED_DIR.iterdir()}
    assert {"model_index.json", "scheduler", "text_encoder", "tokenizer", "unet", "vae", "latentscape.json"} <= names
    size = sum(f.stat().st_size for f in EMBEDDED_DIR.rglob("*") if f.is_file())
    assert size <= 60e6
    from safetensors import safe_open

    for weights in EMBEDDED_DIR.rglob("*.safetensors"):
        with safe_open(str(weights), framework="pt") as f:
            assert all(f.get_slice(k).get_dtype() == "F16" for k in f.keys()), weights
    meta = json.loads((EMBEDDED_DIR / "latentscape.json").read_text())
    assert np.asarray(meta["latent_rgb_factors"]).shape == (4, 3)


def test_loads_with_default_arguments():
    from diffusers import StableDiffusionPipeline

    p = StableDiffusionPipeline.from_pretrained(EMBEDDED_DIR)
    assert p.safety_checker is None
    assert p.vae.config.latent_channels == 4 and 2 ** (len(p.vae.config.block_out_channels) - 1) == 8
    assert p.vae.config.scaling_factor != 0.18215  # fitted to our own latents


def test_same_seed_same_image_different_seed_different_image(pipe):
    a, b, c = _draw(pipe, 1), _draw(pipe, 1), _draw(pipe, 2)
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01


def test_known_caption_gives_an_emoji_like_image(pipe):
    """Not degenerate: white-ish corners (emoji are drawn on white), a coloured, varied middle."""
    image = _draw(pipe, 0, steps=25)
    assert image.std() > 0.1
    corners = np.concatenate([image[:6, :6], image[:6, -6:], image[-6:, :6], image[-6:, -6:]]).reshape(-1, 3)
    assert corners.mean() > 0.8
    middle = image[16:48, 16:48].reshape(-1, 3)
    assert np.abs(middle - 1.0).mean() > 0.15
    assert middle.std(0).mean() > 0.05


def test_latentscape_generate_matches_plain_diffusers(pipe, tmp_path):
    """`latentscape generate` (default model, Euler) and StableDiffusionPipeline with EulerDiscreteScheduler
    of the same folder give the same pixels at the same seed, for a batch of two seeds."""
    from diffusers import EulerDiscreteScheduler
    from PIL import Image

    from latentscape.interfaces.cli import main

    code = main(["generate", "cat face, twitter style", "--seed", "5", "--batch", "2", "--steps", "20", "--cfg", "7.5",
                 "--sampler", "euler", "-o", str(tmp_path / "cat.png"), "-q"])
    assert code == 0
    ours = [np.asarray(Image.open(tmp_path / f"cat-{i}.png").convert("RGB")).astype(int) for i in range(2)]
    euler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    original, pipe.scheduler = pipe.scheduler, euler
    try:
        theirs = pipe(["cat face, twitter style"] * 2, num_inference_steps=20, guidance_scale=7.5, height=64, width=64,
                      generator=[torch.Generator().manual_seed(s) for s in (5, 6)], output_type="np").images
    finally:
        pipe.scheduler = original
    for a, b in zip(ours, theirs):
        b = (b * 255).round().astype(int)
        assert np.abs(a - b).max() <= 1, f"max pixel difference {np.abs(a - b).max()}"
        assert a.std() > 10
