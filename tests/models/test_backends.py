"""Denoiser backends: ``onnx`` matches ``torch`` within its tolerance (tiny SD model and the embedded model),
keeps exact endpoints and replay within itself, caches its graph by the weights' hash and validates it on
read; an unknown backend, a missing package, or a model the backend cannot run is one sentence."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.models import backends
from latentscape.workflows.generate import GenerateConfig, generate
from latentscape.workflows.morph import MorphConfig, morph

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="backend onnx needs onnxruntime and onnx: pip install 'latentscape[onnx]'")
# Stated tolerance of the onnx backend: max pixel difference to torch on a morph (measured 1/255 on the
# embedded model's 24-frame morph, 0 on the tiny model), and on the raw UNet output.
PIXEL_TOLERANCE = 2
UNET_TOLERANCE = 1e-4


def pixels(image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSCAPE_CACHE", str(tmp_path))
    return tmp_path / "backends"


def test_unknown_backend_is_one_sentence_before_the_model_loads(tiny_sd):
    with pytest.raises(LatentscapeError, match=r"backend got 'tensorrt'; accepted: torch, onnx\."):
        latentscape.load(str(tiny_sd), backend="tensorrt")


def test_missing_package_names_what_to_install(tiny_sd, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(LatentscapeError, match=r"needs the onnxruntime package: pip install onnxruntime"):
        latentscape.load(str(tiny_sd), backend="onnx")


def test_torch_backend_changes_nothing(tiny_sd):
    model = latentscape.load(str(tiny_sd), backend="torch")
    assert "backend" not in model.load_options and "forward" not in vars(model.denoiser)


@needs_ort
def test_backend_refuses_models_it_cannot_run(tiny_sdxl, tiny_sd, cache):
    with pytest.raises(LatentscapeError, match=r"supports SD1.x/2.x UNets; this is a sdxl model: use backend torch\."):
        latentscape.load(str(tiny_sdxl), backend="onnx")
    with pytest.raises(LatentscapeError, match=r"runs on the CPU in fp32; .* in float16"):
        latentscape.load(str(tiny_sd), backend="onnx", dtype="fp16")


@needs_ort
def test_onnx_matches_torch_on_the_tiny_model_and_keeps_endpoints_and_replay(tiny_sd, cache):
    ref = latentscape.load(str(tiny_sd))
    onnx = latentscape.load(str(tiny_sd), backend="onnx")
    assert onnx.load_options["backend"] == "onnx" and type(onnx.denoiser).__name__ == "UNet2DConditionModel"
    g = torch.Generator().manual_seed(3)
    x, ctx = torch.randn(3, 4, 4, 4, generator=g), torch.randn(3, 77, 32, generator=g)
    with torch.no_grad():
        for t in (torch.tensor(999.0), torch.tensor([10.0, 500.0, 900.0])):  # shared and per-row timesteps
            want = ref.denoiser(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
            got = onnx.denoiser(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
            assert got.shape == want.shape and float((got - want).abs().max()) <= UNET_TOLERANCE
            assert float((got - want).abs().max()) > 0 or t.ndim == 0  # it is really another engine
    config = MorphConfig(keyframes=("a red cat@5", "a dog in the snow@9"), frames=4, steps=3, cfg=6.0, batch_size=3)
    a, b = morph(ref, config), morph(onnx, config)
    assert max(int(np.abs(pixels(i) - pixels(j)).max()) for i, j in zip(a.images, b.images)) <= PIXEL_TOLERANCE
    again = morph(onnx, config)  # replay within the backend: the same pixels
    assert all(np.array_equal(pixels(i), pixels(j)) for i, j in zip(b.images, again.images))
    alone = generate(onnx, GenerateConfig(prompt="a dog in the snow", seed=9, steps=3, cfg=6.0)).images[0]
    assert np.abs(pixels(alone) - pixels(b.images[-1])).max() <= 1  # the endpoint is the keyframe's generate
    assert b.recipe.load["backend"] == "onnx" and "backend" not in a.recipe.load  # recorded for replay


@needs_ort
def test_graph_is_cached_by_weights_and_validated_on_read(tiny_sd, cache, monkeypatch):
    latentscape.load(str(tiny_sd), backend="onnx")
    (folder,) = cache.iterdir()
    assert folder.name.startswith("onnx-") and sorted(p.name for p in folder.iterdir()) == ["meta.json", "unet.onnx"]
    exports = []
    real_export = backends._export
    monkeypatch.setattr(backends, "_export", lambda unet, f: (exports.append(f), real_export(unet, f)))
    latentscape.load(str(tiny_sd), backend="onnx")
    assert exports == []  # a valid cache is read, not exported again

    graph = folder / "unet.onnx"
    graph.write_bytes(graph.read_bytes()[:-10])  # damaged: its hash no longer matches meta.json
    latentscape.load(str(tiny_sd), backend="onnx")
    assert exports == [folder] and backends._cached_ok(folder)

    # a graph of other weights planted with a matching meta.json: the probe call catches it
    other = latentscape.load(str(tiny_sd))
    with torch.no_grad():
        for p in other.denoiser.parameters():
            p.mul_(1.5)
    planted = cache.parent / "planted"
    real_export(other.denoiser, planted)
    for name in ("unet.onnx", "meta.json"):
        (folder / name).write_bytes((planted / name).read_bytes())
    assert json.loads((folder / "meta.json").read_text())["format"] == backends.FORMAT_VERSION
    model = latentscape.load(str(tiny_sd), backend="onnx")
    assert len(exports) == 2
    ref = latentscape.load(str(tiny_sd))
    x, t, ctx = backends._probe_inputs(ref.denoiser)
    with torch.no_grad():
        diff = (model.denoiser(x, t, encoder_hidden_states=ctx)[0] - ref.denoiser(x, t, encoder_hidden_states=ctx)[0]).abs().max()
    assert float(diff) <= UNET_TOLERANCE

    # other weights -> another key, another folder
    assert backends.weights_key(other.denoiser) != backends.weights_key(ref.denoiser)


@needs_ort
@pytest.mark.slow
def test_onnx_matches_torch_on_an_embedded_morph(cache):
    from latentscape.models.load import EMBEDDED_DIR

    if not (EMBEDDED_DIR / "model_index.json").is_file():
        pytest.skip("the embedded model is not in this installation")
    config = MorphConfig(keyframes=("grinning face, google style", "cat face, twitter style"), frames=3, steps=4, seed=0,
                         batch_size=3)
    ref = morph(latentscape.load("embedded"), config)
    got = morph(latentscape.load("embedded", backend="onnx"), config)
    diff = max(int(np.abs(pixels(i) - pixels(j)).max()) for i, j in zip(ref.images, got.images))
    assert diff <= PIXEL_TOLERANCE
