"""An AUTOMATIC1111 / Forge PNG as an input: its settings as a latentscape job, and what cannot be honoured.

``latentscape replay a1111.png`` renders what the infotext says (prompt, negative, steps, sampler and
schedule type, CFG, seed, size, variation seed and strength) on the model the user picks, and names in one
sentence each setting it cannot honour (hires fix, ADetailer, LoRA tags, GPU noise, clip skip, ...).
A PNG as a keyframe or blend input (``png:PATH``) gives its prompt, seed and CFG, not its pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentscape.errors import LatentscapeError
from latentscape.io.a1111_infotext import A1111Settings, png_chunks, read_png_settings
from latentscape.samplers import from_a1111
from latentscape.workflows.keyframes import Keyframe

A1111_DEFAULTS = {"steps": 20, "cfg": 7.0}  # what A1111 uses when its infotext leaves a field out
# fields that do not change the pixels, or that the job below reads
_READ = {"Steps", "Sampler", "Schedule type", "CFG scale", "Distilled CFG Scale", "Seed", "Size", "Variation seed",
         "Variation seed strength", "RNG", "Clip skip", "Model", "Model hash", "Version", "Lora hashes", "TI hashes",
         "Emphasis", "Hashes", "Denoising strength", "Seed resize from", "Cache FP16 weight for LoRA"}


@dataclass(frozen=True)
class A1111Job:
    """A latentscape job for an A1111 infotext: the workflow (``generate``, or ``vary`` for a variation
    seed), its config, and one sentence per setting it does not honour."""

    workflow: str
    config: Any
    warnings: tuple[str, ...]
    settings: A1111Settings


def sampler_of(settings: A1111Settings, source: str) -> str:
    """latentscape's sampler for the infotext's Sampler and Schedule type, as A1111 >= 1.9 reads them (older
    A1111 wrote the schedule into the name and had no Schedule type: a bare ``DPM++ 2M`` ran its uniform
    schedule there); one sentence naming the accepted names otherwise."""
    name = settings.sampler or "Euler a"
    version = settings.a1111_version()
    schedule = settings.schedule_type
    if schedule is None and version is not None and version < (1, 9):
        schedule = "Uniform"
    try:
        return from_a1111(name, schedule)
    except LatentscapeError as exc:
        raise LatentscapeError(f"{source}: {exc}") from None


def _unhonoured(s: A1111Settings) -> list[str]:
    out = []
    for net in s.networks:
        what = "LoRA" if net.kind in ("lora", "lyco") else f"extra network ({net.kind})"
        out.append(f"the prompt's {what} {net.tag} is not applied: latentscape does not load {what} weights.")
    hires = [k for k in s.fields if k.lower().startswith("hires")]
    if hires:
        out.append(f"hires fix ({', '.join(f'{k} {s.fields[k]}' for k in hires[:3])}) is not applied: latentscape renders "
                   f"the first pass only, at Size.")
    adetailer = [k for k in s.fields if k.lower().startswith("adetailer")]
    if adetailer:
        model = s.fields.get("ADetailer model")
        out.append(f"ADetailer{f' ({model})' if model else ''} is not applied: latentscape has no detection/inpainting pass.")
    if "Denoising strength" in s.fields and not hires:
        out.append(f"Denoising strength {s.fields['Denoising strength']} says this was an img2img, whose input image is not "
                   f"in the PNG; it is rendered as txt2img.")
    rng = (s.rng or "GPU").upper()
    if rng != "CPU":
        said = f"RNG {s.rng}" if s.rng else "no RNG field (A1111's default: GPU)"
        out.append(f"{said}: latentscape's noise is A1111's CPU RNG, so the noise differs from the original's.")
    if s.clip_skip is not None and s.clip_skip > 1:
        out.append(f"Clip skip {s.clip_skip} is not applied: latentscape's text encoders use their last layer.")
    if "Seed resize from" in s.fields:
        out.append(f"Seed resize from {s.fields['Seed resize from']} is not applied: the noise is drawn at Size.")
    if s.seed is None:
        out.append("the infotext has no Seed, so a random seed is drawn.")
    other = [k for k in s.fields if k not in _READ and not k.lower().startswith(("hires", "adetailer"))]
    if other:
        out.append(f"fields latentscape does not read ({', '.join(other[:8])}{', ...' if len(other) > 8 else ''}) may "
                   f"change the image in A1111.")
    return out


def a1111_job(settings: A1111Settings, *, source: str, flow_guidance: bool = False) -> A1111Job:
    """The job for ``settings``. ``flow_guidance``: the model takes FLUX-style embedded guidance, so Forge's
    ``Distilled CFG Scale`` is its cfg (and a ``CFG scale`` above 1 its true CFG)."""
    from latentscape.workflows.generate import GenerateConfig

    s = settings
    cfg = s.cfg if s.cfg is not None else A1111_DEFAULTS["cfg"]
    true_cfg = 1.0
    if flow_guidance and s.distilled_cfg is not None:
        cfg, true_cfg = s.distilled_cfg, (s.cfg if s.cfg is not None and s.cfg > 1 else 1.0)
    common = dict(prompt=s.prompt, negative=s.negative, steps=s.steps or A1111_DEFAULTS["steps"],
                  sampler=sampler_of(s, source), cfg=cfg, true_cfg=true_cfg, width=s.width, height=s.height)
    seed = -1 if s.seed is None else s.seed
    warnings = _unhonoured(s)
    if s.variation_seed is not None and s.variation_strength:
        from latentscape.workflows.vary import VaryConfig

        config = VaryConfig(**common, seed=seed, n=1, strength=float(s.variation_strength), variation_seed=s.variation_seed)
        return A1111Job("vary", config, tuple(warnings), s)
    return A1111Job("generate", GenerateConfig(**common, seed=seed), tuple(warnings), s)


def model_note(settings: A1111Settings, model_id: str) -> str | None:
    """One sentence when the infotext names a model (its name and hash) other than the loaded one."""
    name = settings.fields.get("Model")
    if not name or Path(str(model_id)).name == name:
        return None
    digest = settings.fields.get("Model hash")
    return (f"the PNG was made with model '{name}'{f' (hash {digest})' if digest else ''} and is rendered with "
            f"'{model_id}'; pass --model with that checkpoint to reproduce it.")


def keyframe_from_png(path: str) -> Keyframe:
    """``png:PATH``: the prompt, seed and CFG of a PNG made by latentscape (its recipe) or by A1111/Forge (its
    ``parameters``), not its pixels; one sentence when it holds neither."""
    from latentscape.io.recipe import RECIPE_CHUNK, read_recipe

    where = f"keyframe 'png:{path}'"
    if not path:
        raise LatentscapeError(f"{where} names no file; expected png:PATH to a PNG with generation settings.")
    chunks = png_chunks(path)
    if RECIPE_CHUNK in chunks:
        recipe = read_recipe(path)
        prompt, cfg = recipe.params.get("prompt"), recipe.params.get("cfg")
        if not isinstance(prompt, str) or not prompt:
            raise LatentscapeError(f"{where}: its latentscape recipe ({recipe.workflow}) has no single prompt to take.")
        return Keyframe(prompt=prompt, seed=recipe.seed, cfg=float(cfg) if isinstance(cfg, (int, float)) else None)
    settings = read_png_settings(path)
    if settings is None:
        raise LatentscapeError(f"{where} holds no generation settings (no latentscape recipe, no A1111 'parameters' chunk); "
                               f"use image:{path} to start from its pixels.")
    if not settings.prompt:
        raise LatentscapeError(f"{where}: its A1111 parameters have an empty prompt.")
    return Keyframe(prompt=settings.prompt, seed=settings.seed, cfg=settings.cfg)
