"""Model files are untrusted (issue 12): damaged single files, pipeline folders, pickles inside folders,
odd --scan folders and non-finite decodes each end in one sentence, never a traceback or a black PNG."""

import json
import shutil

import pytest
import torch
from untrusted_files import good_latent_meta, latent_file_bytes, safetensors_bytes

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.interfaces.cli import main


def _copy(src, tmp_path, name="model"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


@pytest.mark.parametrize("data, message", [
    (lambda good: good[: len(good) // 2], r"is not a valid .safetensors file: tensor .* outside the file's .* data bytes \(truncated"),
    (lambda good: good[:100], "is not a valid .safetensors file: its first 8 bytes announce"),
    (lambda good: safetensors_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\x00" * 12), "overlaps the tensor before it"),
    (lambda good: safetensors_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8000]}}, b"\x00" * 8), "outside the file's 8 data bytes"),
    (lambda good: safetensors_bytes(b"{" + b" " * 100, length=2**62), "is neither a .safetensors nor a PyTorch checkpoint file"),
    (lambda good: safetensors_bytes(b"{this is not json}"), "its header is not JSON text"),
    (lambda good: safetensors_bytes({}), "holds no tensors"),
])
def test_damaged_single_files_are_one_sentence(tiny_sd_single_file, tmp_path, data, message):
    ckpt, config = tiny_sd_single_file
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data(ckpt.read_bytes()))
    with pytest.raises(LatentscapeError, match=message):
        latentscape.load(str(bad), config=str(config))


def test_model_header_bound(tiny_sd_single_file, monkeypatch):
    ckpt, config = tiny_sd_single_file
    monkeypatch.setenv("LATENTSCAPE_MAX_MODEL_HEADER", "1000")
    with pytest.raises(LatentscapeError, match=r"checkpoint '.*' declares a [\d,]+-byte header, above the limit of 1,000 bytes.*LATENTSCAPE_MAX_MODEL_HEADER"):
        latentscape.load(str(ckpt), config=str(config))


def test_single_file_with_missing_keys_is_one_sentence(tiny_sd_single_file, tmp_path):
    from safetensors.torch import load_file, save_file

    ckpt, config = tiny_sd_single_file
    state = load_file(ckpt)
    for prefix, name in (("cond_stage_model", "text"), ("model.diffusion_model.output_blocks", "unet")):
        path = tmp_path / f"no-{name}.safetensors"
        save_file({k: v for k, v in state.items() if not k.startswith(prefix)}, path)
        with pytest.raises(LatentscapeError, match=r"could not load single file .* \(is it a complete sd checkpoint\?\)"):
            latentscape.load(str(path), config=str(config))


def test_model_index_that_is_not_an_object(tmp_path):
    for text, message in (("[1, 2]", "holds a JSON list; expected a diffusers pipeline index"),
                          ('"StableDiffusionPipeline"', "holds a JSON str"),
                          ('{"unet": ["diffusers", "UNet2DConditionModel"]}', "has no '_class_name' string")):
        (tmp_path / "model_index.json").write_text(text)
        with pytest.raises(LatentscapeError, match=message):
            latentscape.load(str(tmp_path))
    (tmp_path / "model_index.json").write_bytes(b"{" + b" " * (2 << 20) + b"}")
    with pytest.raises(LatentscapeError, match="too large for a diffusers pipeline index"):
        latentscape.load(str(tmp_path))


def test_broken_latentscape_json(tiny_sd, tmp_path):
    folder = _copy(tiny_sd, tmp_path)
    for text, message in (("{oops", "latentscape.json' is not JSON"),
                          ("[]", "latentscape.json' holds a JSON list"),
                          ('{"latent_rgb_factors": [[1, 2, 3]]}', "latent_rgb_factors that are not 4 rows of 3 finite numbers"),
                          ('{"latent_rgb_factors": [[1, 2, "x"], [1, 2, 3], [1, 2, 3], [1, 2, 3]]}', "not 4 rows of 3 finite numbers"),
                          ('{"latent_rgb_factors": [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]], "latent_rgb_bias": [1]}', "latent_rgb_bias that is not 3 finite numbers")):
        (folder / "latentscape.json").write_text(text)
        with pytest.raises(LatentscapeError, match=message):
            latentscape.load(str(folder))
    (folder / "latentscape.json").write_text(json.dumps({"latent_rgb_factors": [[0.1, 0.2, 0.3]] * 4, "latent_rgb_bias": [0, 0, 0]}))
    assert latentscape.load(str(folder)).latent_format.rgb_factors == ((0.1, 0.2, 0.3),) * 4


def test_pickle_weights_in_a_folder_need_allow_pickle(tiny_sd, tmp_path):
    from safetensors.torch import load_file

    folder = _copy(tiny_sd, tmp_path)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), folder / "unet" / "diffusion_pytorch_model.bin")  # a zip pickle
    weights.unlink()
    with pytest.raises(LatentscapeError, match=r"component 'unet' of .* has only pickle weights \('diffusion_pytorch_model.bin'\).*allow_pickle=True"):
        latentscape.load(str(folder))
    model = latentscape.load(str(folder), allow_pickle=True)
    assert model.name == "sd"


def test_pickle_folder_refused_by_the_cli_without_writing(tiny_sd, tmp_path, capsys):
    from safetensors.torch import load_file

    folder = _copy(tiny_sd, tmp_path)
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    renamed = folder / "vae" / "diffusion_pytorch_model.ckpt"
    torch.save(load_file(weights), renamed)
    weights.unlink()
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "generate", "p", "--model", folder, "--steps", "1", "-o", out / "x.png", "-q")
    assert code == 2 and len(err) == 1 and err[0].startswith("latentscape generate: error: component 'vae'")
    assert not out.exists()


def test_damaged_safetensors_inside_a_folder(tiny_sd, tmp_path):
    folder = _copy(tiny_sd, tmp_path)
    weights = folder / "text_encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(LatentscapeError, match=r"weights file '.*text_encoder/model.safetensors' is not a valid .safetensors file"):
        latentscape.load(str(folder))


def test_models_scan_on_odd_folders(tmp_path, capsys, monkeypatch, tiny_sd):
    (tmp_path / "file.txt").write_text("x")
    code, _, err = _cli(capsys, "models", "--scan", tmp_path / "file.txt")
    assert code == 2 and err == [f"latentscape models: error: scan folder '{tmp_path / 'file.txt'}' is a file, not a folder; pass the folder that holds your models."]
    code, _, err = _cli(capsys, "models", "--scan", tmp_path / "missing")
    assert code == 2 and len(err) == 1 and "does not exist" in err[0]

    root = tmp_path / "models"
    shutil.copytree(tiny_sd, root / "real")
    (root / "loop").mkdir()
    (root / "loop" / "back").symlink_to(root, target_is_directory=True)  # a symlink loop
    (root / "link").symlink_to(root / "real", target_is_directory=True)
    (root / "broken").mkdir()
    (root / "broken" / "model_index.json").write_text("[not an object")
    (root / "locked").mkdir()
    import latentscape.interfaces.commands.models as models_cmd

    real_scandir = models_cmd.os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(models_cmd.os, "scandir", scandir)
    code, out, err = _cli(capsys, "models", "--json", "--scan", root)
    data = json.loads(out)
    paths = [m["path"] for m in data["installed"] if m["name"] != "embedded"]
    assert code == 0 and not err
    assert paths == [str(root / "real")]  # listed once, under its own path; the loop and the broken index skipped
    assert data["unreadable_folders"] == 1


def test_decode_retries_an_overflowing_half_vae_in_fp32(tiny_sd, monkeypatch, caplog):
    model = latentscape.load(str(tiny_sd))
    vae = model.vae
    latents = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    expected = model.decode(latents)
    vae.to(torch.float16)
    real_decode = vae.decode

    def overflowing(z, return_dict=False):
        out = real_decode(z, return_dict=return_dict)
        if vae.dtype == torch.float16:
            return (torch.full_like(out[0], float("inf")),)
        return out

    monkeypatch.setattr(vae, "decode", overflowing)
    pixels = model.decode(latents)
    assert torch.isfinite(pixels).all() and vae.dtype == torch.float32
    assert "VAE overflowed to NaN/inf; decoding in fp32" in caplog.text
    monkeypatch.setattr(vae, "decode", real_decode)
    assert torch.equal(pixels, model.decode(latents))  # exactly the fp32 decode (of the fp16-rounded weights)
    assert (pixels - expected).abs().max() < 0.05  # and close to the original fp32 weights' decode
    monkeypatch.setattr(vae, "decode", overflowing)

    monkeypatch.setattr(vae, "decode", lambda z, return_dict=False: (torch.full((1, 3, 32, 32), float("nan")),))
    with pytest.raises(LatentscapeError, match="decoded these latents to NaN or infinite pixels even in fp32"):
        model.decode(latents)
    with pytest.raises(LatentscapeError, match="the latents to decode hold 1 NaN or infinite values"):
        model.decode(torch.where(torch.arange(64).view(1, 4, 4, 4) == 5, float("nan"), 0.0))


def test_encode_and_decode_respect_the_pixel_bound(tiny_sd, monkeypatch):
    model = latentscape.load(str(tiny_sd))
    monkeypatch.setenv("LATENTSCAPE_MAX_PIXELS", str(32 * 32))
    model.decode(torch.zeros(1, 4, 4, 4))
    with pytest.raises(LatentscapeError, match="latents that decode to 40x32 is 0.00128 Mpx, above the 0.00102 Mpx limit for sd models"):
        model.decode(torch.zeros(1, 4, 4, 5))
    with pytest.raises(LatentscapeError, match="an input image of 32x40 is"):
        model.encode_images(torch.zeros(1, 3, 40, 32))


def test_cli_decode_of_a_nan_latent_file_writes_nothing(tiny_sd, tmp_path, capsys):
    z = torch.zeros(1, 4, 4, 4)
    z[0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    path.write_bytes(latent_file_bytes(z.numpy(), good_latent_meta()))
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "decode", path, "--model", tiny_sd, "-o", out / "x.png")
    assert code == 2 and len(err) == 1
    assert err[0].startswith("latentscape decode: error: latent file") and "holds 1 NaN or infinite values" in err[0]
    assert not out.exists()


def test_cli_size_beyond_the_trained_size_warns(tiny_sd, tmp_path, capsys, caplog):
    code, _, err = _cli(capsys, "generate", "p", "--model", tiny_sd, "--size", "136x128", "--steps", "1", "-o", tmp_path / "x.png", "-q")
    assert code == 0 and "size 136x128 is far from the 32x32 that model" in caplog.text
