"""`encode`, `decode` and `inspect`: moving between pixels and latents, and the numbers behind it."""

from __future__ import annotations

import argparse
from pathlib import Path

from latentscape.interfaces.common import (
    IMAGE_SUFFIXES, add_model_args, add_overwrite_arg, check_output_suffix, check_writable, emit, json_output, json_result, load_model,
)

RESIZE = ["none", "stretch", "crop"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="image -> latent .safetensors", description="VAE-encode an image into a latent file (model space, family and scale recorded).")
    p.add_argument("image")
    p.add_argument("-o", "--output", required=True, help="latent file to write (.safetensors)")
    p.add_argument("--resize", default="none", choices=RESIZE)
    p.add_argument("--json", action="store_true")
    add_model_args(p)
    add_overwrite_arg(p)
    p.set_defaults(func=run_encode)

    p = sub.add_parser("decode", help="latent .safetensors -> image", description="VAE-decode a latent file written by `encode`.")
    p.add_argument("latents")
    p.add_argument("-o", "--output", required=True, help="image to write (.png; a batch writes NAME-0.png, ...)")
    p.add_argument("--json", action="store_true")
    add_model_args(p)
    add_overwrite_arg(p)
    p.set_defaults(func=run_decode)

    p = sub.add_parser("inspect", help="the numbers of an image's latent",
                       description="Encode an image and report pixel vs latent values, the compression ratio, per-channel "
                                   "latent statistics and the reconstruction PSNR; write the fast linear RGB preview.")
    p.add_argument("image")
    p.add_argument("-o", "--output", default=None, help="write the linear latent->RGB preview here (.png)")
    p.add_argument("--reconstruction", default=None, help="also write decode(encode(image)) here (.png)")
    p.add_argument("--resize", default="none", choices=RESIZE)
    p.add_argument("--json", action="store_true")
    add_model_args(p)
    add_overwrite_arg(p)
    p.set_defaults(func=run_inspect)


def run_encode(args: argparse.Namespace) -> int:
    from latentscape.io.latents import save_latents
    from latentscape.workflows.latents import encode_image

    check_output_suffix(args.output, (".safetensors",))
    check_writable([args.output], overwrite=args.overwrite, inputs=[args.image])
    model = load_model(args)
    latents, meta = encode_image(model, args.image, args.resize)
    save_latents(args.output, latents, meta)
    emit(args, json_result(args, "encode", [json_output(args.output, "latent")], model, shape=list(latents.shape),
                           scale=meta.scale, shift=meta.shift),
         f"wrote {args.output}: latents {tuple(latents.shape)} ({meta.family}, scale {meta.scale:g}, shift {meta.shift:g})")
    return 0


def run_decode(args: argparse.Namespace) -> int:
    from latentscape.io.recipe import save_png
    from latentscape.workflows.latents import decode_file

    check_output_suffix(args.output, IMAGE_SUFFIXES)
    check_writable([args.output], overwrite=args.overwrite, inputs=[args.latents])
    model = load_model(args)
    from latentscape.workflows.invert import reconstruct_file  # an `invert` file replays its sampler
    from latentscape.workflows.inversion_file import is_inversion_file

    images = (reconstruct_file if is_inversion_file(args.latents) else decode_file)(model, args.latents)
    out = Path(args.output)
    paths = [out] if len(images) == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(len(images))]
    for image, path in zip(images, paths):
        save_png(image, path, None)
    emit(args, json_result(args, "decode", [json_output(p, "image") for p in paths], model), "\n".join(f"wrote {p}" for p in paths))
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from latentscape.io.recipe import save_png
    from latentscape.workflows.latents import inspect_image

    check_output_suffix(args.output, IMAGE_SUFFIXES)
    check_output_suffix(args.reconstruction, IMAGE_SUFFIXES, "--reconstruction")
    check_writable([args.output], overwrite=args.overwrite, inputs=[args.image])
    check_writable([args.reconstruction], overwrite=args.overwrite, inputs=[args.image], flag="--reconstruction")
    model = load_model(args)
    result = inspect_image(model, args.image, args.resize)
    if args.output:
        save_png(result.preview, args.output, None)
        result.stats["preview"] = args.output
    if args.reconstruction:
        save_png(result.reconstruction, args.reconstruction, None)
        result.stats["reconstruction"] = args.reconstruction
    written = [json_output(args.output, "preview")] if args.output else []
    written += [json_output(args.reconstruction, "image")] if args.reconstruction else []
    emit(args, json_result(args, "inspect", written, model, **{k: v for k, v in result.stats.items() if k not in ("model", "family")}),
         format_inspection(result.stats))
    return 0


def format_inspection(s: dict) -> str:
    w, h = s["image_size"]
    c, lh, lw = s["latent_shape"]
    lines = [
        f"model       {s['model']} ({s['family']})",
        f"image       {s['image']}: {w}x{h}x3 = {s['pixel_values']:,} pixel values in [{s['pixel_range'][0]:.2f}, {s['pixel_range'][1]:.2f}]",
        f"latent      {lw}x{lh}x{c} = {s['latent_values']:,} values (downscale {s['downscale']}, scale {s['scale']:g}, shift {s['shift']:g})",
        f"compression {s['compression_ratio']:.1f}x fewer values",
        f"latent      mean {s['latent_mean']:+.3f}, std {s['latent_std']:.3f}",
        "channel      mean     std      min      max",
    ]
    lines += [f"  {ch['channel']:>2}     {ch['mean']:+.3f}  {ch['std']:.3f}  {ch['min']:+.3f}  {ch['max']:+.3f}" for ch in s["channels"]]
    lines.append(f"round trip  decode(encode(image)) PSNR {s['reconstruction_psnr_db']:.2f} dB")
    if s.get("preview"):
        lines.append(f"preview     {s['preview']} (linear latent->RGB, no VAE)")
    if s.get("reconstruction"):
        lines.append(f"decoded     {s['reconstruction']}")
    return "\n".join(lines)
