"""Optional inference backends for the denoiser: ``load(..., backend=...)`` / ``--backend``.

``torch`` (the default) runs the family's own modules and is exact. ``onnx`` exports the SD-family UNet and
the VAE decoder once to ONNX graphs (dynamic batch, latent size and prompt length) and runs them with ONNX
Runtime on the CPU, in fp32: pixels stay within 2/255 of ``torch`` (tests/models/test_backends.py), and a job
is exactly repeatable within the backend. The backend replaces only the UNet's ``forward`` and the VAE's
``decode``; the family's ``predict``, the samplers, VAE encoding and the text encoder are unchanged.

The exported graphs are cached under ``~/.cache/latentscape/backends/<backend>-<graph>-<key>/``
(``LATENTSCAPE_CACHE`` moves it), where ``key`` hashes the module's weights, its config and the exporter
versions: a model with other weights never reads another model's graph. A cached graph is used only when
its files (the graph and any external weights) hash to the values recorded beside them at export and it
reproduces the torch module on a probe input; anything else is exported again. ONNX files are protobuf
(no pickles, nothing executed on read).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from latentscape.errors import LatentscapeError

log = logging.getLogger(__name__)

# backend name -> (pip packages it needs, import names to check)
BACKENDS: dict[str, tuple[str, ...]] = {"torch": (), "onnx": ("onnxruntime", "onnx")}
FORMAT_VERSION = 1  # bump when the exported graph's inputs or export settings change
OPSET = 17
PROBE_TOLERANCE = 1e-3  # max |onnx - torch| on the probe call (measured ~1e-5 on the embedded UNet)


def check_backend(name: str | None) -> str:
    """The backend name (``None`` -> ``torch``), or one sentence naming the accepted ones / the package to install."""
    name = "torch" if name in (None, "") else name
    if not isinstance(name, str) or name not in BACKENDS:
        raise LatentscapeError(f"backend got {str(name)[:40]!r}; accepted: {', '.join(BACKENDS)}.")
    missing = [pkg for pkg in BACKENDS[name] if importlib.util.find_spec(pkg) is None]
    if missing:
        raise LatentscapeError(
            f"backend '{name}' needs the {' and '.join(missing)} package{'s' if len(missing) > 1 else ''}: "
            f"pip install {' '.join(missing)} (or pip install 'latentscape[{name}]').")
    return name


def cache_root() -> Path:
    base = os.environ.get("LATENTSCAPE_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "latentscape"


def weights_key(module: torch.nn.Module) -> str:
    """A hash of everything the exported graph depends on: every parameter and buffer (names, shapes,
    dtypes, bytes), the module's config, and the torch / exporter / format versions."""
    h = hashlib.blake2b(digest_size=20)
    config = getattr(module, "config", None)
    h.update(json.dumps(dict(config) if config is not None else {}, sort_keys=True, default=str).encode())
    h.update(f"{type(module).__name__}|torch {torch.__version__}|opset {OPSET}|format {FORMAT_VERSION}".encode())
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _UNetGraph(torch.nn.Module):
    """What gets exported of the denoiser: (sample, per-row timestep, text embeddings) -> the UNet's prediction."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, context):
        return self.unet(sample, timestep, encoder_hidden_states=context, return_dict=False)[0]


class _VAEDecodeGraph(torch.nn.Module):
    """What gets exported of the VAE: VAE-space latents -> pixels (the decoder half only; encode stays torch)."""

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        return self.vae.decode(latents, return_dict=False)[0]


def _probe_inputs(unet) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    size = getattr(unet.config, "sample_size", 8) or 8
    size = min(int(size[0] if isinstance(size, (list, tuple)) else size), 16)
    x = torch.randn(2, unet.config.in_channels, size, size, generator=g)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    return x, torch.tensor([500.0, 250.0]), ctx


def _vae_probe(vae) -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, vae.config.latent_channels, 8, 8, generator=torch.Generator().manual_seed(0)),)


_SPATIAL = {0: "batch", 2: "height", 3: "width"}
# graph name -> (wrapper module, probe inputs, input names, dynamic axes of inputs and output "out")
GRAPHS = {
    "unet": (_UNetGraph, _probe_inputs, ("sample", "timestep", "context"),
             {"sample": _SPATIAL, "timestep": {0: "batch"}, "context": {0: "batch", 1: "tokens"}, "out": _SPATIAL}),
    "vae_decoder": (_VAEDecodeGraph, _vae_probe, ("latents",),
                    {"latents": _SPATIAL, "out": {0: "batch", 2: "pixel_height", 3: "pixel_width"}}),
}
GRAPH_FILE = "graph.onnx"


def _export(module, folder: Path, graph: str = "unet") -> None:
    """Export ``module`` as ``graph`` to ``folder/graph.onnx`` and record its hash, atomically (a half-written
    cache is never read)."""
    wrap, probe, inputs, axes = GRAPHS[graph]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
            torch.onnx.export(wrap(module).eval(), probe(module), str(tmp / GRAPH_FILE), input_names=list(inputs),
                              output_names=["out"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        # graphs over protobuf's 2 GB (an SD UNet in fp32) come with external weight files beside them: all are hashed
        files = {f.name: _file_hash(f) for f in sorted(tmp.iterdir())}
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT_VERSION, "graph": graph, "files": files}))
        if folder.exists():
            _remove(folder)
        os.replace(tmp, folder)
    except BaseException:
        _remove(tmp)
        raise


def _remove(folder: Path) -> None:
    for f in folder.glob("*"):
        f.unlink()
    folder.rmdir()


def _cached_ok(folder: Path) -> bool:
    """Every cached file's bytes match the hash recorded at export, and nothing else is in the folder."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        files = meta.get("files") if isinstance(meta, dict) and meta.get("format") == FORMAT_VERSION else None
        if not isinstance(files, dict) or GRAPH_FILE not in files:
            return False
        if {p.name for p in folder.iterdir()} != {*files, "meta.json"}:
            return False
        return all(isinstance(h, str) and h == _file_hash(folder / n) for n, h in files.items())
    except (OSError, ValueError):
        return False


class OnnxGraph:
    """An exported graph run by an ONNX Runtime session (CPU, fp32): tensors in, one tensor out."""

    def __init__(self, path: Path, inputs: tuple[str, ...], threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # no spinning between ops: on a shared CPU spinning workers steal the cores (as OMP_WAIT_POLICY=PASSIVE)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = inputs

    def run(self, *tensors: torch.Tensor) -> torch.Tensor:
        feeds = {name: t.detach().float().contiguous().numpy() for name, t in zip(self.inputs, tensors)}
        return torch.from_numpy(self.session.run(None, feeds)[0])


class OnnxUNet(OnnxGraph):
    """The UNet's ``forward``, with the call convention the families use."""

    def __init__(self, unet, path: Path, threads: int):
        super().__init__(path, GRAPHS["unet"][2], threads)

    def run(self, sample, timestep, context):  # noqa: D102 - a shared timestep is given to every row
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)
        return super().run(sample, t.expand(sample.shape[0]) if t.numel() == 1 else t, context)

    def forward(self, sample, timestep, encoder_hidden_states=None, timestep_cond=None, cross_attention_kwargs=None,
                added_cond_kwargs=None, return_dict: bool = True, **unused: Any):
        extra = [k for k, v in {"timestep_cond": timestep_cond, "cross_attention_kwargs": cross_attention_kwargs,
                                "added_cond_kwargs": added_cond_kwargs, **unused}.items() if v is not None]
        if extra or encoder_hidden_states is None:
            raise LatentscapeError(f"backend 'onnx' runs the plain SD UNet call; this call also passes {', '.join(extra) or 'no text embeddings'}: use backend torch.")
        out = self.run(sample, timestep, encoder_hidden_states).to(sample.dtype)
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=out)
        return (out,)


class OnnxVAEDecoder(OnnxGraph):
    """The VAE's ``decode``."""

    def __init__(self, vae, path: Path, threads: int):
        super().__init__(path, GRAPHS["vae_decoder"][2], threads)

    def decode(self, z, return_dict: bool = True, generator=None):
        out = self.run(z).to(z.dtype)
        if return_dict:
            from diffusers.models.autoencoders.vae import DecoderOutput

            return DecoderOutput(sample=out)
        return (out,)


def _engine(name: str, module, graph: str, engine_class):
    """The engine for ``module``'s ``graph``: from the cache when it is valid and reproduces the torch module on
    the probe input, else exported again."""
    module.eval()
    folder = cache_root() / "backends" / f"{name}-{graph}-{weights_key(module)}"
    wrap, probe_of, _, _ = GRAPHS[graph]
    probe = probe_of(module)
    with torch.no_grad():
        expected = wrap(module)(*probe)
    for attempt in ("cached", "fresh"):
        if attempt == "fresh" or not _cached_ok(folder):
            log.info("exporting the %s for backend %s to %s", graph, name, folder)
            _export(module, folder, graph)
        engine = engine_class(module, folder / GRAPH_FILE, torch.get_num_threads())
        if float((engine.run(*probe) - expected).abs().max()) <= PROBE_TOLERANCE:
            return engine
        log.warning("the cached %s graph in %s does not reproduce the model; exporting it again", name, folder)
    raise LatentscapeError(f"backend '{name}' could not reproduce this model's {graph} (the exported graph differs beyond "
                           f"{PROBE_TOLERANCE}); use backend torch.")


def apply_backend(adapter, name: str | None) -> None:
    """Switch ``adapter``'s denoiser to backend ``name`` (checked; ``torch`` changes nothing) and record it in
    ``adapter.load_options`` for replay."""
    name = check_backend(name)
    if name == "torch":
        return
    unet = adapter.denoiser
    if adapter.name != "sd" or getattr(unet.config, "time_cond_proj_dim", None) is not None:
        kind = "an LCM-distilled SD model" if adapter.name == "sd" else f"a {adapter.name} model"
        raise LatentscapeError(f"backend '{name}' supports SD1.x/2.x UNets; this is {kind}: use backend torch.")
    if adapter.device.type != "cpu" or adapter.dtype != torch.float32:
        raise LatentscapeError(f"backend '{name}' runs on the CPU in fp32; this model is loaded on {adapter.device.type} "
                               f"in {str(adapter.dtype).replace('torch.', '')}: use device cpu and dtype fp32, or backend torch.")
    unet.forward = _engine(name, unet, "unet", OnnxUNet).forward  # nn.Module.__call__ now runs the engine
    vae = adapter.vae
    if type(vae).__name__ == "AutoencoderKL":  # the decode of every frame: ~1.5x faster under ONNX Runtime here
        vae.decode = _engine(name, vae, "vae_decoder", OnnxVAEDecoder).decode
    adapter.load_options["backend"] = name
