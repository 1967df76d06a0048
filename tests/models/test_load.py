import json

import numpy as np
import pytest
import torch

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.models.load import family_of_state_keys, sniff_file
from latentscape.workflows.generate import GenerateConfig, generate


@pytest.mark.parametrize(
    "fixture, family, channels, multiple",
    [("tiny_sd", "sd", 4, 8), ("tiny_sd_v", "sd", 4, 8), ("tiny_sdxl", "sdxl", 4, 8), ("tiny_sd3", "sd3", 16, 8), ("tiny_flux", "flux", 16, 16)],
)
def test_family_detection_and_latent_format_from_the_vae_config(fixture, family, channels, multiple, request):
    folder = request.getfixturevalue(fixture)
    model = latentscape.load(str(folder))
    assert model.name == family and model.latent_format.channels == channels
    assert model.latent_format.size_multiple == multiple and model.latent_format.downscale == 8
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    assert model.latent_format.scale == vae_config["scaling_factor"]
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert model.describe()["family"] == family
    if fixture == "tiny_sd_v":
        assert model.prediction_type == "v_prediction"


def test_single_file_with_config_folder(tiny_sd_single_file, tiny_sd):
    ckpt, config = tiny_sd_single_file
    one = latentscape.load(str(ckpt), config=str(config))
    folder = latentscape.load(str(tiny_sd))
    cfg = GenerateConfig(prompt="a cat", seed=5, steps=2)
    a, b = generate(one, cfg), generate(folder, cfg)
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))


def test_replay_of_a_single_file_output_uses_the_recorded_config(tiny_sd_single_file, tmp_path, capsys):
    from PIL import Image

    from latentscape.interfaces.cli import main

    ckpt, config = tiny_sd_single_file
    out = tmp_path / "one.png"
    assert main(["generate", "p", "--model", str(ckpt), "--config", str(config), "--dtype", "fp32", "--steps", "2", "-o", str(out), "-q"]) == 0
    from latentscape.io.recipe import read_recipe

    recipe = read_recipe(out)
    assert recipe.load == {"config": str(config.resolve()), "dtype": "fp32"} and recipe.model == str(ckpt.resolve())
    assert main(["replay", str(out), "--model-from-recipe", "-o", str(tmp_path / "again.png"), "-q"]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(tmp_path / "again.png")))


def test_single_file_needs_config(tiny_sd_single_file):
    ckpt, _ = tiny_sd_single_file
    with pytest.raises(LatentscapeError, match="needs config=FOLDER") as info:
        latentscape.load(str(ckpt))
    assert info.value.field == "config"  # the CLI writes it as --config


def test_pickles_are_refused_by_their_bytes_not_their_name(tmp_path):
    fake = tmp_path / "model.SAFETENSORS"
    torch.save({"w": torch.zeros(1)}, fake)  # a pickle (zip) renamed
    assert sniff_file(fake) == "pickle"
    with pytest.raises(LatentscapeError, match="is a pickle checkpoint.*allow_pickle=True"):
        latentscape.load(str(fake), config=str(tmp_path))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 32)
    with pytest.raises(LatentscapeError, match="neither a .safetensors nor a PyTorch checkpoint"):
        latentscape.load(str(junk), config=str(tmp_path))


def test_unsupported_and_broken_folders(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(LatentscapeError, match="KandinskyPipeline, which latentscape does not support"):
        latentscape.load(str(tmp_path))
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(LatentscapeError, match="model_index.json' is not JSON; expected a diffusers pipeline index"):
        latentscape.load(str(tmp_path))


def test_hub_id_offline_is_one_sentence():
    # conftest sets HF_HUB_OFFLINE=1: no network is tried
    with pytest.raises(LatentscapeError, match="could not fetch model 'someone/some-model'.*offline"):
        latentscape.load("someone/some-model")


def test_bad_device_and_dtype(tiny_sd):
    with pytest.raises(LatentscapeError, match="^dtype got 'fp8'"):
        latentscape.load(str(tiny_sd), dtype="fp8")
    with pytest.raises(LatentscapeError, match="^device got 'gpu0'"):
        latentscape.load(str(tiny_sd), device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(LatentscapeError, match="^device cuda was asked for.*use device='cpu'"):
            latentscape.load(str(tiny_sd), device="cuda")


def test_incomplete_folder_is_one_sentence(tiny_sd, tmp_path):
    import shutil

    broken = tmp_path / "partial"
    shutil.copytree(tiny_sd, broken)
    for f in (broken / "unet").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(LatentscapeError, match="could not load the diffusers folder .*partial.*is it complete"):
        latentscape.load(str(broken))


def test_local_models_are_recorded_by_absolute_path(tiny_sd, monkeypatch):
    monkeypatch.chdir(tiny_sd.parent)
    assert latentscape.load(tiny_sd.name).model_id == str(tiny_sd.resolve())


def test_family_of_state_keys():
    assert family_of_state_keys(["model.diffusion_model.double_blocks.0.img_attn.qkv.weight"]) == "flux"
    assert family_of_state_keys(["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"]) == "sd3"
    assert family_of_state_keys(["conditioner.embedders.1.model.ln_final.weight"]) == "sdxl"
    assert family_of_state_keys(["model.diffusion_model.input_blocks.0.0.weight"]) == "sd"
