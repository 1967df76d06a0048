"""Benchmark: CPU inference engines for the denoiser, and the 24-frame morph per backend, in one run.

    python bench/bench_backends.py                 # the embedded model, the CLI's thread policy
    python bench/bench_backends.py --threads 1     # one core
    python bench/bench_backends.py --compile       # also torch.compile (inductor; minutes of compile time)

Part 1, the UNet alone at the morph's real shapes (``--batch-size`` frames x 2 CFG rows, the model's latent
size, 77 tokens x the text encoder's width), every engine called alternately, best of ``--repeats``: torch
eager (the default), channels_last, ``torch.jit.trace`` + freeze + ``optimize_for_inference``, ONNX Runtime
(the ``onnx`` backend's own session), OpenVINO (the same ONNX graph, CPU plugin, f32), and optionally
``torch.compile``. Each row gives wall time and process CPU time (on a shared CPU the wall time swings with
the other jobs; CPU seconds show the work an engine does) and the max difference to torch.

Part 2, the 24-frame morph: latentscape with each installed backend and diffusers batched (bench_morph.py's
fair baseline: one pipeline call per chunk with batched embeddings and latents), alternating, best of
``--repeats``; ratios against diffusers batched, the fraction of the FLOP limit (bench_morph.py's FLOP
counter and matmul peak, measured in this run) and the max pixel difference to the torch backend.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what the latentscape CLI sets

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_morph import (  # noqa: E402
    diffusers_batched, flops_per_frame, latentscape_morph, load_pipeline, matmul_peak,
)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def unet_engines(unet, x, t, ctx, threads: int, compile_too: bool, folder: Path) -> dict:
    """name -> a no-argument call of that engine on (x, t, ctx), plus one-off setup seconds."""
    from latentscape.models.backends import GRAPH_FILE, OnnxUNet, _export, _UNetGraph

    graph = _UNetGraph(unet).eval()
    engines, setup = {"torch": lambda: graph(x, t, ctx)}, {"torch": 0.0}
    import copy

    cl = copy.deepcopy(graph).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    engines["channels_last"], setup["channels_last"] = (lambda: cl(x_cl, t, ctx)), 0.0
    start = time.perf_counter()
    traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(graph, (x, t, ctx), check_trace=False)))
    traced(x, t, ctx)
    engines["jit freeze"], setup["jit freeze"] = (lambda: traced(x, t, ctx)), time.perf_counter() - start
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        start = time.perf_counter()
        _export(unet, folder)
        ort = OnnxUNet(unet, folder / GRAPH_FILE, threads)
        engines["onnxruntime"], setup["onnxruntime"] = (lambda: ort.run(x, t, ctx)), time.perf_counter() - start
        if importlib.util.find_spec("openvino"):
            import openvino as ov

            start = time.perf_counter()
            compiled = ov.Core().compile_model(str(folder / GRAPH_FILE), "CPU", {
                "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
            request = compiled.create_infer_request()
            feeds = [x.numpy(), t.numpy(), ctx.numpy()]
            engines["openvino"] = lambda: torch.from_numpy(request.infer(feeds)[0].copy())
            setup["openvino"] = time.perf_counter() - start
    if compile_too:
        start = time.perf_counter()
        compiled_graph = torch.compile(graph)
        compiled_graph(x, t, ctx)
        engines["torch.compile"], setup["torch.compile"] = (lambda: compiled_graph(x, t, ctx)), time.perf_counter() - start
    return engines, setup


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=None, help="torch / engine CPU threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=2, help="morph runs per side, alternating; the best counts")
    p.add_argument("--unet-repeats", type=int, default=8, help="UNet calls per engine, alternating; the best counts")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (inductor) on the UNet")
    p.add_argument("--skip-morph", action="store_true", help="only part 1")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    import latentscape
    from latentscape.models.backends import BACKENDS
    from latentscape.models.load import EMBEDDED_DIR

    model = latentscape.load("embedded", device="cpu")
    unet = model.denoiser.eval()
    w, h = model.default_size()
    f = model.latent_format.downscale
    rows = args.batch_size * (2 if args.cfg > 1 else 1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, unet.config.in_channels, h // f, w // f, generator=g)
    ctx = torch.randn(rows, model.pipe.tokenizer.model_max_length, model.pipe.text_encoder.config.hidden_size, generator=g)
    t = torch.full((rows,), 500.0)
    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, threads {threads}")
    print(f"UNet input: sample {tuple(x.shape)}, context {tuple(ctx.shape)}")

    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        engines, setup = unet_engines(unet, x, t, ctx, threads, args.compile, Path(tmp) / "graph")
        ref = engines["torch"]()
        diffs = {name: float((fn() - ref).abs().max()) for name, fn in engines.items()}
        wall = {name: float("inf") for name in engines}
        cpu = dict(wall)
        for _ in range(args.unet_repeats):
            for name, fn in engines.items():
                _, tw, tc = timed(fn)
                wall[name], cpu[name] = min(wall[name], tw), min(cpu[name], tc)
    print(f"{'engine':14s} {'wall ms':>8s} {'vs torch':>8s} {'CPU ms':>8s} {'vs torch':>8s} {'max |diff|':>10s} {'setup s':>8s}")
    for name in engines:
        print(f"{name:14s} {1000 * wall[name]:8.1f} {wall['torch'] / wall[name]:7.2f}x {1000 * cpu[name]:8.1f} "
              f"{cpu['torch'] / cpu[name]:7.2f}x {diffs[name]:10.1e} {setup[name]:8.1f}")
    if args.skip_morph:
        return

    installed = [b for b in BACKENDS if all(importlib.util.find_spec(pkg) for pkg in BACKENDS[b])]
    size = (w, h)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LATENTSCAPE_CACHE"] = tmp  # a fresh export, timed apart from the morphs
        models = {}
        for b in installed:
            start = time.perf_counter()
            models[b] = latentscape.load("embedded", device="cpu", backend=b)
            print(f"load with backend {b}: {time.perf_counter() - start:.1f} s (export included)")
        pipe = load_pipeline(str(EMBEDDED_DIR))
        sides = {f"latentscape {b}": (latentscape_morph, m) for b, m in models.items()}
        sides["diffusers batched"] = (diffusers_batched, pipe)
        for fn, target in sides.values():  # warm-up, not timed
            fn(target, 2, 1, args.cfg, args.seed, size, args.batch_size)
        best = {name: float("inf") for name in sides}
        best_cpu = dict(best)
        images = {}
        for _ in range(args.repeats):
            for name, (fn, target) in sides.items():
                images[name], tw, tc = timed(lambda: fn(target, args.frames, args.steps, args.cfg, args.seed, size, args.batch_size))
                best[name], best_cpu[name] = min(best[name], tw), min(best_cpu[name], tc)
        peak = matmul_peak(threads)
    flops = flops_per_frame(pipe, args.steps, args.cfg, size)
    print(f"\n{args.frames}-frame morph, {w}x{h}, {args.steps} steps, CFG {args.cfg}, batch {args.batch_size}: "
          f"{flops['total'] / 1e9:.2f} GFLOP per frame ({100 * flops['unet'] / flops['total']:.0f} % UNet); "
          f"fp32 matmul peak now {peak / 1e9:.1f} GFLOP/s -> limit {peak / flops['total']:.2f} frames/s")
    base, base_cpu = best["diffusers batched"], best_cpu["diffusers batched"]
    reference = images["latentscape torch"]
    for name in sides:
        diff = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(reference, images[name]))
        fps = args.frames / best[name]
        print(f"{name:20s} {best[name]:7.2f} s  {fps:5.2f} frames/s  {base / best[name]:5.2f}x batched  "
              f"CPU {best_cpu[name]:6.2f} s ({base_cpu / best_cpu[name]:4.2f}x)  "
              f"{100 * fps * flops['total'] / peak:5.1f} % of limit  max diff to torch {diff}/255")


if __name__ == "__main__":
    main()
