"""`generate` (txt2img) and `img2img`."""

from __future__ import annotations

import argparse

from latentscape.interfaces.common import (
    IMAGE_SUFFIXES, Progress, add_model_args, add_output_args, add_sampling_args, check_output_suffix, check_writable,
    emit, is_folder_output, json_output, json_result, load_model, output_paths, size_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="text to image", description="Generate images from a prompt (txt2img).")
    p.add_argument("prompt")
    add_sampling_args(p)
    add_model_args(p)
    add_output_args(p)
    p.set_defaults(func=run_generate)

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
    image = getattr(args, "image", None)
    batch = args.batch if isinstance(args.batch, int) and args.batch > 0 else 1
    check_writable(output_paths(args.output, [max(args.seed, 0)] * min(batch, 64)), overwrite=args.overwrite, inputs=[image])
    check_writable([args.preview], overwrite=True, inputs=[image], flag="--preview")
    width, height = size_args(args)
    config = GenerateConfig(
        prompt=args.prompt, negative=args.negative, seed=args.seed, steps=args.steps, sampler=args.sampler,
        cfg=args.cfg, true_cfg=args.true_cfg, guidance_rescale=args.guidance_rescale, width=width, height=height,
        batch=args.batch, init_image=getattr(args, "image", None), strength=getattr(args, "strength", 0.75),
        resize=getattr(args, "resize", "none"),
    )
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
