"""The GPU fast path, checked on the CPU at toy size: no host sync per denoising step, batched VAE calls
(with the CPU default unchanged), and ``compile``'s validation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.models import fast
from latentscape.models.load import load
from latentscape import sampling
from latentscape.sampling import denoise

SRC = str(Path(latentscape.__file__).parent)
# Tensor methods that copy device data to the host (each is a blocking sync on CUDA)
DEVICE_TO_HOST = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu")
HOST_TO_DEVICE = ("tensor", "as_tensor", "from_numpy")  # torch functions that make a tensor from host data
HOST_FACTORIES = ("zeros", "ones", "full", "arange", "empty", "randn", "linspace")  # on the host unless given a device


class SyncCounter:
    """Counts, while ``active``, the calls latentscape's own code makes that sync the host with a GPU: reading a
    tensor's value (``item``, ``bool``, ``float``, ``.cpu()``...), making a tensor from host data or on the host
    (``torch.zeros(...)`` without a device: it has to be copied over to meet the latents), and a ``.to()`` with a
    device that copies (a host->device copy blocks on CUDA; a ``.to`` that returns its tensor as is costs nothing)."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[str, str, int]] = []
        self.active = False
        for name in DEVICE_TO_HOST:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, getattr(torch.Tensor, name)))
        for name in HOST_TO_DEVICE:
            monkeypatch.setattr(torch, name, self._wrap(name, getattr(torch, name)))
        for name in HOST_FACTORIES:
            monkeypatch.setattr(torch, name, self._wrap(name, getattr(torch, name), unless="device"))
        to = torch.Tensor.to

        def to_device(tensor, *args, **kwargs):
            out = to(tensor, *args, **kwargs)
            if out is not tensor and ("device" in kwargs or any(isinstance(a, (torch.device, str)) for a in args)):
                self._record("to(device)")
            return out

        monkeypatch.setattr(torch.Tensor, "to", to_device)

    def _record(self, name: str) -> None:
        frame = sys._getframe(2)
        if self.active and frame.f_code.co_filename.startswith(SRC):
            self.calls.append((name, frame.f_code.co_filename.removeprefix(SRC), frame.f_lineno))

    def _wrap(self, name, original, unless: str | None = None):
        def wrapper(*args, **kwargs):
            if unless is None or kwargs.get(unless) is None:
                self._record(name)
            return original(*args, **kwargs)

        return wrapper

    def callback(self, state) -> None:
        """The window is steps 1 .. n-1 in full (all but the first, which may set things up once): from after
        step 0's callback to the last step's callback."""
        self.active = 0 < state.step + 1 < state.total


def _count_step_syncs(monkeypatch, model, **options) -> list:
    cond = model.encode_prompts(["a red circle", "a blue square", "a green cat"])
    uncond = model.encode_negatives([""] * 3)
    noise = torch.randn(3, model.latent_format.channels, 4, 4, generator=torch.Generator().manual_seed(0))
    counter = SyncCounter(monkeypatch)
    denoise(model, noise, cond, uncond, steps=5, callback=counter.callback, **options)
    monkeypatch.undo()
    return counter.calls


@pytest.mark.parametrize("options", [
    {"guidance_scale": 7.5},
    {"guidance_scale": torch.tensor([1.0, 4.0, 7.5]), "guidance_rescale": torch.tensor([0.0, 0.3, 0.7])},
], ids=["shared-cfg", "per-item-cfg-and-rescale"])
def test_no_host_sync_per_step_sd(tiny_sd, monkeypatch, options):
    model = load(tiny_sd, device="cpu")
    assert _count_step_syncs(monkeypatch, model, **options) == []


def test_no_host_sync_per_step_sdxl(tiny_sdxl, monkeypatch):
    model = load(tiny_sdxl, device="cpu")  # size micro-conditioning: its time ids are made once per size
    assert _count_step_syncs(monkeypatch, model, guidance_scale=5.0) == []


def test_no_host_sync_per_step_flux(tiny_flux, monkeypatch):
    model = load(tiny_flux, device="cpu")  # embedded guidance moved once; image ids made once per size
    calls = _count_step_syncs(monkeypatch, model, sampler="flow_euler", guidance_scale=1.0, embedded_guidance=3.5)
    assert calls == []


def test_the_counter_sees_a_sync(tiny_sd, monkeypatch):
    """The counter is not blind: the loop as it was before the fast path, which read CFG's scale back with
    ``bool()``/``float()`` at every step (``sampling._same_or_per_item``), is counted: 2 calls x 4 steps."""
    guide = sampling._guide

    def old_guide(uncond, cond, guidance):
        sampling._same_or_per_item(torch.full((len(cond),), 7.5))
        return guide(uncond, cond, guidance)

    monkeypatch.setattr(sampling, "_guide", old_guide)
    model = load(tiny_sd, device="cpu")
    calls = _count_step_syncs(monkeypatch, model, guidance_scale=7.5)
    assert sorted(name for name, _, _ in calls) == ["__bool__"] * 4 + ["__float__"] * 4, calls


# --- batched VAE -----------------------------------------------------------------------------------

def test_vae_batch_default_is_one_on_cpu(tiny_sd):
    model = load(tiny_sd, device="cpu")
    assert model.vae_batch == 1 and "vae_batch" not in model.load_options


@pytest.mark.parametrize("bad", [0, -2, 2.5, "4", True, 5000])
def test_vae_batch_bad_values(tiny_sd, bad):
    with pytest.raises(LatentscapeError, match=r"^vae_batch got .*accepted: a whole number from 1 to 1024"):
        load(tiny_sd, device="cpu", vae_batch=bad)


def test_batched_vae_matches_one_at_a_time(tiny_sd):
    one = load(tiny_sd, device="cpu")
    many = load(tiny_sd, device="cpu", vae_batch=4)
    assert many.vae_batch == 4 and many.load_options["vae_batch"] == 4
    calls = []
    decode = many.vae.decode
    many.vae.decode = lambda z, **kw: (calls.append(len(z)), decode(z, **kw))[1]
    latents = torch.randn(6, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    a, b = one.decode(latents), many.decode(latents)
    assert calls == [4, 2]  # two calls, not six
    assert torch.allclose(a, b, atol=1e-5)
    pixels = a.clamp(-1, 1)
    assert torch.allclose(one.encode_images(pixels), many.encode_images(pixels), atol=1e-5)


def test_vae_out_of_memory_retries_in_halves(tiny_sd):
    model = load(tiny_sd, device="cpu", vae_batch=8)
    decode = model.vae.decode
    sizes = []

    def small_memory(z, **kw):
        sizes.append(len(z))
        if len(z) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return decode(z, **kw)

    model.vae.decode = small_memory
    latents = torch.randn(5, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    out = model.decode(latents)
    assert sizes == [5, 2, 2, 1] and model.vae_batch == 2  # 5 fails, then halves: 2 + 2 + 1
    reference = load(tiny_sd, device="cpu").decode(latents)
    assert out.shape == reference.shape and torch.allclose(out, reference, atol=1e-5)


def test_vae_out_of_memory_on_one_image_is_raised(tiny_sd):
    model = load(tiny_sd, device="cpu")

    def no_memory(z, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    model.vae.decode = no_memory
    with pytest.raises(torch.OutOfMemoryError):
        model.decode(torch.zeros(2, 4, 4, 4))


# --- compile ---------------------------------------------------------------------------------------

CPU = torch.device("cpu")


def test_compile_off_is_none():
    assert fast.check_compile(False, CPU, None) is None and fast.check_compile(None, CPU, "onnx") is None


@pytest.mark.parametrize("value, device, backend, message", [
    ("fastest", CPU, None, r"^compile got 'fastest'; accepted: true/false or a torch.compile mode \(default, reduce-overhead"),
    (True, CPU, "onnx", r"^compile compiles the torch denoiser, but backend 'onnx' replaces it; drop compile=True"),
    ("reduce-overhead", CPU, None, r"^compile='reduce-overhead' records CUDA graphs, which need a CUDA device"),
    (True, torch.device("mps"), None, r"^compile is supported on cuda and cpu devices, not mps; drop compile=True"),
])
def test_compile_refused(value, device, backend, message):
    with pytest.raises(LatentscapeError, match=message):
        fast.check_compile(value, device, backend)


def test_compile_needs_a_cpu_compiler(monkeypatch):
    monkeypatch.setattr(fast.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(LatentscapeError, match=r"^compile on the CPU needs a C\+\+ compiler .*install one, or drop compile=True\.$"):
        fast.check_compile(True, CPU, None)


def test_compile_on_cuda_needs_triton(monkeypatch):
    monkeypatch.setattr(fast.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LatentscapeError, match=r"^compile on CUDA needs the triton package .*pip install triton"):
        fast.check_compile("max-autotune", torch.device("cuda"), None)


def test_compile_is_checked_before_the_model_loads(tiny_sd, monkeypatch):
    import diffusers

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_pretrained", None)  # loading would fail
    with pytest.raises(LatentscapeError, match="reduce-overhead' records CUDA graphs"):
        load(tiny_sd, device="cpu", compile="reduce-overhead")


def test_compile_cli_bad_input_exits_2(capsys, tiny_sd, tmp_path):
    from latentscape.interfaces.cli import main

    out = tmp_path / "x.png"
    code = main(["generate", "a cat", "--model", str(tiny_sd), "--device", "cpu", "--compile", "reduce-overhead",
                 "--steps", "1", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "latentscape generate: error: --compile reduce-overhead records CUDA graphs" in err
    assert err.count("\n") == 1 and "use --compile default" in err  # the CLI writes the flag, the library the field


def test_compile_marks_the_denoiser(tiny_sd, monkeypatch):
    """``compile=True`` compiles the denoiser in place (lazily) and records the mode; nothing is compiled yet."""
    modes = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: modes.append((type(self).__name__, kw)))
    model = load(tiny_sd, device="cpu", compile=True)
    assert modes == [("UNet2DConditionModel", {"mode": "default"})]
    assert model.load_options["compile"] == "default"


def test_attention_runs_through_sdpa(tiny_sd):
    model = load(tiny_sd, device="cpu")
    processors = {type(p).__name__ for p in model.denoiser.attn_processors.values()}
    assert processors == {"AttnProcessor2_0"}


def test_half_precision_keeps_an_fp32_vae(tiny_sdxl):
    """fp16 (the GPU default for SD/SDXL) keeps the VAE in fp32 where its config says it overflows in fp16
    (SDXL's does); the denoiser runs in fp16 and its latents decode to finite pixels through the fp32 VAE."""
    model = load(tiny_sdxl, device="cpu", dtype="fp16")
    assert model.denoiser.dtype == torch.float16 and model.vae.dtype == torch.float32
    cond, uncond = model.encode_prompts(["a cat"]), model.encode_negatives([""])
    latents = denoise(model, torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0)), cond, uncond, steps=2)
    assert latents.dtype == torch.float16
    pixels = model.decode(latents)
    assert pixels.dtype == torch.float32 and bool(torch.isfinite(pixels).all())
    assert load(tiny_sdxl, device="cpu", dtype="bf16").vae.dtype == torch.bfloat16  # bf16 has fp32's range
