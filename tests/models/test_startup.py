"""Start-up: SD/SDXL folders (the embedded model among them) load component by component, bit-identical to
``from_pretrained``, and a 1-image generate does not import what that machinery pulled in."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

import latentscape
from latentscape.models.components import build_pipeline
from latentscape.models.load import EMBEDDED_DIR, _from_pretrained, _model_index


def _pipelines(folder, family, dtype=torch.float32):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    cls = StableDiffusionPipeline if family == "sd" else StableDiffusionXLPipeline
    direct = build_pipeline(cls, folder, _model_index(folder), family, dtype)
    return direct, _from_pretrained(cls, str(folder), dtype, family)


@pytest.mark.parametrize("fixture, family, dtype", [("embedded", "sd", torch.float32), ("embedded", "sd", torch.float16),
                                                    ("tiny_sd", "sd", torch.float32), ("tiny_sdxl", "sdxl", torch.float32)])
def test_direct_build_is_from_pretrained_bit_for_bit(fixture, family, dtype, request):
    folder = EMBEDDED_DIR if fixture == "embedded" else request.getfixturevalue(fixture)
    direct, reference = _pipelines(folder, family, dtype)
    assert direct is not None and type(direct) is type(reference)
    assert dict(direct.config) == dict(reference.config)  # same components, settings and source path
    for name, ref in reference.components.items():
        mine = direct.components[name]
        if isinstance(ref, torch.nn.Module):
            assert type(mine) is type(ref) and not mine.training
            a, b = mine.state_dict(), ref.state_dict()
            assert a.keys() == b.keys()
            assert all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a), name
            assert {n: t for n, t in mine.named_buffers()}.keys() == {n: t for n, t in ref.named_buffers()}.keys()
            config = mine.config.to_dict() if hasattr(mine.config, "to_dict") else dict(mine.config)
            ref_config = ref.config.to_dict() if hasattr(ref.config, "to_dict") else dict(ref.config)
            assert config == ref_config, name
        elif name.startswith("scheduler"):
            assert type(mine) is type(ref) and dict(mine.config) == dict(ref.config)
        elif name.startswith("tokenizer"):
            assert mine("a red cat, (big:1.2)").input_ids == ref("a red cat, (big:1.2)").input_ids
    if dtype == torch.float32:
        with torch.no_grad():
            kw = dict(prompt=["a red cat"], device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=True, negative_prompt=["blurry"])
            ours, theirs = direct.encode_prompt(**kw), reference.encode_prompt(**kw)
        assert all(torch.equal(x, y) for x, y in zip(ours, theirs) if x is not None)


def test_load_of_the_embedded_model_uses_no_from_pretrained_of_any_model(monkeypatch):
    from diffusers import DiffusionPipeline
    from diffusers.models.modeling_utils import ModelMixin
    from transformers.modeling_utils import PreTrainedModel

    def refuse(*args, **kwargs):
        raise AssertionError("from_pretrained was called")

    for cls in (DiffusionPipeline, ModelMixin, PreTrainedModel):
        monkeypatch.setattr(cls, "from_pretrained", classmethod(refuse))
    model = latentscape.load()
    assert model.name == "sd" and model.model_id == "embedded"
    assert type(model.pipe).__name__ == "StableDiffusionPipeline" and model.pipe.safety_checker is None


def test_a_folder_it_cannot_build_exactly_goes_the_from_pretrained_way(tiny_sd, tmp_path):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "m"
    shutil.copytree(tiny_sd, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(weights.read_bytes())
    weights.unlink()  # a variant-only component: from_pretrained's business
    assert build_pipeline(StableDiffusionPipeline, folder, _model_index(folder), "sd", torch.float32) is None

    shutil.rmtree(folder)
    shutil.copytree(tiny_sd, folder)
    state = load_file(weights)
    state.pop(sorted(state)[0])  # a tensor short: strict loading refuses it, nothing is half-built
    save_file(state, weights)
    assert build_pipeline(StableDiffusionPipeline, folder, _model_index(folder), "sd", torch.float32) is None


GENERATE_IMPORTS = """
import sys
import latentscape
from latentscape.workflows.generate import GenerateConfig, generate
model = latentscape.load()
generate(model, GenerateConfig(prompt="cat face, google style", seed=1, steps=1))
print("LOADED=" + ",".join(sorted(m for m in {banned!r} if m in sys.modules)))
"""

# what from_pretrained imported for the embedded model that a generate never uses: ONNX Runtime (through
# diffusers.pipelines.onnx_utils) and diffusers' modular guiders
NOT_IMPORTED = ("onnxruntime", "diffusers.pipelines.onnx_utils", "diffusers.guiders")


def test_a_one_image_generate_imports_none_of_from_pretrained_extras():
    code = GENERATE_IMPORTS.format(banned=NOT_IMPORTED)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "LOADED="
