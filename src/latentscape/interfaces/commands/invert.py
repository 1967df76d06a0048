"""`invert`: a real image -> the noise the sampler turns back into it (decode the file to see it again)."""

from __future__ import annotations

import argparse

from latentscape.errors import LatentscapeError
from latentscape.interfaces.common import (
    IMAGE_SUFFIXES, Progress, add_model_args, check_output_suffix, emit, json_output, json_result, load_model,
)

METHOD_CHOICES = ["ddim", "flow", "exact"]
FIELDS = ("method", "steps", "refine", "cfg", "seed")  # workflow fields whose errors name them first


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "invert", help="image -> inverted noise .safetensors (decode replays it)",
        description="Invert a real image into the noise (and, for exact, the per-step noise) from which the "
                    "sampler makes it again; `latentscape decode FILE` turns the file back into the image. "
                    "Prints the reconstruction PSNR/SSIM and the VAE round-trip ceiling for the image.")
    p.add_argument("image")
    p.add_argument("-o", "--output", required=True, help="inversion file to write (.safetensors)")
    p.add_argument("--prompt", default="", help="caption the inversion and its replays are conditioned on (default: empty)")
    p.add_argument("--negative", default="", help="negative prompt (used only with --cfg > 1)")
    p.add_argument("--method", default=None, choices=METHOD_CHOICES,
                   help="exact (default: reconstructs to float error, stores per-step noise), ddim (eps/v models) or flow (SD3/FLUX)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--refine", type=int, default=0, help="ddim/flow: fixed-point iterations per step (each one more model call)")
    p.add_argument("--cfg", type=float, default=1.0, help="guidance during inversion and replay (default 1: none; higher drifts away from the image)")
    p.add_argument("--seed", type=int, default=0, help="exact: seed of the per-level noise draws")
    p.add_argument("--resize", default="none", choices=["none", "stretch", "crop"],
                   help="an image whose sides are not a multiple of the model's grid: none = refuse, stretch to the "
                        "nearest multiple, crop the centre")
    p.add_argument("--reconstruction", default=None, metavar="PNG", help="also write the replayed image here")
    p.add_argument("--no-cache", action="store_true", help="invert even when the inversion cache has this image")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_model_args(p)
    p.set_defaults(func=run_invert)


def _as_flags(exc: LatentscapeError) -> LatentscapeError:
    """The workflow names its fields ('steps got 0'); on the command line they are flags ('--steps got 0')."""
    text = str(exc)
    head = text.split(" ", 1)[0]
    return LatentscapeError("--" + text) if head in FIELDS else exc


def run_invert(args: argparse.Namespace) -> int:
    from latentscape.io.recipe import save_png
    from latentscape.workflows.invert import InvertConfig, check_config, invert_image, measure
    from latentscape.workflows.inversion_file import save_inversion

    check_output_suffix(args.output, (".safetensors",))
    check_output_suffix(args.reconstruction, IMAGE_SUFFIXES, "--reconstruction")
    if not 1 <= args.steps <= 1000:  # before the model loads
        raise LatentscapeError(f"--steps got {args.steps}; expected a whole number from 1 to 1000.")
    config = InvertConfig(image=args.image, prompt=args.prompt, negative=args.negative, method=args.method,
                          steps=args.steps, refine=args.refine, cfg=args.cfg, seed=args.seed, resize=args.resize)
    model = load_model(args)
    try:
        check_config(model, config)
        progress = Progress(not (args.quiet or args.json), desc="inverting")
        result = invert_image(model, args.image, config, cache=not args.no_cache,
                              progress=lambda done, total: progress(_Tick(done - 1, total)))
        progress.close()
    except LatentscapeError as exc:
        raise _as_flags(exc) from None
    stats = measure(model, result)
    reconstruction = stats.pop("reconstruction")
    save_inversion(args.output, result.inversion, result.image_latents, result.meta, result.info)
    if args.reconstruction:
        from latentscape.io.images import tensor_to_pil

        save_png(tensor_to_pil(reconstruction * 2 - 1)[0], args.reconstruction, None)
    inv = result.inversion
    payload = {"path": args.output, "family": model.name, "model": model.model_id, "method": inv.method,
               "sampler": inv.sampler, "steps": inv.steps, "refine": inv.refine, "prompt": args.prompt, "cfg": inv.guidance_scale,
               "shape": list(inv.noise.shape), "cached": result.cached, "seconds": round(result.seconds, 3),
               "reconstruction": args.reconstruction, **stats}
    human = (f"wrote {args.output}: {inv.method} inversion, {inv.steps} steps ({inv.sampler}"
             f"{f', refine {inv.refine}' if inv.refine else ''}), {'from the cache' if result.cached else f'{result.seconds:.1f} s'}\n"
             f"reconstruction  PSNR {stats['psnr_db']:.2f} dB, SSIM {stats['ssim']:.4f}\n"
             f"VAE round trip  PSNR {stats['ceiling_psnr_db']:.2f} dB, SSIM {stats['ceiling_ssim']:.4f} (the ceiling)")
    if args.reconstruction:
        human += f"\nwrote {args.reconstruction}"
    written = [json_output(args.output, "inversion")] + ([json_output(args.reconstruction, "image")] if args.reconstruction else [])
    emit(args, json_result(args, "invert", written, model, **{k: v for k, v in payload.items() if k not in ("model", "family")}), human)
    return 0


class _Tick:
    """The two fields of a loop step state the progress bar reads."""

    def __init__(self, step: int, total: int):
        self.step, self.total, self.denoised, self.latents = step, total, None, None
