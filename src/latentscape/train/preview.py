"""Distil a tiny preview decoder (TAESD architecture, diffusers ``AutoencoderTiny``) from a model's VAE decoder.

The student learns to map *model-space* latents (what the denoising loop holds) straight to the pixels the
full VAE decoder makes of them, so a live preview costs a fraction of a decode. Data: the emoji images encoded
by the model's own VAE (posterior mean); targets: the full decoder's output for those latents (distillation,
not reconstruction). The held-out images (the dataset's own split) give the PSNR against the full decoder
and the speed comparison, both written to ``report.json`` beside the weights.

    nice -n 10 python -m latentscape.train.preview --out src/latentscape/models/embedded/preview

Only the decoder is trained; the saved model's encoder is the smallest the class allows and is never used.
Weights are saved in fp16 safetensors (``config.json`` + ``diffusion_pytorch_model.safetensors``), loadable by
:func:`latentscape.models.preview.load_preview_decoder`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviewConfig:
    width: int = 32  # channels of every decoder stage (TAESD uses 64)
    blocks: tuple[int, ...] = (2, 2, 2, 1)  # blocks per stage; one stage per factor 2 of the VAE, plus one
    train_images: int = 512
    test_images: int = 128  # of the dataset's held-out images
    steps: int = 300
    batch: int = 16
    lr: float = 2e-3
    seed: int = 0


def student(latent_channels: int, stages: int, config: PreviewConfig):
    """An ``AutoencoderTiny`` whose decoder maps model-space latents (scaling 1, shift 0) to pixels."""
    from diffusers import AutoencoderTiny

    if len(config.blocks) != stages:
        raise ValueError(f"blocks has {len(config.blocks)} stages; this VAE needs {stages}")
    return AutoencoderTiny(
        latent_channels=latent_channels,
        decoder_block_out_channels=(config.width,) * stages,
        num_decoder_blocks=config.blocks,
        encoder_block_out_channels=(8,) * stages,  # unused: the smallest encoder the class builds
        num_encoder_blocks=(1,) * stages,
        scaling_factor=1.0,
        shift_factor=0.0,
    )


@torch.no_grad()
def teacher_pairs(model, images: np.ndarray, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(model-space latents, full-decoder pixels in [-1, 1]) for uint8 images (N, H, W, 3)."""
    latents, pixels = [], []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1
        z = model.encode_images(x)
        latents.append(z)
        pixels.append(model.decode(z).clamp(-1, 1))
    return torch.cat(latents), torch.cat(pixels)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), over the whole batch."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


def _best_time(fn, repeats: int = 7) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def compare(model, tiny, latents: torch.Tensor, targets: torch.Tensor) -> dict:
    """PSNR of the student against the full decoder on ``latents``, and both decoders' time per image
    (one image, as a live preview decodes it, and a batch of 8), measured alternately in this process."""
    out = torch.cat([tiny.decode(z, return_dict=False)[0] for z in latents.split(64)]).clamp(-1, 1)
    one, eight = latents[:1], latents[:8]
    full = lambda z: model.vae.decode(model.latent_format.to_vae(z), return_dict=False)[0]  # noqa: E731
    small = lambda z: tiny.decode(z, return_dict=False)[0]  # noqa: E731
    for fn in (full, small):
        fn(eight)  # warm-up
    times = {}
    for name, fn in (("full", full), ("preview", small)):
        times[f"{name}_1_ms"] = 1000 * _best_time(lambda: fn(one))
        times[f"{name}_8_ms_per_image"] = 1000 * _best_time(lambda: fn(eight)) / 8
    return {"psnr_db": round(psnr(out, targets), 2), "images": len(latents),
            "speedup_1": round(times["full_1_ms"] / times["preview_1_ms"], 2),
            "speedup_8": round(times["full_8_ms_per_image"] / times["preview_8_ms_per_image"], 2),
            **{k: round(v, 3) for k, v in times.items()}, "threads": torch.get_num_threads()}


def distil(model, data_path: Path, config: PreviewConfig) -> tuple[torch.nn.Module, dict]:
    """Train the student on the dataset's training images; return it (fp32) and the held-out report."""
    data = np.load(data_path)
    images, heldout = data["images"], data["heldout"]
    rng = np.random.default_rng(config.seed)
    train_idx = rng.permutation(np.flatnonzero(~heldout))[: config.train_images]
    test_idx = np.sort(rng.permutation(np.flatnonzero(heldout))[: config.test_images])
    start = time.perf_counter()
    z_train, y_train = teacher_pairs(model, images[np.sort(train_idx)])
    z_test, y_test = teacher_pairs(model, images[test_idx])
    log.info("teacher pairs: %d train, %d held out in %.0f s", len(z_train), len(z_test), time.perf_counter() - start)

    stages = len(model.vae.config.block_out_channels)
    torch.manual_seed(config.seed)
    tiny = student(model.latent_format.channels, stages, config)
    decoder = tiny.decoder
    opt = torch.optim.AdamW(decoder.parameters(), lr=config.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.1)
    g = torch.Generator().manual_seed(config.seed)
    start = time.perf_counter()
    for step in range(config.steps):
        idx = torch.randint(len(z_train), (config.batch,), generator=g)
        z, y = z_train[idx], y_train[idx]
        if step % 2:  # horizontal flips: the decoder is equivariant to them, and it doubles the data
            z, y = z.flip(-1), y.flip(-1)
        out = decoder(z)
        loss = (out - y).abs().mean() + ((out - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == config.steps - 1:
            log.info("step %d/%d loss %.4f (%.0f s)", step + 1, config.steps, float(loss.detach()), time.perf_counter() - start)
    tiny.eval()
    report = {"train_s": round(time.perf_counter() - start, 1), "config": asdict(config),
              "parameters": sum(p.numel() for p in decoder.parameters()), **compare(model, tiny, z_test, y_test)}
    return tiny, report


def save(tiny, out: Path, report: dict) -> None:
    """fp16 safetensors weights, config and the report, into ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    tiny.to(torch.float16).save_pretrained(out, safe_serialization=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--data", default=None, help="emoji64.npz (default: the dataset cache)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=PreviewConfig.steps)
    p.add_argument("--width", type=int, default=PreviewConfig.width)
    p.add_argument("--train-images", type=int, default=PreviewConfig.train_images)
    p.add_argument("--test-images", type=int, default=PreviewConfig.test_images)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    from latentscape.models.load import load
    from latentscape.train.data import DATA_FILE, default_cache

    model = load(args.model, device="cpu", dtype="fp32", preview_decoder=False)
    config = PreviewConfig(width=args.width, steps=args.steps, train_images=args.train_images, test_images=args.test_images)
    tiny, report = distil(model, Path(args.data) if args.data else default_cache() / DATA_FILE, config)
    save(tiny, Path(args.out), report)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
