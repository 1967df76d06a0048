"""Family support, proven: latentscape's loop gives diffusers' own pipelines' pixels on tiny random models.

Same seed(s), scheduler (``EulerDiscreteScheduler.from_config`` of the folder, or the flow models' own
FlowMatchEuler), steps, CFG and size. Bound: 1/255 on uint8 pixels in fp32 (every family meets it; in
practice the difference is 0).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentscape
from latentscape.workflows.generate import GenerateConfig, generate

STEPS = 3


def _ours(folder, **kw) -> np.ndarray:
    model = latentscape.load(str(folder))
    out = generate(model, GenerateConfig(steps=STEPS, **kw))
    return np.stack([np.asarray(im) for im in out.images]).astype(np.int16)


def _theirs(pipe, seeds, **kw) -> np.ndarray:
    gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    images = pipe(num_inference_steps=STEPS, generator=gens if len(gens) > 1 else gens[0], output_type="np", **kw).images
    return (np.asarray(images) * 255).round().astype(np.int16)


def _assert_close(ours, theirs):
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1, f"max pixel difference {np.abs(ours - theirs).max()}"
    assert ours.std() > 0  # not a degenerate image


def _euler(pipe):
    from diffusers import EulerDiscreteScheduler

    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    return pipe


@pytest.mark.parametrize("fixture", ["tiny_sd", "tiny_sd_v"])
def test_sd_matches_stable_diffusion_pipeline(fixture, request):
    from diffusers import StableDiffusionPipeline

    folder = request.getfixturevalue(fixture)
    pipe = _euler(StableDiffusionPipeline.from_pretrained(folder))
    rescale = 0.7 if fixture == "tiny_sd_v" else 0.0
    theirs = _theirs(pipe, [11, 12], prompt=["a red cat"] * 2, negative_prompt=["blurry"] * 2, guidance_scale=7.5,
                     guidance_rescale=rescale, height=32, width=32)
    ours = _ours(folder, prompt="a red cat", negative="blurry", seed=11, batch=2, cfg=7.5, guidance_rescale=rescale,
                 width=32, height=32, sampler="euler")
    _assert_close(ours, theirs)


def test_sd_ancestral_sampler_matches(tiny_sd):
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    theirs = _theirs(pipe, [5], prompt="a dog", guidance_scale=4.0, height=32, width=32)
    ours = _ours(tiny_sd, prompt="a dog", seed=5, cfg=4.0, width=32, height=32, sampler="euler_a")
    _assert_close(ours, theirs)


@pytest.mark.parametrize("negative", ["", "low quality"])
def test_sdxl_matches_stable_diffusion_xl_pipeline(tiny_sdxl, negative):
    from diffusers import StableDiffusionXLPipeline

    pipe = _euler(StableDiffusionXLPipeline.from_pretrained(tiny_sdxl))
    theirs = _theirs(pipe, [3], prompt="a house", negative_prompt=negative or None, guidance_scale=6.0, height=32, width=32)
    ours = _ours(tiny_sdxl, prompt="a house", negative=negative, seed=3, cfg=6.0, width=32, height=32)
    _assert_close(ours, theirs)


@pytest.mark.parametrize("fixture", ["tiny_sd3", "tiny_sd3_no_t5"])
def test_sd3_matches_stable_diffusion_3_pipeline(fixture, request):
    from diffusers import StableDiffusion3Pipeline

    folder = request.getfixturevalue(fixture)
    extra = {} if fixture == "tiny_sd3" else {"text_encoder_3": None, "tokenizer_3": None}
    pipe = StableDiffusion3Pipeline.from_pretrained(folder, **extra)
    theirs = _theirs(pipe, [8, 9], prompt=["a tree"] * 2, negative_prompt=["fog"] * 2, guidance_scale=5.0, height=32, width=32)
    ours = _ours(folder, prompt="a tree", negative="fog", seed=8, batch=2, cfg=5.0, width=32, height=32, sampler="flow_euler")
    _assert_close(ours, theirs)


def test_flux_dev_matches_flux_pipeline(tiny_flux):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(tiny_flux)
    theirs = _theirs(pipe, [4], prompt="a boat", guidance_scale=3.5, height=32, width=32, max_sequence_length=48)
    model = latentscape.load(str(tiny_flux))
    model.max_sequence_length = 48
    out = generate(model, GenerateConfig(prompt="a boat", seed=4, cfg=3.5, width=32, height=32, steps=STEPS))
    _assert_close(np.stack([np.asarray(i) for i in out.images]).astype(np.int16), theirs)


def test_flux_true_cfg_with_negative_matches(tiny_flux):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(tiny_flux)
    theirs = _theirs(pipe, [6], prompt="a boat", negative_prompt="rain", true_cfg_scale=2.5, guidance_scale=3.0,
                     height=32, width=32, max_sequence_length=48)
    model = latentscape.load(str(tiny_flux))
    model.max_sequence_length = 48
    out = generate(model, GenerateConfig(prompt="a boat", negative="rain", seed=6, cfg=3.0, true_cfg=2.5, width=32, height=32, steps=STEPS))
    _assert_close(np.stack([np.asarray(i) for i in out.images]).astype(np.int16), theirs)


def test_flux_schnell_matches_and_defaults_to_no_cfg(tiny_flux_schnell):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(tiny_flux_schnell)
    theirs = _theirs(pipe, [2], prompt="a kite", height=32, width=32, max_sequence_length=48)
    model = latentscape.load(str(tiny_flux_schnell))
    model.max_sequence_length = 48
    out = generate(model, GenerateConfig(prompt="a kite", seed=2, width=32, height=32, steps=STEPS))
    assert out.recipes[0].params["cfg"] == 1.0
    _assert_close(np.stack([np.asarray(i) for i in out.images]).astype(np.int16), theirs)


def test_cli_generate_matches_pipeline_pixels(tiny_sd, tmp_path):
    from diffusers import StableDiffusionPipeline
    from PIL import Image

    from latentscape.interfaces.cli import main

    out = tmp_path / "cli.png"
    rc = main(["generate", "a blue bird", "--model", str(tiny_sd), "--sampler", "euler", "--seed", "21", "--steps", str(STEPS),
               "--cfg", "7.5", "--size", "32x32", "-o", str(out), "--quiet"])
    assert rc == 0
    pipe = _euler(StableDiffusionPipeline.from_pretrained(tiny_sd))
    theirs = _theirs(pipe, [21], prompt="a blue bird", guidance_scale=7.5, height=32, width=32)
    _assert_close(np.asarray(Image.open(out))[None].astype(np.int16), theirs)
