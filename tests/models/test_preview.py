"""Tiny preview decoders: TAESD-family folders loaded locally, the embedded model's distilled one, the server's
live preview through them, and the distillation itself at toy size."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny
from PIL import Image
from safetensors import safe_open

from latentscape.errors import LatentscapeError
from latentscape.models.load import load
from latentscape.models.preview import EMBEDDED_PREVIEW, WEIGHTS


def _taesd(folder, channels=4, **config):
    torch.manual_seed(0)
    tiny = AutoencoderTiny(latent_channels=channels, encoder_block_out_channels=(4,) * 4, decoder_block_out_channels=(8,) * 4,
                           num_encoder_blocks=(1,) * 4, num_decoder_blocks=(1,) * 4, **config)
    tiny.save_pretrained(folder, safe_serialization=True)
    return tiny.eval()


def test_taesd_folder_decodes_model_space_latents(tiny_sd, tmp_path):
    tiny = _taesd(tmp_path / "taesd")  # TAESD's own config: scaling 1, i.e. the model-space latents as they are
    model = load(tiny_sd, device="cpu", preview_decoder=tmp_path / "taesd")
    latents = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    rgb = model.preview(latents)
    assert rgb.shape == (2, 3, 32, 32) and 0 <= float(rgb.min()) and float(rgb.max()) <= 1
    with torch.no_grad():
        expected = ((tiny.decode(latents).sample + 1) / 2).clamp(0, 1)
    assert torch.allclose(rgb, expected, atol=1e-6)


def test_taesd3_style_folder_gets_raw_vae_latents(tiny_sd3, tmp_path):
    """TAESD3/TAEF1 configs carry the VAE's scaling and shift: they decode ``z / scale + shift``, as in diffusers."""
    _taesd(tmp_path / "taesd3", channels=16, scaling_factor=1.5305, shift_factor=0.0609)
    model = load(tiny_sd3, device="cpu", preview_decoder=tmp_path / "taesd3")
    seen = []
    forward = model.preview_decoder.tiny.decoder.forward
    model.preview_decoder.tiny.decoder.forward = lambda x: (seen.append(x), forward(x))[1]
    latents = torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(0))
    model.preview(latents)
    assert torch.allclose(seen[0], latents / 1.5305 + 0.0609)


def test_without_a_preview_decoder_the_linear_preview(tiny_sd):
    model = load(tiny_sd, device="cpu")
    assert model.preview_decoder is None
    latents = torch.randn(1, 4, 4, 4)
    assert torch.equal(model.preview(latents), model.latent_format.preview(latents))


def test_bad_preview_folders(tiny_sd, tiny_sd3, tmp_path):
    taesd = tmp_path / "taesd"
    _taesd(taesd)
    with pytest.raises(LatentscapeError, match=r"^preview_decoder '.*nowhere' is not a folder; expected a local AutoencoderTiny folder"):
        load(tiny_sd, device="cpu", preview_decoder=tmp_path / "nowhere")
    with pytest.raises(LatentscapeError, match=r"holds a AutoencoderKL; expected a local AutoencoderTiny folder"):
        load(tiny_sd, device="cpu", preview_decoder=tiny_sd / "vae")
    with pytest.raises(LatentscapeError, match=r"decodes 4-channel latents; this sd3 model has 16: use taesd3\.$"):
        load(tiny_sd3, device="cpu", preview_decoder=taesd)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((taesd / "config.json").read_text())
    torch.save({}, pickled / "diffusion_pytorch_model.bin")
    with pytest.raises(LatentscapeError, match=r"has no diffusion_pytorch_model.safetensors \(pickled weights are not loaded\)"):
        load(tiny_sd, device="cpu", preview_decoder=pickled)
    with pytest.raises(LatentscapeError, match=r"^preview_decoder=True asks for the embedded model's distilled decoder .*pass a local TAESD-family folder\.$"):
        load(tiny_sd, device="cpu", preview_decoder=True)


def test_server_live_preview_uses_the_decoder(tiny_sd, tmp_path):
    from latentscape.server.worker import _preview_png

    _taesd(tmp_path / "taesd")
    model = load(tiny_sd, device="cpu", preview_decoder=tmp_path / "taesd")
    latents = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    state = SimpleNamespace(denoised=latents, latents=latents * 0)
    image = np.asarray(Image.open(io.BytesIO(_preview_png(model, state))))
    assert image.shape == (32, 32, 3)  # the decoder's own full-size image, not an enlarged 4x4 one
    expected = (model.preview(latents[:1])[0].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    assert np.array_equal(image, expected)
    linear = np.asarray(Image.open(io.BytesIO(_preview_png(load(tiny_sd, device="cpu"), state))))
    assert linear.shape == (32, 32, 3) and not np.array_equal(linear, image)
    assert np.array_equal(linear[::8, ::8], linear[7::8, 7::8])  # the 4x4 linear preview, enlarged 8x


def test_distil_at_toy_size(tiny_sd, tmp_path):
    from latentscape.models.preview import load_preview_decoder
    from latentscape.train.preview import PreviewConfig, distil, save

    rng = np.random.default_rng(0)
    data = tmp_path / "toy.npz"
    np.savez(data, images=rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), heldout=np.arange(12) >= 9)
    model = load(tiny_sd, device="cpu", preview_decoder=False)
    config = PreviewConfig(width=8, blocks=(1, 1, 1, 1), train_images=9, test_images=3, steps=3, batch=4)
    tiny, report = distil(model, data, config)
    assert report["images"] == 3 and np.isfinite(report["psnr_db"]) and report["full_1_ms"] > 0
    save(tiny, tmp_path / "out", report)
    with safe_open(str(tmp_path / "out" / WEIGHTS), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert json.loads((tmp_path / "out" / "report.json").read_text())["config"]["steps"] == 3
    loaded = load_preview_decoder(tmp_path / "out", family="sd", channels=4, device=torch.device("cpu"), dtype=torch.float32)
    assert loaded(torch.zeros(1, 4, 4, 4)).shape == (1, 3, 32, 32)


@pytest.mark.skipif(not (EMBEDDED_PREVIEW / "config.json").is_file(), reason="no distilled preview decoder shipped")
def test_embedded_preview_decoder_is_small_and_close_to_the_vae(embedded):
    assert embedded.preview_decoder is not None
    assert (EMBEDDED_PREVIEW / WEIGHTS).stat().st_size <= 1 << 20
    report = json.loads((EMBEDDED_PREVIEW / "report.json").read_text())
    assert report["psnr_db"] >= 18 and report["speedup_8"] > 2  # the bar for shipping one (report.json beside it)
    # a drawn emoji-like face: the preview is closer to the full decoder than the linear preview the server showed
    image = Image.new("RGB", (64, 64), "white")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    draw.ellipse((6, 6, 58, 58), fill=(250, 200, 40), outline=(120, 80, 0), width=2)
    draw.ellipse((20, 22, 26, 30), fill="black")
    draw.ellipse((38, 22, 44, 30), fill="black")
    draw.arc((18, 28, 46, 50), 20, 160, fill="black", width=3)
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1
    latents = embedded.encode_images(pixels)
    full = ((embedded.decode(latents).clamp(-1, 1) + 1) / 2)
    preview = embedded.preview(latents)
    linear = torch.nn.functional.interpolate(embedded.latent_format.preview(latents), scale_factor=8, mode="nearest")

    def psnr(a):
        return 10 * np.log10(1 / float(((full - a) ** 2).mean()))

    assert preview.shape == full.shape and psnr(preview) > psnr(linear) + 1, (psnr(preview), psnr(linear))


def test_server_makes_at_most_one_preview_per_interval(tiny_sd, tmp_path, monkeypatch):
    """A fast GPU makes many steps a second: the worker decodes a preview only every PREVIEW_INTERVAL, and at the
    last step, and keeps the latest one meanwhile."""
    from latentscape.server import worker as worker_module
    from latentscape.server.jobs import JobStore
    from latentscape.server.requests import Limits

    made = []
    monkeypatch.setattr(worker_module, "_preview_png", lambda model, state: made.append(state.step) or b"png%d" % state.step)
    clock = [100.0]
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: clock[0])
    worker = worker_module.Worker(JobStore(tmp_path / "data"), load(tiny_sd, device="cpu"), Limits())
    worker.live = {"id": "j1", "progress": {}}
    callback = worker._step_callback("j1")
    for step in range(6):
        callback(SimpleNamespace(step=step, total=6, latents=None, denoised=None))
        clock[0] += 0.08  # 12.5 steps a second
    assert made == [0, 3, 5]  # 0.24 s after step 0; and the last step
    assert worker.live["preview"] == b"png5" and worker.live["progress"] == {"step": 6, "total": 6}
