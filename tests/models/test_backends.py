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


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache folder for the module: the tiny UNet is exported once (about 2-4 s) and shared."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENTSCAPE_CACHE", str(root))
        yield root / "backends"


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
    assert isinstance(vars(onnx.denoiser)["forward"].__self__, backends.OnnxUNet)  # the engines run the calls
    assert isinstance(vars(onnx.vae)["decode"].__self__, backends.OnnxVAEDecoder)
    g = torch.Generator().manual_seed(3)
    x, ctx = torch.randn(3, 4, 4, 4, generator=g), torch.randn(3, 77, 32, generator=g)
    with torch.no_grad():
        for t in (torch.tensor(999.0), torch.tensor([10.0, 500.0, 900.0])):  # shared and per-row timesteps
            want = ref.denoiser(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
            got = onnx.denoiser(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
            assert got.shape == want.shape and float((got - want).abs().max()) <= UNET_TOLERANCE
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
    import onnx
    from onnx import numpy_helper

    ref = latentscape.load(str(tiny_sd))
    folder = cache / f"onnx-unet-{backends.weights_key(ref.denoiser)}"
    exports = []
    real_export = backends._export
    monkeypatch.setattr(backends, "_export", lambda module, f, graph: (exports.append(f), real_export(module, f, graph)))
    latentscape.load(str(tiny_sd), backend="onnx")  # exported by the first test of the module, or now
    assert sorted(p.name for p in folder.iterdir()) == ["graph.onnx", "meta.json"]
    exports.clear()
    latentscape.load(str(tiny_sd), backend="onnx")
    assert exports == []  # a valid cache is read, not exported again

    graph = folder / backends.GRAPH_FILE
    graph.write_bytes(graph.read_bytes()[:-10])  # damaged: its hash no longer matches meta.json
    latentscape.load(str(tiny_sd), backend="onnx")
    assert exports == [folder] and backends._cached_ok(folder)
    (folder / "extra.bin").write_bytes(b"planted")  # a file the export did not write: not read, exported again
    assert not backends._cached_ok(folder)
    latentscape.load(str(tiny_sd), backend="onnx")
    assert exports == [folder, folder] and backends._cached_ok(folder)

    # a graph with other weights planted beside a matching meta.json: the probe call against torch catches it
    proto = onnx.load(str(graph))
    init = max(proto.graph.initializer, key=lambda i: int(np.prod(i.dims)))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    onnx.save(proto, str(graph))
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "files": {backends.GRAPH_FILE: backends._file_hash(graph)}}))
    assert backends._cached_ok(folder)
    model = latentscape.load(str(tiny_sd), backend="onnx")
    assert len(exports) == 3
    x, t, ctx = backends._probe_inputs(ref.denoiser)
    with torch.no_grad():
        diff = (model.denoiser(x, t, encoder_hidden_states=ctx)[0] - ref.denoiser(x, t, encoder_hidden_states=ctx)[0]).abs().max()
    assert float(diff) <= UNET_TOLERANCE

    # other weights -> another key, so another folder
    other = latentscape.load(str(tiny_sd))
    with torch.no_grad():
        next(other.denoiser.parameters()).add_(1e-3)
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


def test_cli_unknown_backend_exits_2_with_one_sentence_and_writes_nothing(tiny_sd, tmp_path, capsys):
    from latentscape.interfaces.cli import main

    code = main(["generate", "a cat", "--model", str(tiny_sd), "--steps", "2", "--backend", "tensorrt", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and "latentscape generate: error: --backend got 'tensorrt'; accepted: torch, onnx." in err
    assert list(tmp_path.iterdir()) == []


@needs_ort
def test_cli_replay_stays_within_the_recipes_backend(tiny_sd, tmp_path, capsys, cache):
    from PIL import Image

    from latentscape.interfaces.cli import main

    made = tmp_path / "cat.png"
    assert main(["generate", "a cat", "--model", str(tiny_sd), "--seed", "4", "--steps", "2", "--backend", "onnx", "-o", str(made)]) == 0
    assert main(["replay", str(made), "--model", str(tiny_sd), "-o", str(tmp_path / "again.png")]) == 0
    assert main(["replay", str(made), "--model", str(tiny_sd), "--backend", "torch", "-o", str(tmp_path / "torch.png")]) == 0
    capsys.readouterr()
    a, b, c = (pixels(Image.open(tmp_path / n).convert("RGB")) for n in ("cat.png", "again.png", "torch.png"))
    assert np.array_equal(a, b)  # the recipe's backend: bit-exact replay
    assert np.abs(a - c).max() <= PIXEL_TOLERANCE  # torch: within the stated tolerance
