import numpy as np
import pytest
import torch
from PIL import Image

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.io.latents import load_latents, save_latents
from latentscape.workflows.latents import decode_file, encode_image, inspect_image


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "in.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("fixture", ["tiny_sd", "tiny_sdxl", "tiny_sd3", "tiny_flux"])
def test_encode_decode_shapes_and_range(fixture, request, image_file, tmp_path):
    model = latentscape.load(str(request.getfixturevalue(fixture)))
    latents, meta = encode_image(model, image_file)
    c = model.latent_format.channels
    assert latents.shape == (1, c, 4, 6) and meta.channels == c and meta.family == model.name
    path = save_latents(tmp_path / "z.safetensors", latents, meta)
    back, meta2 = load_latents(path)
    assert torch.equal(back, latents) and meta2 == meta
    images = decode_file(model, path)
    assert images[0].size == (48, 32) and images[0].mode == "RGB"
    pixels = model.decode(latents)
    assert pixels.shape == (1, 3, 32, 48) and torch.isfinite(pixels).all()


def test_decode_refuses_another_family(tiny_sd, tiny_sd3, image_file, tmp_path):
    sd3 = latentscape.load(str(tiny_sd3))
    latents, meta = encode_image(sd3, image_file)
    path = save_latents(tmp_path / "z.safetensors", latents, meta)
    with pytest.raises(LatentscapeError, match=r"has 16 channels \(sd3\).*expects 4"):
        decode_file(latentscape.load(str(tiny_sd)), path)


def test_latent_file_errors(tmp_path):
    with pytest.raises(LatentscapeError, match="does not exist"):
        load_latents(tmp_path / "none.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(LatentscapeError, match="not a readable .safetensors"):
        load_latents(junk)
    with pytest.raises(LatentscapeError, match="must end in .safetensors"):
        save_latents(tmp_path / "z.pt", torch.zeros(1), None)


def test_inspect_reports_the_compression(tiny_sd, image_file):
    r = inspect_image(latentscape.load(str(tiny_sd)), image_file)
    s = r.stats
    assert s["pixel_values"] == 32 * 48 * 3 and s["latent_values"] == 4 * 4 * 6
    assert s["compression_ratio"] == 48.0
    assert len(s["channels"]) == 4 and all(np.isfinite(ch["std"]) for ch in s["channels"])
    assert r.preview.size == (48, 32) and r.reconstruction.size == (48, 32)
    assert -1.0 <= s["pixel_range"][0] <= s["pixel_range"][1] <= 1.0
    # the reported PSNR is that of the reconstruction it returns (to within uint8 rounding)
    a = np.asarray(Image.open(image_file), dtype=np.float64)
    b = np.asarray(r.reconstruction, dtype=np.float64)
    psnr = 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))
    assert abs(psnr - s["reconstruction_psnr_db"]) < 0.2
    latents, _ = encode_image(latentscape.load(str(tiny_sd)), image_file)
    assert s["latent_std"] == pytest.approx(latents.std().item(), rel=1e-5)
    assert [c["mean"] for c in s["channels"]] == pytest.approx(latents[0].mean(dim=(1, 2)).tolist(), rel=1e-5)
