"""The tiny models load with diffusers' own pipelines, offline, and sample deterministically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import (
    DiffusionPipeline,
    FluxPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)

# fixture name -> (pipeline class, extra from_pretrained kwargs)
FAMILIES: dict[str, tuple[type[DiffusionPipeline], dict[str, Any]]] = {
    "tiny_sd": (StableDiffusionPipeline, {}),
    "tiny_sd_v": (StableDiffusionPipeline, {}),
    "tiny_sdxl": (StableDiffusionXLPipeline, {}),
    "tiny_sd3": (StableDiffusion3Pipeline, {}),
    "tiny_sd3_no_t5": (StableDiffusion3Pipeline, {"text_encoder_3": None, "tokenizer_3": None}),
    "tiny_flux": (FluxPipeline, {}),
    "tiny_flux_schnell": (FluxPipeline, {}),
}
SIDE = 32
MAX_PARAMS = 200_000  # per component


def _load(request: pytest.FixtureRequest, fixture: str) -> DiffusionPipeline:
    cls, kwargs = FAMILIES[fixture]
    pipe = cls.from_pretrained(request.getfixturevalue(fixture), **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sample(pipe: DiffusionPipeline, prompt: str = "a photo of a cat", seed: int = 0) -> np.ndarray:
    generator = torch.Generator("cpu").manual_seed(seed)
    out = pipe(prompt, num_inference_steps=2, height=SIDE, width=SIDE, generator=generator, output_type="np")
    return out.images


@pytest.mark.parametrize("fixture", FAMILIES)
def test_pipeline_samples_deterministically(request: pytest.FixtureRequest, fixture: str) -> None:
    pipe = _load(request, fixture)
    first, again = _sample(pipe), _sample(pipe)
    assert first.shape == (1, SIDE, SIDE, 3)
    assert first.std() > 0.05, "the tiny model's image is (nearly) constant"
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - _sample(pipe, seed=1)).max() > 0.1, "the seed does not reach the image"
    assert np.abs(first - _sample(pipe, prompt="mountain landscape")).max() > 1e-3, "the prompt does not either"


@pytest.mark.parametrize("fixture", FAMILIES)
def test_components_are_tiny_and_consistent(request: pytest.FixtureRequest, fixture: str) -> None:
    pipe = _load(request, fixture)
    assert pipe.vae_scale_factor == 8
    for name, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            assert sum(p.numel() for p in component.parameters()) < MAX_PARAMS, name
        if name.startswith("tokenizer") and component is not None:
            encoder = pipe.components[name.replace("tokenizer", "text_encoder")]
            assert len(component) == encoder.config.vocab_size, name


def test_variants_differ_where_the_real_models_do(
    tiny_sd: Path, tiny_sd_v: Path, tiny_flux: Path, tiny_flux_schnell: Path
) -> None:
    sd = StableDiffusionPipeline.from_pretrained(tiny_sd)
    sd_v = StableDiffusionPipeline.from_pretrained(tiny_sd_v)
    assert sd.scheduler.config.prediction_type == "epsilon"
    assert sd_v.scheduler.config.prediction_type == "v_prediction"
    flux = FluxPipeline.from_pretrained(tiny_flux)
    schnell = FluxPipeline.from_pretrained(tiny_flux_schnell)
    assert flux.transformer.config.guidance_embeds and flux.scheduler.config.use_dynamic_shifting
    assert not schnell.transformer.config.guidance_embeds and not schnell.scheduler.config.use_dynamic_shifting


def test_single_file_loads_offline_with_the_same_weights(tiny_sd_single_file: tuple[Path, Path], tiny_sd: Path) -> None:
    checkpoint, config_folder = tiny_sd_single_file
    assert not list(config_folder.rglob("*.safetensors")), "the weights must come from the single file"
    single = StableDiffusionPipeline.from_single_file(str(checkpoint), config=str(config_folder), local_files_only=True)
    reference = StableDiffusionPipeline.from_pretrained(tiny_sd)
    for name in ("unet", "vae", "text_encoder"):
        loaded, expected = getattr(single, name).state_dict(), getattr(reference, name).state_dict()
        assert loaded.keys() == expected.keys(), name
        assert all(torch.equal(loaded[k], expected[k]) for k in expected), name
    single.set_progress_bar_config(disable=True)
    reference.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(_sample(single), _sample(reference))
