"""Morph: a smooth path through keyframes (prompts, seeds, images), rendered as frames and written as a video.

Every frame is one item of a batched denoise with its own interpolated noise (slerp), conditioning (lerp,
including SDXL/SD3/FLUX pooled vectors and T5 tokens), CFG (and FLUX guidance) and, for stochastic
samplers, per-step noise. The frame on each keyframe equals a standalone ``generate`` of that keyframe.

Image keyframes (``image_mode``, see :mod:`latentscape.workflows.plan`): ``invert`` (the default) inverts each
image with the job's sampler and steps, so the frame on an image keyframe is the image's VAE round trip, the
frames on prompt keyframes stay exactly their ``generate`` images, and the frames between interpolate the
noise, the per-step noise streams and the conditioning. ``noise`` (what recipes made before the field replay
as): the whole path is img2img at the shared ``strength``: image keyframes start from their VAE posterior
mean, prompt/seed keyframes from the latents of their own standalone txt2img render, and every frame from the
interpolation of its two keyframes' latents plus its interpolated noise. Frames on image keyframes equal
``generate(init_image=..., strength=...)``; frames on prompt keyframes of such a mixed path are img2img
re-renders of their txt2img image (close, not equal).

Keyframes may be pinned to frames and cfg / strength / guidance rescale / seed scheduled over frames
(:mod:`latentscape.workflows.morph_schedule`); every pinned frame is exact, and pacing moves frames only
within their segment.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from latentscape.core.interpolate import INTERPOLATORS
from latentscape.core.noise import resolve_seed
from latentscape.core.pacing import Smoothness, repace, smoothness
from latentscape.core.paths import EASINGS, locate, uniform_positions
from latentscape.core.value_schedule import ValueSchedule
from latentscape.errors import LatentscapeError
from latentscape.io.frame_files import FrameFiles
from latentscape.io.recipe import Recipe, file_sha256
from latentscape.io.video import check_video_path, pingpong, write_video
from latentscape.models.family import Family
from latentscape.sampling import StepCallback
from latentscape.workflows.common import (
    MAX_BATCH, check_sampling, config_dict, encode, guidance, make_recipe, require, resolve_size,
)
from latentscape.workflows.inputs import anchor_inputs
from latentscape.workflows.job import resolve_keyframes
from latentscape.workflows.keyframes import Keyframe, keyframe_from_dict, parse_keyframe
from latentscape.workflows.morph_images import load_keyframe_images
from latentscape.workflows.options import BatchedSampling
from latentscape.workflows.morph_manifest import FrameStore, manifest_path, read_manifest_recipe, work_folder
from latentscape.workflows.morph_pacing import resolve_distance
from latentscape.workflows.frame_tree import CountingCallback, FrameTree, adaptive_frames, full_render_evaluations
from latentscape.workflows.smoothness import adjacent_distances, report_from, report_metrics
from latentscape.workflows.morph_schedule import (
    FrameValues, Timing, apply_seed_behavior, canonical, check_schedule_use, parse_schedules, timing,
)
from latentscape.workflows.morph_schedule import infotext_extra as schedule_infotext
from latentscape.core.smoothness import SmoothnessReport
from latentscape.workflows.morph_render import (
    Anchors, FrameRenderer, Progress, RenderSettings, build_anchors, render_latents,
)
from latentscape.workflows.plan import check_image_mode, image_anchors, image_cfg, start_latents
from latentscape.workflows.render import check_keyframe_cfgs

PACINGS = ("uniform", "perceptual", "adaptive")
MAX_FRAMES = 10_000
DEFAULT_BATCH = 24  # frames per forward: fastest of 8/16/24 on the main job, same pixels


@dataclass(frozen=True)
class MorphConfig(BatchedSampling):
    """One morph. ``keyframes``: :class:`Keyframe` objects or their command-line strings (see
    :mod:`latentscape.workflows.keyframes`); a missing seed is ``seed``, a missing prompt the nearest one.

    ``frames``: the frame count (keyframes pinned with ``frame``: must agree with the last pin of an open path;
    see :mod:`latentscape.workflows.morph_schedule` for pins, ``schedules`` and ``seed_behavior``).
    ``closed`` walks back to the first keyframe (a seamless loop); ``ease`` warps time in every segment;
    ``pacing`` "adaptive" (the default) grows a shared-trajectory frame tree where the steps look largest and
    delivers the frames whose steps are most even (:mod:`latentscape.workflows.frame_tree`); "uniform" places
    frames evenly on the path; "perceptual" renders the path once, measures consecutive frame distances
    (``distance``) and re-places the frames so those steps are even (if that came out less even, as a
    too-coarse probe can make it, the uniform frames are kept). ``cfg_dip`` lowers CFG towards 1 mid-transition (0 = off,
    0.5 = halfway). ``fps`` and ``pingpong`` only shape the video.
    """

    keyframes: tuple[Keyframe | str, ...]
    frames: int | None = None  # None: the last pinned keyframe's frame + 1, else 24
    seed: int = -1
    cfg_dip: float = 0.0
    strength: float = 0.75  # image_mode noise only
    image_mode: str = "invert"  # image keyframes: invert (start and end on the images) or noise (img2img)
    closed: bool = False
    ease: str = "linear"
    pacing: str = "adaptive"  # the default since it won bench/bench_smoothness.py (recipes record theirs)
    distance: str = "auto"
    max_step: float = 1.5  # adaptive pacing: grow frames until the largest step <= max_step x the mean step
    interpolation: str = "slerp"
    cond_interpolation: str = "lerp"
    batch_size: int = field(default=DEFAULT_BATCH, kw_only=True)  # morph's own default (others: 8): fastest of 8/16/24 on the main job, same pixels (bench/bench_batch_size.py)
    fps: float = 12.0
    pingpong: bool = False
    schedules: dict[str, Any] = field(default_factory=dict)  # name -> Deforum "0:(7), 24:(12)", a mapping or a number
    seed_behavior: str = "fixed"  # for keyframes without a seed: fixed, iter, random, schedule

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "MorphConfig":
        """Rebuild from a recipe's JSON params (keyframes come back as objects)."""
        unknown = sorted(set(params) - set(cls.__dataclass_fields__))
        if unknown:
            raise LatentscapeError(f"the recipe has parameters this latentscape does not know ({', '.join(unknown)}); it was made by a newer version.")
        keyframes = tuple(keyframe_from_dict(k, f"recipe keyframe {i + 1}", pinned=True) for i, k in enumerate(params.get("keyframes", [])))
        # recipes from before image_mode existed were img2img (and recipes without image keyframes omit it);
        # a recipe without a pacing is from before adaptive pacing was the default
        return cls(**{"image_mode": "noise", "pacing": "uniform", **params, "keyframes": keyframes})


@dataclass
class MorphOutput:
    """Frames in path order (no ping-pong), where they sit on the path, and how even the steps are.

    ``images`` is a sequence of frame PNGs read when used (see :func:`morph`), not a list held in memory."""

    images: Sequence[Image.Image]
    positions: list[float]
    recipe: Recipe
    distance: str
    smoothness: dict[str, Smoothness] = field(default_factory=dict)  # "before" (uniform) and "after"
    keyframe_frames: list[int] = field(default_factory=list)
    report: SmoothnessReport | None = None  # both distances, frames and model evaluations
    frame_values: list[dict[str, float]] = field(default_factory=list)  # per frame: its frame number and scheduled values

    @property
    def recipes(self) -> list[Recipe]:
        return [self.recipe]


@dataclass
class _Plan:
    keyframes: list[Keyframe]  # resolved: every prompt and seed filled in
    seed: int
    width: int
    height: int
    images: dict[int, Image.Image]  # keyframe index -> image at the render size
    cfgs: list[float]
    distance: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    timing: Timing
    schedules: dict[str, ValueSchedule]


def parse_keyframes(items: Sequence[Keyframe | str | dict]) -> list[Keyframe]:
    return [k if isinstance(k, Keyframe) else parse_keyframe(k) if isinstance(k, str) else keyframe_from_dict(k, f"keyframe {i + 1}")
            for i, k in enumerate(items)]


def check_timing(config: MorphConfig, keyframes: Sequence[Keyframe]) -> tuple[Timing, dict[str, ValueSchedule]]:
    """Pins, frame count and schedules (no model needed): the path's timing and the parsed schedules."""
    k = len(keyframes)
    shape = "closed loop" if config.closed else "path"
    least = max(2, k)
    frames = config.frames
    require(frames is None or (isinstance(frames, int) and not isinstance(frames, bool) and least <= frames <= MAX_FRAMES),
            f"frames got {frames}; a {shape} through {k} keyframes needs a whole number of frames from {least} to {MAX_FRAMES}.")
    timing_ = timing(keyframes, frames, config.closed)
    require(least <= timing_.frames <= MAX_FRAMES,
            f"frames got {timing_.frames} (from the last pinned keyframe); a {shape} through {k} keyframes needs from {least} to {MAX_FRAMES}.")
    schedules = parse_schedules(config.schedules, timing_.frames)
    has_images = any(kf.image is not None for kf in keyframes)
    require(not ("strength" in schedules and has_images and config.image_mode == "invert"),
            "schedules.strength applies to image_mode noise (img2img); with image_mode invert no frame is img2img: "
            "drop the strength schedule or pass image_mode noise.")
    check_schedule_use(schedules, keyframes, timing_, config.seed_behavior, pacing=config.pacing,
                       img2img=has_images and config.image_mode == "noise")
    return timing_, schedules


@dataclass(frozen=True)
class CheckedMorph:
    """What :func:`check_config` finds without a model: the keyframes, parsed once (pass them on as
    ``config.keyframes``: :class:`Keyframe` objects are taken as they are), the path's timing and schedules."""

    keyframes: list[Keyframe]
    timing: Timing
    schedules: dict[str, ValueSchedule]


def check_config(config: MorphConfig, *, read_images: bool = True) -> CheckedMorph:
    """Everything that can be checked without a model (run it before loading one). ``read_images`` False
    leaves the image keyframes to :func:`_plan`, which reads them once at the model's size."""
    keyframes = parse_keyframes(config.keyframes)
    check_image_mode(config.image_mode)
    require(len(keyframes) >= 2, f"a morph needs at least 2 keyframes, got {len(keyframes)}; pass two or more prompts, seed:N, PROMPT@SEED or image files.")
    check_keyframe_cfgs(keyframes)
    timing_, schedules = check_timing(config, keyframes)
    require(isinstance(config.batch_size, int) and 1 <= config.batch_size <= MAX_BATCH, f"--batch-size got {config.batch_size}; expected a whole number from 1 to {MAX_BATCH}.")
    require(config.pacing in PACINGS, f"--pacing got '{config.pacing}'; accepted: {', '.join(PACINGS)}.")
    require(config.ease in EASINGS, f"--ease got '{config.ease}'; accepted: {', '.join(EASINGS)}.")
    for flag, value in (("--interpolation", config.interpolation), ("--cond-interpolation", config.cond_interpolation)):
        require(value in INTERPOLATORS, f"{flag} got '{value}'; accepted: {', '.join(INTERPOLATORS)}.")
    require(0 <= config.cfg_dip <= 1, f"--cfg-dip got {config.cfg_dip}; expected a number from 0 (off) to 1 (CFG 1 mid-transition).")
    require(0 <= config.guidance_rescale <= 1, f"--guidance-rescale got {config.guidance_rescale}; expected a number from 0 to 1.")
    require(config.true_cfg >= 1 or config.true_cfg == 0, f"--true-cfg got {config.true_cfg}; expected a number >= 1.")
    require(0 < config.fps <= 240, f"--fps got {config.fps}; expected a number greater than 0 and at most 240.")
    if any(kf.image is not None for kf in keyframes) and config.image_mode == "noise":
        require(0 <= config.strength <= 1, f"strength got {config.strength}; expected a number from 0 (the images' VAE round trips, no steps) to 1.")
    resolve_distance(config.distance)
    require(isinstance(config.max_step, (int, float)) and not isinstance(config.max_step, bool) and 1 < config.max_step < float("inf"),
            f"--max-step got {config.max_step}; expected a number greater than 1 (the largest step allowed, in mean steps).")
    if read_images:
        load_keyframe_images(keyframes, config.width, config.height, config.resize, multiple=None)
    return CheckedMorph(keyframes, timing_, schedules)


def _plan(model: Family, config: MorphConfig) -> _Plan:
    """Validate everything, resolve seeds, sizes and images: nothing is rendered yet. Made once per morph
    (:func:`render_morph` hands it to the morph's body)."""
    checked = check_config(config, read_images=False)
    keyframes, timing_, schedules = checked.keyframes, checked.timing, checked.schedules
    images, image_size = load_keyframe_images(keyframes, config.width, config.height, config.resize, model.latent_format.size_multiple)
    check_sampling(model, steps=config.steps, sampler=config.sampler, cfg=config.cfg)
    seed = resolve_seed(config.seed)
    keyframes = apply_seed_behavior(keyframes, config.seed_behavior, seed, schedules, timing_)
    keyframes = resolve_keyframes(keyframes, seed)  # a seed of -1 draws its own (recorded), as in blend and map
    if config.width or config.height or not any(kf.image for kf in keyframes):
        size = resolve_size(model, config.width, config.height)  # checks --size against the model
    size = image_size or size
    inverted = config.image_mode == "invert"
    cfgs = [image_cfg(model, kf.cfg) if inverted and kf.image is not None else
            guidance(model, kf.cfg if kf.cfg is not None else config.cfg, config.true_cfg)[0] for kf in keyframes]
    if "cfg" in schedules:  # each keyframe's CFG is the schedule's at its frame
        cfgs = [schedules["cfg"].at(f) for f in timing_.keyframe_at]
    cfg_used = guidance(model, config.cfg, config.true_cfg)[0]
    distance = resolve_distance(config.distance)
    params = config_dict(dataclasses.replace(
        config, keyframes=tuple(keyframes), seed=seed, cfg=cfg_used, width=size[0], height=size[1], distance=distance,
        frames=timing_.frames, schedules=canonical(schedules)))
    if not schedules:  # plain morphs keep the recipe they always had
        del params["schedules"]
    if config.seed_behavior == "fixed":
        del params["seed_behavior"]
    if not images:  # the mode means nothing without image keyframes: such recipes stay as they were
        del params["image_mode"]
    inputs = {}
    if images:
        inputs["keyframe images"] = [{"path": str(keyframes[i].image), "sha256": file_sha256(keyframes[i].image)} for i in sorted(images)]
    return _Plan(keyframes, seed, size[0], size[1], images, cfgs, distance, params, inputs, timing_, schedules)


def _recipe(model: Family, plan: _Plan, config: MorphConfig) -> Recipe:
    extra = {"Morph": " -> ".join(k.label() for k in plan.keyframes), "Frames": plan.timing.frames, "Pacing": config.pacing}
    if plan.images and config.image_mode == "noise":
        extra["Denoising strength"] = config.strength
    elif plan.images:
        extra["Image mode"] = "invert"
    extra.update(schedule_infotext(plan.schedules, plan.timing, config.seed_behavior))
    # the infotext shows the first frame: the first keyframe's prompt and seed (its generate image)
    return make_recipe("morph", model, plan.params, plan.seed, inputs=plan.inputs,
                       infotext_extra={**extra, "Seed": plan.keyframes[0].seed}, prompt_line=plan.keyframes[0].prompt or "")


def morph(
    model: Family,
    config: MorphConfig,
    *,
    store: FrameStore | None = None,
    callback: StepCallback | None = None,
    progress: Progress | None = None,
) -> MorphOutput:
    """Render the morph's frames to disk as they complete: to ``store`` (resuming what it already holds),
    else to a temporary folder that lives as long as the returned frames. Returns the frames (a lazy
    :class:`~latentscape.io.frame_files.FrameFiles`: each PNG is read when used, so memory does not grow
    with the frame count), their positions, the recipe and the smoothness statistics."""
    plan = _plan(model, config)
    return _morph(model, config, plan, _recipe(model, plan, config), store=store, callback=callback, progress=progress)


def _morph(model: Family, config: MorphConfig, plan: _Plan, recipe: Recipe, *, store: FrameStore | None,
           callback: StepCallback | None, progress: Progress | None) -> MorphOutput:
    """:func:`morph`'s body: render ``plan`` (made from ``config`` by :func:`_plan`, whose ``recipe`` it is)."""
    temporary = None
    if store is None:  # the library call: frames go to a folder of our own, removed with the last reference
        temporary = tempfile.TemporaryDirectory(prefix="latentscape-morph-")
        store = FrameStore(Path(temporary.name) / "morph.manifest.json", Path(temporary.name) / "morph", recipe)
    k = len(plan.keyframes)
    shape = model.latent_format.latent_shape(plan.width, plan.height)
    timing_, frames_n = plan.timing, plan.timing.frames
    values = FrameValues(plan.schedules, timing_, config.cfg_dip)
    settings = RenderSettings(config.sampler, config.steps, config.true_cfg, config.guidance_rescale, config.cfg_dip,
                              config.strength, config.interpolation, config.cond_interpolation,
                              scheduled=values if values else None)
    anchors = build_anchors(model, [kf.prompt or "" for kf in plan.keyframes], [kf.seed for kf in plan.keyframes],
                            plan.cfgs, config.negative, shape, config.true_cfg)
    if anchors.uncond is None and values.uses_cfg_anywhere():  # CFG > 1 between keyframes of CFG <= 1
        anchors.uncond = encode(model, [plan.keyframes[0].prompt or ""], [config.negative], True)[1]
    counts = timing_.counts if timing_.pinned else None
    img2img = bool(plan.images) and config.image_mode == "noise"
    if img2img:
        anchors.latents = _start_latents(model, anchors, plan, settings, callback)
    elif plan.images:
        _invert_anchors(model, anchors, plan, config, progress)
    counter = callback = CountingCallback(callback)
    renderer = FrameRenderer(model, anchors, settings, batch_size=config.batch_size, closed=config.closed,
                             img2img=img2img, store=store, callback=callback, progress=progress)

    stats: dict[str, Smoothness] = {}
    if config.pacing == "perceptual":
        probe_positions = uniform_positions(k, frames_n, config.closed, keyframe_at=timing_.keyframe_at)
        probe = renderer.stage("probe", probe_positions)
        before = adjacent_distances(probe, [plan.distance], config.closed)[plan.distance]
        stats["before"] = smoothness(before)
        positions = repace(probe_positions, before, k, config.closed, config.ease, counts=counts)
        store.data["pacing"] = {"distance": plan.distance, "probe_distances": before}
    elif config.pacing == "adaptive" and frames_n > k:  # a frame tree (every frame a keyframe: nothing to grow);
        # its frames go through the renderer to the store
        tree = FrameTree(model, anchors, settings, plan.distance, img2img=img2img, closed=config.closed,
                         batch_size=config.batch_size, callback=callback, progress=progress)
        positions, tree_frames, _ = adaptive_frames(tree, frames_n, config.max_step, config.ease, counts=counts)
        renderer.rendered.update(zip(positions, tree_frames))
    else:
        positions = uniform_positions(k, frames_n, config.closed, config.ease, keyframe_at=timing_.keyframe_at)
    frames = renderer.stage("final", positions)
    measured = adjacent_distances(frames, report_metrics(plan.distance), config.closed)  # one pass, both metrics
    after = measured[plan.distance]
    stats["after"] = smoothness(after)
    if "before" in stats and config.ease == "linear" and stats["after"].ratio > stats["before"].ratio:
        # the measurements were too coarse to help: keep the (already rendered) uniform frames
        positions, after, stats["after"] = probe_positions, before, stats["before"]
        frames = renderer.stage("final", positions)
        measured = adjacent_distances(frames, report_metrics(plan.distance), config.closed)
    renderer.rendered.clear()  # the adaptive tree's images, the probe's paths: every frame is on disk now
    report = report_from(measured, len(frames), model_evaluations=counter.count,
                         full_render_evaluations=full_render_evaluations(model, settings, plan.width, plan.height, img2img))
    store.data["pacing"] = {**(store.data["pacing"] or {}), "distance": plan.distance, "distances": after,
                            **{f"smoothness_{k}": s.to_dict() for k, s in stats.items()}, "report": report.to_dict()}
    store.save()
    on_keyframes = [positions.index(float(i)) for i in range(k)]
    assert not timing_.pinned or on_keyframes == list(timing_.keyframe_at), "pacing moved a pinned keyframe"
    frame_values = [per_frame(values, timing_, u, k, config.closed) for u in positions]
    if values or timing_.pinned:
        store.data["schedule"] = {"keyframe_frames": list(timing_.keyframe_at), "frames": frame_values}
        store.save()
    if temporary is not None:
        frames = FrameFiles(frames.paths, owner=temporary)
    return MorphOutput(images=frames, positions=positions, recipe=recipe, distance=plan.distance, smoothness=stats,
                       keyframe_frames=on_keyframes, report=report, frame_values=frame_values)


def per_frame(values: FrameValues, timing_: Timing, u: float, n_keyframes: int, closed: bool) -> dict[str, float]:
    """What a frame at ``u`` was rendered with: its frame number on the path's timing and its scheduled values."""
    point = locate(u, n_keyframes, closed)
    return {"frame": timing_.frame_at(u), **(values(point) if values else {})}


def _invert_anchors(model: Family, anchors: Anchors, plan: _Plan, config: MorphConfig, progress: Progress | None) -> None:
    """Image keyframes in invert mode: their inversion's noise and per-step noise become the keyframe's
    anchor (cached, so one image on a path twice, --resume and replay invert it once)."""
    order = sorted(plan.images)
    report = None if progress is None else (lambda done, total: progress("invert", done, total))
    inverted = image_anchors(model, [plan.images[i] for i in order], prompts=[plan.keyframes[i].prompt or "" for i in order],
                             seeds=[plan.keyframes[i].seed for i in order], cfgs=[plan.cfgs[i] for i in order],
                             negative=config.negative, sampler=config.sampler, steps=config.steps,
                             true_cfg=config.true_cfg, progress=report)
    streams: list = [None] * len(plan.keyframes)
    noise = anchors.noise.clone()
    for i, anchor in zip(order, inverted):
        noise[i] = anchor.noise[0].to(noise.dtype)
        streams[i] = anchor.step_noise
    anchors.noise, anchors.step_noise = noise, streams


def _start_latents(model, anchors: Anchors, plan: _Plan, settings: RenderSettings, callback) -> torch.Tensor:
    """img2img starting latents per keyframe (:func:`~latentscape.workflows.plan.start_latents`): images
    VAE-encoded; prompt/seed keyframes from their own standalone txt2img render (all of them in one batch)."""
    def standalone(idx: list[int]) -> torch.Tensor:
        return render_latents(model, anchors, [(i, i, 0.0) for i in idx], settings, img2img=False, callback=callback)

    return start_latents(model, len(plan.keyframes), plan.images, standalone)


def render_morph(
    model: Family,
    config: MorphConfig,
    output: str | Path,
    *,
    save_frames: str | Path | None = None,
    contact_sheet: str | Path | None = None,
    resume: bool = False,
    callback: StepCallback | None = None,
    progress: Progress | None = None,
) -> MorphOutput:
    """Render a morph to ``output`` (.mp4/.gif/.webp) with its manifest ``<output>.manifest.json``.

    Frames go to ``save_frames`` (kept) or to ``<output>.frames/`` (its frame files removed once the video
    is written) as lossless PNGs, with the manifest updated after every batch. ``resume`` finishes an
    interrupted render of the same settings without redoing finished frames; the result is identical to an
    uninterrupted run. A resume must name the same ``save_frames`` folder as the interrupted render: the
    folder a manifest records is never used on its word alone.
    ``contact_sheet`` also writes all frames on one PNG that carries the recipe (replayable).
    Frames stream from their PNGs into the video and the sheet, one at a time. The returned ``images`` read
    the frame files in ``save_frames``; without it they are removed with the working folder (``images``
    keeps their count; reading one says it is gone).
    """
    output = check_video_path(output)
    if contact_sheet is not None:
        require(Path(contact_sheet).suffix.lower() == ".png", f"--contact-sheet '{contact_sheet}' must end in .png.")
    mpath = manifest_path(output)
    work = work_folder(output)
    require(not work.is_symlink() and not (work.exists() and not work.is_dir()),
            f"'{work}' (the output's frames folder) is a link or a file; latentscape writes and removes frames only in a real folder of its own: remove it or choose another output.")
    if resume:  # seeds of -1 mean the seeds the interrupted render drew
        previous = read_manifest_recipe(mpath)
        if config.seed == -1:
            config = dataclasses.replace(config, seed=previous.seed)
        config = _previous_keyframe_seeds(config, previous)
        batch = previous.params.get("batch_size")
        if config.batch_size == DEFAULT_BATCH and isinstance(batch, int) and not isinstance(batch, bool) and batch != config.batch_size:
            # made before the default became 24 (or with another size): finish it with the size it started with
            config = dataclasses.replace(config, batch_size=batch)
    plan = _plan(model, config)  # validate before touching any file; the one plan of this morph
    own = _recipe(model, plan, config)  # the morph's recipe; the files' records where its inputs are from here
    recipe = anchor_inputs(own, output)
    if resume:
        store = FrameStore.resume(mpath, output, recipe, frames_dir=save_frames)
    else:
        store = FrameStore(mpath, output, recipe, frames_dir=save_frames)
        store.save()
    out = _morph(model, config, plan, own, store=store, callback=callback, progress=progress)
    sequence = pingpong(out.images) if config.pingpong else out.images
    write_video(sequence, output, fps=config.fps, loop=True, recipe=recipe)
    if contact_sheet is not None:
        from latentscape.io.grid import contact_sheet as make_sheet
        from latentscape.io.recipe import save_png

        labels = [f"{i}: {u:.3f}" for i, u in enumerate(out.positions)]
        save_png(make_sheet(out.images, labels=labels), contact_sheet, anchor_inputs(out.recipe, contact_sheet))
    store.data["output"] = {"path": str(output), "sha256": file_sha256(output), "frames": len(sequence),
                            "contact_sheet": str(contact_sheet) if contact_sheet else None}
    store.data["complete"] = True
    store.clean_up()
    store.save()
    if not store.keep_frames:
        out.images = FrameFiles(out.images.paths, gone=": render_morph removes its frames once the video is written "
                                "unless save_frames names a folder to keep them in")
    return out


def _previous_keyframe_seeds(config: MorphConfig, previous: Recipe) -> MorphConfig:
    """``config`` with its keyframes parsed (once: the plan takes them as they are) and each keyframe seed of
    -1 taken from ``previous`` (the same keyframe there); a render that differs otherwise is refused
    afterwards by the manifest's settings check."""
    keyframes = parse_keyframes(config.keyframes)
    before = previous.params.get("keyframes")
    if not isinstance(before, list) or len(before) != len(keyframes):
        return dataclasses.replace(config, keyframes=tuple(keyframes))
    drawn = [b.get("seed") if isinstance(b, dict) else None for b in before]
    drawn_here = (-1, None) if config.seed_behavior == "random" else (-1,)  # random: seedless keyframes drew theirs
    keyframes = [dataclasses.replace(k, seed=d) if k.seed in drawn_here and isinstance(d, int) else k for k, d in zip(keyframes, drawn)]
    return dataclasses.replace(config, keyframes=tuple(keyframes))


def replay_morph(model: Family, recipe: Recipe, output: str | Path, *, recipe_file: str | Path | None = None, **kwargs) -> MorphOutput:
    """Re-render a morph from its recipe (manifest or contact sheet ``recipe_file``) to ``output`` (a video);
    its keyframe images are only the recipe's recorded inputs (see :mod:`latentscape.workflows.inputs`)."""
    from latentscape.workflows.replay import check_inputs

    return render_morph(model, check_inputs(recipe, recipe_file=recipe_file), output, **kwargs)
