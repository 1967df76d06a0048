"""GPU benchmark: a 48-frame 512x512 morph at 50 steps, CFG 7.5, on SD1.5- and SDXL-architecture models.

    python bench/bench_gpu.py                          # on a CUDA machine: both architectures, full size
    python bench/bench_gpu.py --arch sd15 --compile    # also time torch.compile'd denoisers
    python bench/bench_gpu.py --toy --device cpu       # tiny configs on the CPU (what the tests run)

The components are built from their published architecture configs with random weights (no download:
timing does not depend on the weight values) and shared by both sides, so both run the very same modules
in the same dtype. Sides, alternating, best of ``--repeats``:

- ``latentscape``: ``morph`` with uniform pacing, ``--batch-size`` frames per forward, through the GPU fast
  path of :mod:`latentscape.models.fast` (no host sync per step, ``--vae-batch`` images per VAE decode);
- ``diffusers batched``: the prompts encoded once, per-frame embeddings and noise interpolated, one
  pipeline call per chunk of ``--batch-size`` frames with batched ``prompt_embeds``/``latents``;
- with ``--compile`` both again after ``load(..., compile=MODE)``'s compile of the shared denoiser
  (channels_last + ``torch.compile`` in place; the compile time is printed apart).

On CUDA it also counts the host syncs of a 4-step latentscape denoise (``torch.cuda.set_sync_debug_mode``),
which should not grow with the steps.

Prints frames/s, the ratio to diffusers batched and the fraction of the FLOP limit: FLOPs per frame from
``torch.utils.flop_counter`` (UNet calls and VAE decode) over a dense half-precision matmul peak measured in
the same run.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

PROMPTS = ("a photo of a cat sitting on a red chair", "an astronaut riding a horse on the moon")


def _clip_text(hidden: int, layers: int, heads: int, ff: int, projection: bool, act: str):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=ff, num_hidden_layers=layers,
                            num_attention_heads=heads, max_position_embeddings=77, hidden_act=act, projection_dim=hidden)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _vae(toy: bool, scaling: float):
    from diffusers import AutoencoderKL

    channels = (8, 8, 16, 16) if toy else (128, 256, 512, 512)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=channels,
                         layers_per_block=1 if toy else 2, norm_num_groups=4 if toy else 32, latent_channels=4,
                         sample_size=512, scaling_factor=scaling, force_upcast=True)


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  num_train_timesteps=1000, steps_offset=1)


def _tokenizer():
    from transformers import CLIPTokenizer

    from latentscape.models.load import EMBEDDED_DIR

    return CLIPTokenizer.from_pretrained(str(EMBEDDED_DIR / "tokenizer"))


def build_sd15(toy: bool):
    """SD1.5's architecture (UNet 860 M, CLIP ViT-L text encoder, f8c4 VAE), random weights."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    text = _clip_text(32, 2, 4, 64, False, "quick_gelu") if toy else _clip_text(768, 12, 12, 3072, False, "quick_gelu")
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=1 if toy else 2,
        block_out_channels=(8, 16, 16, 16) if toy else (320, 640, 1280, 1280), norm_num_groups=4 if toy else 32,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=text.config.hidden_size, attention_head_dim=2 if toy else 8)
    return StableDiffusionPipeline(vae=_vae(toy, 0.18215), text_encoder=text, tokenizer=_tokenizer(), unet=unet,
                                   scheduler=_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def build_sdxl(toy: bool):
    """SDXL's architecture (UNet 2.6 B, CLIP ViT-L + OpenCLIP bigG, f8c4 VAE), random weights."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    if toy:
        text, text_2 = _clip_text(32, 2, 4, 64, False, "quick_gelu"), _clip_text(48, 2, 4, 64, True, "gelu")
    else:
        text, text_2 = _clip_text(768, 12, 12, 3072, False, "quick_gelu"), _clip_text(1280, 32, 20, 5120, True, "gelu")
    time_dim = 8 if toy else 256
    unet = UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=1 if toy else 2,
        block_out_channels=(8, 16, 16) if toy else (320, 640, 1280), norm_num_groups=4 if toy else 32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 1) if toy else (1, 2, 10), attention_head_dim=(2, 2, 2) if toy else (5, 10, 20),
        cross_attention_dim=text.config.hidden_size + text_2.config.hidden_size, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + text_2.config.projection_dim)
    return StableDiffusionXLPipeline(vae=_vae(toy, 0.13025), text_encoder=text, text_encoder_2=text_2,
                                     tokenizer=_tokenizer(), tokenizer_2=_tokenizer(), unet=unet, scheduler=_scheduler())


ARCHS = {"sd15": ("sd", build_sd15), "sdxl": ("sdxl", build_sdxl)}


def wrap(pipe, family: str, device: torch.device, dtype: torch.dtype, vae_batch: int | None = None):
    """The latentscape adapter over the very same pipeline object (no copy of the weights), with the fast path's
    VAE batch (``None``: the device's default)."""
    from latentscape.models.fast import apply_fast_path
    from latentscape.models.latent_format import FORMATS
    from latentscape.models.load import family_classes

    pipe.to(device, dtype)
    pipe.vae.to(torch.float32)  # both families' VAEs overflow in fp16 (force_upcast), on both sides
    pipe.set_progress_bar_config(disable=True)
    model = family_classes()[family](pipe, FORMATS[family].from_vae_config(pipe.vae.config), model_id=f"random-{family}",
                                     device=device, dtype=dtype)
    apply_fast_path(model, vae_batch=vae_batch)
    return model


def count_syncs(model, args) -> float | None:
    """Host syncs per step of a latentscape denoise on CUDA (``None`` elsewhere): (syncs at 8 steps − at 4) / 4,
    so the one-off syncs of setting up a run cancel out."""
    import warnings

    from latentscape.sampling import denoise

    if model.device.type != "cuda":
        return None
    cond = model.encode_prompts(list(PROMPTS))
    uncond = model.encode_negatives([""] * len(PROMPTS))
    f = model.latent_format.downscale
    noise = torch.randn(len(PROMPTS), 4, args.size // f, args.size // f, generator=torch.Generator().manual_seed(0))
    counts = []
    for steps in (4, 8):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                denoise(model, noise, cond, uncond, steps=steps, guidance_scale=args.cfg)
                torch.cuda.synchronize()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
    return (counts[1] - counts[0]) / 4


def latentscape_side(model, pipe, args):
    from latentscape.workflows.morph import MorphConfig, morph

    config = MorphConfig(keyframes=PROMPTS, frames=args.frames, steps=args.steps, cfg=args.cfg, seed=0,
                         width=args.size, height=args.size, batch_size=args.batch_size)
    return morph(model, config).images


def diffusers_side(model, pipe, args):
    from latentscape.core.interpolate import lerp, slerp

    device, dtype = model.device, model.dtype
    f = pipe.vae_scale_factor
    noise = torch.randn((1, 4, args.size // f, args.size // f), generator=torch.Generator().manual_seed(0))
    ts = [i / (args.frames - 1) for i in range(args.frames)]
    encoded = [pipe.encode_prompt(p, device=device, num_images_per_prompt=1, do_classifier_free_guidance=True,
                                  negative_prompt="") for p in PROMPTS]
    kwargs = {}
    embeds = torch.cat([lerp(encoded[0][0], encoded[1][0], t) for t in ts])
    negative = encoded[0][1].expand(args.frames, *encoded[0][1].shape[1:])
    if len(encoded[0]) == 4:  # SDXL: pooled embeddings too
        kwargs["pooled"] = torch.cat([lerp(encoded[0][2], encoded[1][2], t) for t in ts])
        kwargs["negative_pooled"] = encoded[0][3].expand(args.frames, *encoded[0][3].shape[1:])
    latents = torch.cat([slerp(noise, noise, t) for t in ts]).to(device, dtype)
    images = []
    for s in range(0, args.frames, args.batch_size):
        chunk = slice(s, s + args.batch_size)
        extra = {}
        if kwargs:
            extra = {"pooled_prompt_embeds": kwargs["pooled"][chunk], "negative_pooled_prompt_embeds": kwargs["negative_pooled"][chunk]}
        images += pipe(prompt_embeds=embeds[chunk], negative_prompt_embeds=negative[chunk], latents=latents[chunk],
                       num_inference_steps=args.steps, guidance_scale=args.cfg, height=args.size, width=args.size,
                       output_type="pil", **extra).images
    return images


def flops_per_frame(pipe, args) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    f = pipe.vae_scale_factor
    unet = pipe.unet
    device, dtype = unet.device, unet.dtype
    x = torch.randn(2, 4, args.size // f, args.size // f, device=device, dtype=dtype)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    extra = {}
    if unet.config.addition_embed_type == "text_time":
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        extra["added_cond_kwargs"] = {"text_embeds": torch.randn(2, pooled, device=device, dtype=dtype),
                                      "time_ids": torch.zeros(2, 6, device=device, dtype=dtype)}
    with torch.no_grad():
        with FlopCounterMode(display=False) as u:
            unet(x, torch.tensor(500, device=device), encoder_hidden_states=ctx, **extra)
        with FlopCounterMode(display=False) as v:
            pipe.vae.decode(x[:1].float())
    return float(u.get_total_flops() * args.steps + v.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    n = 8192 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(10):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, model, pipe, args) -> float:
    sync(model.device)
    start = time.perf_counter()
    fn(model, pipe, args)
    sync(model.device)
    return time.perf_counter() - start


def bench_arch(name: str, args) -> list[str]:
    family, build = ARCHS[name]
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype if device.type == "cuda" else "fp32"]
    pipe = build(args.toy)
    model = wrap(pipe, family, device, dtype, args.vae_batch)
    sides = {"latentscape": latentscape_side, "diffusers batched": diffusers_side}
    results: dict[str, float] = {}
    compile_s = None
    for compiled in (False, True) if args.compile else (False,):
        if compiled:
            from latentscape.models.fast import apply_fast_path, check_compile

            start = time.perf_counter()
            apply_fast_path(model, vae_batch=model.vae_batch, compile_mode=check_compile(args.compile_mode, device, None))
            for fn in sides.values():  # compile and warm both sides outside the timing
                fn(model, pipe, argparse.Namespace(**{**vars(args), "frames": args.batch_size, "steps": 2}))
            compile_s = time.perf_counter() - start
        else:
            for fn in sides.values():
                fn(model, pipe, argparse.Namespace(**{**vars(args), "frames": 2, "steps": 1}))
        best = {k: float("inf") for k in sides}
        for _ in range(args.repeats):
            for key, fn in sides.items():
                best[key] = min(best[key], timed(fn, model, pipe, args))
        for key, t in best.items():
            results[key + (" + compile" if compiled else "")] = t
    syncs = count_syncs(model, args)
    flops = flops_per_frame(pipe, args)
    peak = matmul_peak(device, dtype)
    base = args.frames / results["diffusers batched"]
    lines = [f"{name}: {args.size}x{args.size}, {args.frames} frames, {args.steps} steps, CFG {args.cfg}, batch "
             f"{args.batch_size}, {device} {dtype}, {'toy' if args.toy else 'full-size'} architecture; "
             f"{flops / 1e12:.2f} TFLOP per frame, matmul peak {peak / 1e12:.1f} TFLOP/s -> limit {peak / flops:.2f} frames/s"]
    lines.append(f"  VAE batch {model.vae_batch}; host syncs per denoising step: "
                 f"{'n/a (not CUDA)' if syncs is None else f'{syncs:g}'}")
    if compile_s is not None:
        lines.append(f"  compile + warm-up: {compile_s:.1f} s")
    for key, t in results.items():
        fps = args.frames / t
        lines.append(f"  {key:28s} {t:8.2f} s  {fps:7.2f} frames/s  {fps / base:5.2f}x batched  "
                     f"{100 * fps * flops / peak:5.1f} % of limit")
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=[*ARCHS, "all"], default="all")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16", help="on CUDA (the CPU runs fp32)")
    p.add_argument("--device", default=None)
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd denoisers")
    p.add_argument("--compile-mode", default="max-autotune-no-cudagraphs",
                   help="default, reduce-overhead (CUDA graphs), max-autotune, max-autotune-no-cudagraphs")
    p.add_argument("--vae-batch", type=int, default=None, help="images per VAE decode (default: 1 on CPU, 8 on GPU)")
    p.add_argument("--toy", action="store_true", help="tiny configs (for a CPU check of the script)")
    args = p.parse_args(argv)
    lines = []
    for name in ARCHS if args.arch == "all" else (args.arch,):
        arch_lines = bench_arch(name, args)
        print("\n".join(arch_lines), flush=True)
        lines += arch_lines
    return lines


if __name__ == "__main__":
    main()
