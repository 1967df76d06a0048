"""`morph KEYFRAME KEYFRAME [...]`: a smooth transition through prompts, seeds and images, as a video."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from latentscape.interfaces.common import (
    Progress, add_model_args, add_overwrite_arg, add_sampling_args, check_output_suffix, check_writable, emit, json_output, json_result, load_model,
    size_args,
)

KEYFRAME_HELP = ('a prompt, seed:N, "PROMPT@SEED", image:PATH or an image file; missing seeds use --seed, '
                 "missing prompts the nearest prompt")


SCHEDULE_FLAGS = {"cfg": "CFG", "strength": "img2img strength (image keyframes)",
                  "guidance_rescale": "guidance rescale", "seed": "keyframe seeds (with --seed-behavior schedule)"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "morph", help="animate a path through keyframes (mp4/gif/webp)",
        description="Render a smooth morph through two or more keyframes (prompts, seeds, images) as a video. "
                    "The frame on each keyframe equals `latentscape generate` of that keyframe with the same settings.",
    )  # fmt: skip
    p.add_argument("keyframes", nargs="*", metavar="KEYFRAME", help=KEYFRAME_HELP)
    p.add_argument("--keyframes", dest="keyframe_file", default=None, metavar="FILE.json",
                   help='JSON list of keyframes ({"prompt", "seed", "image", "cfg", "frame"} objects or strings), or a frame map '
                        '{"0": KEYFRAME, "48": KEYFRAME} pinning keyframes to frames, or {"keyframes": ..., "schedules": {...}, '
                        '"seed_behavior": ...}; after any given inline')
    p.add_argument("-o", "--output", required=True, help="video to write: .mp4 (H.264), .gif or .webp")
    p.add_argument("--frames", "-f", type=int, default=None,
                   help="frames in the path, keyframes included (default: the last pinned keyframe's frame + 1, else 24)")
    p.add_argument("--batch-size", type=int, default=24, help="frames denoised together in one forward (default 24: the fastest measured; same pixels at any size)")
    g = p.add_argument_group("path")
    g.add_argument("--loop", action="store_true", help="close the path: walk back to the first keyframe (seamless loop)")
    g.add_argument("--ease", default="linear", choices=["linear", "in", "out", "in_out"], help="time warp in every segment (in_out lingers on keyframes)")
    g.add_argument("--pacing", default="adaptive", choices=["uniform", "perceptual", "adaptive"],
                   help="adaptive (default): grow a frame tree (in-between frames start part-way from their neighbours' latents) where "
                        "steps are largest, then deliver the frames whose steps are most even (about the time of uniform, 0.8 of its "
                        "model evaluations); uniform: frames evenly spaced on the path; perceptual: render, measure consecutive frame "
                        "distances, re-place frames so the steps look even (about 2x the work)")
    g.add_argument("--max-step", type=float, default=1.5,
                   help="adaptive pacing: grow frames until the largest step is at most this many mean steps (> 1; default 1.5)")
    g.add_argument("--distance", default="auto", choices=["auto", "lab", "lpips"],
                   help="frame distance for pacing: lpips when installed with local weights, else lab (multi-scale CIELAB colour difference)")
    g.add_argument("--cfg-dip", type=float, default=0.0, help="lower CFG towards 1 mid-transition by this fraction (0 = off)")
    g.add_argument("--interpolation", default="slerp", choices=["slerp", "lerp", "nlerp"], help="for the noise (default slerp)")
    g.add_argument("--cond-interpolation", default="lerp", choices=["slerp", "lerp", "nlerp"], help="for the prompt conditioning (default lerp)")
    g = p.add_argument_group("value schedules (Deforum FRAME:(VALUE) points, linear between them)")
    for name, what in SCHEDULE_FLAGS.items():
        g.add_argument(f"--{name.replace('_', '-')}-schedule", dest=f"{name}_schedule", default=None, metavar="SCHEDULE",
                       help=f'{what} over frames, e.g. "0:(7), 24:(12), 48:(7)"' + ("" if name == "seed" else f' (instead of --{name.replace("_", "-")})'))
    g.add_argument("--seed-behavior", default=None, choices=["fixed", "iter", "random", "schedule"],
                   help="seeds of keyframes that name none: fixed (--seed, the default), iter (--seed + keyframe index), "
                        "random (each its own, recorded), schedule (--seed-schedule at the keyframe's frame)")
    g = p.add_argument_group("image keyframes")
    g.add_argument("--image-mode", default="invert", choices=["invert", "noise"],
                   help="invert (default): invert each image with the job's sampler and steps, so the path starts and ends on "
                        "the images (their VAE round trips); noise: img2img of the whole path at --strength")
    g.add_argument("--strength", type=float, default=0.75, help="with --image-mode noise: the img2img strength of the whole path")
    g.add_argument("--resize", default="none", choices=["none", "stretch", "crop"], help="bring images of other sizes to one size")
    g = p.add_argument_group("video")
    g.add_argument("--fps", type=float, default=12.0)
    g.add_argument("--pingpong", action="store_true", help="play forward then backward (endpoints not repeated)")
    g.add_argument("--save-frames", default=None, metavar="DIR", help="also keep every frame as a lossless PNG frame_00000.png ... in DIR")
    g.add_argument("--contact-sheet", default=None, metavar="PNG", help="write all frames on one sheet (carries the replayable recipe)")
    g.add_argument("--resume", action="store_true", help="finish an interrupted render of the same command (identical result)")
    add_overwrite_arg(g)
    add_sampling_args(p, batch=False)
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run_morph)


class FrameProgress:
    """A tqdm bar per stage (probe, final), counted in frames, on stderr."""

    NAMES = {"probe": "pacing probe", "final": "frames", "invert": "image inversion (model evaluations)"}

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.stage = enabled, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None or stage != self.stage:
            from tqdm import tqdm

            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=self.NAMES.get(stage, stage), unit="frame", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def config_from_args(args: argparse.Namespace):
    from latentscape.workflows.keyframes import KeyframeDocument, load_keyframe_document
    from latentscape.workflows.morph import MorphConfig

    document = load_keyframe_document(args.keyframe_file) if args.keyframe_file else KeyframeDocument([], {}, None)
    keyframes = list(args.keyframes) + document.keyframes
    schedules = dict(document.schedules)
    for name in SCHEDULE_FLAGS:
        flag = getattr(args, f"{name}_schedule", None)
        if flag is not None:
            if name in schedules:
                raise_error(f"--{name.replace('_', '-')}-schedule and the keyframe file's schedules.{name} both schedule {name}; use one of them.")
            schedules[name] = flag
    if args.seed_behavior is not None and document.seed_behavior not in (None, args.seed_behavior):
        raise_error(f"--seed-behavior {args.seed_behavior} and the keyframe file's seed_behavior {document.seed_behavior} disagree; use one of them.")
    seed_behavior = args.seed_behavior or document.seed_behavior or ("schedule" if "seed" in schedules else "fixed")
    width, height = size_args(args)
    return MorphConfig(
        keyframes=tuple(keyframes), frames=args.frames, negative=args.negative, seed=args.seed, steps=args.steps,
        sampler=args.sampler, cfg=args.cfg, true_cfg=args.true_cfg, guidance_rescale=args.guidance_rescale,
        cfg_dip=args.cfg_dip, width=width, height=height, strength=args.strength, resize=args.resize,
        image_mode=args.image_mode, closed=args.loop,
        ease=args.ease, pacing=args.pacing, distance=args.distance, max_step=args.max_step, interpolation=args.interpolation,
        cond_interpolation=args.cond_interpolation, batch_size=args.batch_size, fps=args.fps, pingpong=args.pingpong,
        schedules=schedules, seed_behavior=seed_behavior,
    )  # fmt: skip


def check_outputs(output: str, contact_sheet: str | None) -> None:
    from latentscape.io.video import check_video_path

    check_video_path(output)
    check_output_suffix(contact_sheet, (".png",), "--contact-sheet")


FRAME_BYTES = 3.2  # bytes per pixel a lossless RGB frame PNG can take (worst case: noise-like frames)


def check_files(args: argparse.Namespace, config, checked) -> None:
    """Before the model loads: outputs that exist (unless --overwrite), outputs that are inputs, folders
    that cannot be written, a --save-frames folder holding another render's frames, and free disk space.
    ``checked``: what :func:`latentscape.workflows.morph.check_config` found in ``config``."""
    from pathlib import Path

    inputs = [k.image for k in checked.keyframes if k.image is not None]
    width, height = (config.width or 512), (config.height or 512)  # the model's size is not known yet: a high guess
    need = int(checked.timing.frames * width * height * FRAME_BYTES * (2 if config.pacing != "uniform" else 1))
    check_writable([args.output], overwrite=args.overwrite, inputs=inputs, need_bytes=need)
    check_writable([args.contact_sheet], overwrite=args.overwrite, inputs=inputs, flag="--contact-sheet")
    check_writable([args.preview], overwrite=True, inputs=inputs, flag="--preview")
    if args.save_frames is not None and not args.resume and not args.overwrite:
        folder = Path(args.save_frames)
        if folder.exists() and not folder.is_dir():
            raise_error(f"--save-frames '{folder}' is a file; accepted: a folder (created if missing).")
        old = sorted(folder.glob("frame_*.png")) if folder.is_dir() else []
        if old:
            raise_error(f"--save-frames '{folder}' already holds frames ({old[0].name}, ...); pass --overwrite to replace "
                        "them, --resume to finish that render, or choose an empty folder.")


def raise_error(message: str) -> None:
    from latentscape.errors import LatentscapeError

    raise LatentscapeError(message)


def run_morph(args: argparse.Namespace) -> int:
    from latentscape.workflows.morph import check_config, render_morph
    from latentscape.workflows.morph_manifest import manifest_path

    check_outputs(args.output, args.contact_sheet)
    preview = getattr(args, "preview", None)
    check_output_suffix(preview, (".png",), "--preview")
    config = config_from_args(args)
    checked = check_config(config)  # keyframes, frames, images: all before loading the model
    config = dataclasses.replace(config, keyframes=tuple(checked.keyframes))  # parsed once: the plan takes them as they are
    check_files(args, config, checked)
    model = load_model(args, config)
    progress = FrameProgress(not (args.quiet or args.json))
    steps = Progress(False, preview=(preview, model.latent_format)) if preview else None
    try:
        out = render_morph(model, config, args.output, save_frames=args.save_frames, contact_sheet=args.contact_sheet,
                           resume=args.resume, progress=progress, callback=steps)
    except KeyboardInterrupt as exc:
        from latentscape.interfaces.cli import Terminated

        progress.close()
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"latentscape morph: {what}; finished frames are kept: rerun the same command with --resume to finish "
              f"'{args.output}'.", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    progress.close()
    report(args, model, out, str(manifest_path(args.output)))
    return 0


def report(args: argparse.Namespace, model, out, manifest: str) -> None:
    frames = len(out.images)
    shown = frames + max(frames - 2, 0) if out.recipe.params.get("pingpong") else frames
    stats = {k: s.to_dict() for k, s in out.smoothness.items()}
    lines = []
    if "before" in out.smoothness:
        lines.append(f"perceptual pacing ({out.distance} distance between consecutive frames):")
        lines.append(f"  before (uniform): {out.smoothness['before'].describe()}")
        lines.append(f"  after:            {out.smoothness['after'].describe()}")
    else:
        lines.append(f"consecutive frame distance ({out.distance}): {out.smoothness['after'].describe()}")
    if out.report is not None:
        lines.append("smoothness (adjacent frames):")
        lines += [f"  {line}" for line in out.report.describe().splitlines()]
    lines.append(f"wrote {args.output} ({shown} frames, seed {out.recipe.seed}); recipe and frame state in {manifest}")
    if args.contact_sheet:
        lines.append(f"wrote {args.contact_sheet}")
    written = [json_output(args.output, "video", out.recipe), json_output(manifest, "manifest", out.recipe)]
    written += [json_output(args.contact_sheet, "sheet", out.recipe)] if args.contact_sheet else []
    emit(args, json_result(args, getattr(args, "command", "morph"), written, model, workflow="morph", seed=out.recipe.seed,
                           output=args.output, manifest=manifest, contact_sheet=args.contact_sheet, frames=frames,
                           positions=out.positions, keyframe_frames=out.keyframe_frames, distance=out.distance,
                           smoothness=stats, report=out.report.to_dict() if out.report is not None else None), "\n".join(lines))


def run_replay_morph(args: argparse.Namespace, recipe) -> int:
    """`replay` of a morph's manifest or contact sheet: render the whole video again to ``-o``."""
    from latentscape.interfaces.common import load_for_replay
    from latentscape.io.video import check_video_path
    from latentscape.workflows.morph import render_morph
    from latentscape.workflows.morph_manifest import manifest_path
    from latentscape.workflows.replay import check_inputs

    check_video_path(args.output)
    config = check_inputs(recipe, recipe_file=args.file, search=args.inputs)  # before loading anything
    model = load_for_replay(args, recipe.model, recipe.load)
    progress = FrameProgress(not (args.quiet or args.json))
    out = render_morph(model, config, args.output, progress=progress)
    progress.close()
    args.contact_sheet = None
    report(args, model, out, str(manifest_path(args.output)))
    return 0
