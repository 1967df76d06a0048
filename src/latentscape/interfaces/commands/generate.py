"""`generate` (txt2img) and `img2img`."""

from __future__ import annotations

import argparse

from latentscape.errors import LatentscapeError
from latentscape.interfaces.common import (
    IMAGE_SUFFIXES, Progress, add_model_args, add_output_args, add_sampling_args, check_output_suffix, check_writable,
    emit, is_folder_output, json_output, json_result, load_model, output_paths, size_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="text to image", description="Generate images from a prompt (txt2img), or from a "
                       "latent file with --from: an inversion (`invert`) renders its image again, or an edit of it under "
                       "another prompt/CFG; a latent file (`encode`) is img2img in latent space at --strength.")
    p.add_argument("prompt", nargs="?", default=None, help="the prompt (with --from an inversion: default its caption)")
    p.add_argument("--from", dest="from_latents", default=None, metavar="FILE",
                   help="start from this .safetensors: an inversion replays with its own sampler, steps, caption and CFG "
                        "(another PROMPT or --cfg edits it); latents from `encode` are noised to --strength")
    p.add_argument("--strength", type=float, default=None,
                   help="with --from a latent file from `encode`: 0 keeps it, 1 ignores it (default 0.75)")
    add_sampling_args(p)
    add_model_args(p)
    add_output_args(p)
    # None: 25 and "", or what the --from inversion used; a missing PROMPT is argparse's usage error, as before
    p.set_defaults(func=run_generate, steps=None, negative=None, usage_error=p.error)

    p = sub.add_parser("img2img", help="image + prompt to image", description="Repaint an image towards a prompt.")
    p.add_argument("image", help="input image file")
    p.add_argument("prompt")
    p.add_argument("--strength", type=float, default=0.75, help="how much to change: 0 keeps the image, 1 ignores it")
    p.add_argument("--resize", default="none", choices=["none", "stretch", "crop"],
                   help="what to do when the image size is not a multiple of the model's factor (default: error)")
    add_sampling_args(p)
    add_model_args(p)
    add_output_args(p)
    p.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from latentscape.io.recipe import save_png
    from latentscape.workflows.generate import GenerateConfig, generate
    from latentscape.workflows.inputs import anchor_inputs

    if not is_folder_output(args.output):
        check_output_suffix(args.output, IMAGE_SUFFIXES)
    check_output_suffix(args.preview, IMAGE_SUFFIXES, "--preview")
    image, source = getattr(args, "image", None), getattr(args, "from_latents", None)
    fields = _from_file_fields(args, source) if source is not None else {}
    if args.prompt is None and source is None:
        args.usage_error("the following arguments are required: prompt (or --from FILE: a latent or inversion file)")
    batch = args.batch if isinstance(args.batch, int) and args.batch > 0 else 1
    batch = max(batch, fields.pop("items", 1))
    check_writable(output_paths(args.output, [max(args.seed, 0)] * min(batch, 64)), overwrite=args.overwrite, inputs=[image, source])
    check_writable([args.preview], overwrite=True, inputs=[image, source], flag="--preview")
    width, height = size_args(args)
    strength = getattr(args, "strength", None)
    values = dict(
        prompt=args.prompt, negative=args.negative if args.negative is not None else "", seed=args.seed,
        steps=args.steps if args.steps is not None else 25, sampler=args.sampler,
        cfg=args.cfg, true_cfg=args.true_cfg, guidance_rescale=args.guidance_rescale, width=width, height=height,
        batch=args.batch, init_image=image, strength=strength if strength is not None else 0.75,
        resize=getattr(args, "resize", "none"), from_latents=source,
    )
    config = GenerateConfig(**{**values, **fields})
    model = load_model(args, config)
    preview = (args.preview, model.latent_format) if args.preview else None
    progress = Progress(not (args.quiet or args.json), preview=preview)
    out = generate(model, config, callback=progress)
    paths = output_paths(args.output, out.seeds)
    for image, recipe, path in zip(out.images, out.recipes, paths):
        save_png(image, path, anchor_inputs(recipe, path))
    emit(
        args,
        json_result(args, out.recipes[0].workflow, [json_output(p, "image", r) for p, r in zip(paths, out.recipes)], model,
                    workflow=out.recipes[0].workflow, seed=out.info["seed"]),
        "\n".join(f"wrote {p} (seed {r.seed})" for p, r in zip(paths, out.recipes)),
    )
    return 0


def _from_file_fields(args: argparse.Namespace, source: str) -> dict:
    """``--from``: the file's header checked before the model loads; for an inversion, the sampler, steps and
    negative it was made with wherever the command line gives none."""
    from latentscape.workflows.latent_start import read_start_header

    head = read_start_header(source)
    if head.kind == "latents":
        if args.prompt is None:
            raise LatentscapeError(f"generate --from '{source}' needs a PROMPT: a latent file from `encode` holds no caption.")
        return {"items": head.items}
    if args.strength is not None:
        raise LatentscapeError(f"--strength applies to latent files from `encode`; '{source}' is {head.made_with()}, which "
                               "replays every step from its own noise (to keep more of the image, use prompt editing "
                               "[caption:new prompt:N]).")
    record, fields = head.record, {"items": head.items}
    if args.steps is None:
        fields["steps"] = record["steps"]
    if "sampler_given" not in vars(args):
        fields["sampler"] = record["sampler"]
    if args.negative is None:
        fields["negative"] = record["negative"]
    return fields
