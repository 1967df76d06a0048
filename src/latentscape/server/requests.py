"""A request body -> the stored job request: checked by config field names before it is queued.

What happens here, before a job row exists (so a bad request writes nothing and costs no render):
- the body must be a JSON object of the verb's config fields (unknown fields are refused, naming them);
- fields that would name a server file (``images_dir``, ``clip_model``, ...) are refused: images come as
  base64 in ``image``/``init_image``/a keyframe's ``image``, are bounded, and stored under server names;
- every seed of -1 (the job's, each keyframe's, the variation seed) is drawn now and stored, so a job rerun
  after a crash makes the same pixels;
- the workflow's config is built and its model-free checks run (:func:`latentscape.workflows.fields.check_fields`),
  then the checks that need only the loaded model's family (sampler names, size).
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path
from typing import Any

from latentscape.core.seeds import resolve_seed
from latentscape.errors import LatentscapeError
from latentscape.server.uploads import UPLOAD_PREFIX, check_image_bytes, decode_base64, store_upload, upload_path

JOB_VERBS = ("generate", "morph", "vary", "blend", "mix", "explore", "map", "sweep", "math", "encode", "decode", "replay")
# verb -> (module, config class); encode/decode/replay have their own small bodies
CONFIGS = {
    "generate": ("latentscape.workflows.generate", "GenerateConfig"),
    "morph": ("latentscape.workflows.morph", "MorphConfig"),
    "vary": ("latentscape.workflows.vary", "VaryConfig"),
    "blend": ("latentscape.workflows.blend", "BlendConfig"),
    "mix": ("latentscape.workflows.mix", "MixConfig"),
    "explore": ("latentscape.workflows.explore", "ExploreConfig"),
    "map": ("latentscape.workflows.latent_map", "MapConfig"),
    "sweep": ("latentscape.workflows.sweep", "SweepConfig"),
    "math": ("latentscape.workflows.latent_math", "MathConfig"),
}
KEYFRAME_FIELDS = {"morph": ("keyframes",), "blend": ("inputs",), "mix": ("content", "style"), "explore": ("point",),
                   "map": ("corners",)}
IMAGE_FIELDS = ("init_image",)  # top-level fields that hold an uploaded image
PATH_FIELDS = ("images_dir", "images", "clip_model", "emoji_data", "from_latents")  # would name server files: refused
SERVER_FIELDS = {"morph": ("formats",)}  # fields the server adds to a verb (not workflow config)
VIDEO_FORMATS = ("mp4", "gif", "webp")
BODIES = {"encode": ("image", "resize"), "decode": ("latents",), "replay": ("image", "recipe", "steps")}


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for (the server's own bounds, on top of :mod:`latentscape.limits`)."""

    max_steps: int = 150
    max_frames: int = 240
    max_pixels: int = 1024 * 1024  # of one rendered image
    max_body_bytes: int = 16 << 20
    max_upload_bytes: int = 8 << 20
    max_upload_pixels: int = 4096 * 4096
    max_batch: int = 16
    max_cells: int = 64

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def config_class(verb: str) -> type:
    import importlib

    module, name = CONFIGS[verb]
    return getattr(importlib.import_module(module), name)


class Uploads:
    """Decodes the request's images into ``folder`` as it goes; :meth:`discard` removes them on an error."""

    def __init__(self, folder: Path, limits: Limits):
        self.folder, self.limits, self.count = folder, limits, 0

    def image(self, value: Any, field: str) -> str:
        data = decode_base64(value, field=field, max_bytes=self.limits.max_upload_bytes)
        suffix, _ = check_image_bytes(data, field=field, max_pixels=self.limits.max_upload_pixels)
        return self.file(data, suffix)

    def file(self, data: bytes, suffix: str) -> str:
        ref = store_upload(self.folder, self.count, data, suffix)
        self.count += 1
        return ref

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def prepare(verb: str, body: Any, model, upload_folder: Path, limits: Limits) -> dict[str, Any]:
    """The request to store for ``verb`` (images stored, seeds drawn), checked; a one-sentence
    :class:`LatentscapeError` (and nothing left in ``upload_folder``) on bad input."""
    if verb not in JOB_VERBS:
        raise LatentscapeError(f"unknown job verb '{verb}'; accepted: {', '.join(JOB_VERBS)}.")
    if not isinstance(body, dict):
        raise LatentscapeError(f"the {verb} request body must be a JSON object of the config's fields.")
    uploads = Uploads(upload_folder, limits)
    try:
        request = _prepare(verb, copy.deepcopy(body), uploads, limits)
        build(verb, request, model, upload_folder, limits)  # every check a config can run before rendering
    except BaseException:
        uploads.discard()
        raise
    return request


def _prepare(verb: str, body: dict[str, Any], uploads: Uploads, limits: Limits) -> dict[str, Any]:
    if verb in BODIES:
        return _prepare_small(verb, body, uploads)
    cls = config_class(verb)
    known = {f.name for f in dataclasses.fields(cls)} | set(SERVER_FIELDS.get(verb, ()))
    for name in PATH_FIELDS:
        if body.get(name):
            raise LatentscapeError(f"{name} names files on the server, which no request may do; send images as base64 instead.")
        body.pop(name, None)
    if "image" in body and "init_image" in known and "init_image" not in body:
        body["init_image"] = body.pop("image")  # A1111-style and page-friendly name for the input image
    unknown = sorted(set(body) - known)
    if unknown:
        raise LatentscapeError(f"the {verb} request has unknown fields ({', '.join(unknown)}); accepted: {', '.join(sorted(known))}.")
    for name in IMAGE_FIELDS:
        if body.get(name) is not None:
            body[name] = uploads.image(body[name], name)
    for name in KEYFRAME_FIELDS.get(verb, ()):
        if name not in body:
            continue
        value = body[name]
        if isinstance(value, list):
            body[name] = [_keyframe(v, f"{name} item {i + 1}", uploads) for i, v in enumerate(value)]
        elif value is not None:
            body[name] = _keyframe(value, name, uploads)
    for name in ("seed", "variation_seed"):
        if name == "seed" and verb == "vary" and body.get("init_image") and body.get("seed") is None and \
                _vary_source(materialize(body["init_image"], uploads.folder))[1] is not None:
            continue  # a latentscape PNG's variations keep its own seed (its recipe's), as `latentscape vary` does
        if name in known and body.get(name, -1) == -1 and _seed_field_default(cls, name) == -1:
            body[name] = resolve_seed(-1)
    if verb == "morph":
        formats = body.get("formats", None)
        if formats is not None:
            if not isinstance(formats, list) or not formats or any(f not in available_formats() for f in formats):
                raise LatentscapeError(f"formats got {formats!r}; accepted: a list of {', '.join(available_formats())}.")
            body["formats"] = list(dict.fromkeys(formats))
    return body


def _vary_source(path: str, fields: dict[str, Any] | None = None):
    """``latentscape vary``'s reading of an uploaded source: a latentscape ``generate`` PNG varies by A1111
    variation seeds from its recipe's prompt, seed and settings (``fields`` override them); any other image by
    img2img. Returns (config, the PNG's recipe or None)."""
    from latentscape.workflows.vary import vary_config

    fields = dict(fields or {})
    if isinstance(fields.get("strength"), list):
        fields["strength"] = tuple(fields["strength"])
    return vary_config(f"image:{path}", **fields)


def _seed_field_default(cls: type, name: str) -> Any:
    field = cls.__dataclass_fields__.get(name)
    return None if field is None else field.default


def _keyframe(value: Any, where: str, uploads: Uploads) -> Any:
    """A keyframe of the request as a dict (its image stored, its seed -1 drawn), or its text."""
    from latentscape.workflows.keyframes import IMAGE_EXTENSIONS, parse_keyframe

    if isinstance(value, str):
        text = value.strip()
        if text.lower().startswith("image:") or text.lower().endswith(IMAGE_EXTENSIONS):
            raise LatentscapeError(f"{where} '{text[:60]}' names an image file, which no request may do; send {{\"image\": \"<base64>\"}} instead.")
        if not text.lower().startswith("prompt:"):
            keyframe = parse_keyframe(text) if (text.lower().startswith("seed:") or "@" in text) else None
            if keyframe is not None:
                return {k: v for k, v in {"prompt": keyframe.prompt, "seed": _drawn(keyframe.seed)}.items() if v is not None}
        return {"prompt": text[len("prompt:"):].strip() if text.lower().startswith("prompt:") else text}
    if not isinstance(value, dict):
        raise LatentscapeError(f"{where} is a {type(value).__name__}; expected an object with prompt/seed/image/cfg or a string.")
    value = dict(value)
    if value.get("image") is not None:
        value["image"] = uploads.image(value["image"], f"{where} image")
    if isinstance(value.get("seed"), int) and not isinstance(value.get("seed"), bool):
        value["seed"] = _drawn(value["seed"])
    return value


def _drawn(seed: int | None) -> int | None:
    return resolve_seed(-1) if seed == -1 else seed


def _prepare_small(verb: str, body: dict[str, Any], uploads: Uploads) -> dict[str, Any]:
    unknown = sorted(set(body) - set(BODIES[verb]))
    if unknown:
        raise LatentscapeError(f"the {verb} request has unknown fields ({', '.join(unknown)}); accepted: {', '.join(BODIES[verb])}.")
    if verb == "encode":
        if body.get("image") is None:
            raise LatentscapeError("the encode request needs image (a base64 PNG, JPEG or WebP).")
        return {"image": uploads.image(body["image"], "image"), "resize": body.get("resize", "none")}
    if verb == "decode":
        data = decode_base64(body.get("latents"), field="latents", max_bytes=uploads.limits.max_upload_bytes)
        return {"latents": uploads.file(data, ".safetensors")}
    # replay: a latentscape PNG (its recipe chunk) or the recipe object itself
    if (body.get("image") is None) == (body.get("recipe") is None):
        raise LatentscapeError("the replay request needs exactly one of image (a base64 latentscape PNG) or recipe (its JSON object).")
    if body.get("image") is not None:
        out = {"image": uploads.image(body["image"], "image")}
    else:
        if not isinstance(body["recipe"], dict):
            raise LatentscapeError("recipe must be a JSON object (a latentscape recipe).")
        out = {"recipe": body["recipe"]}
    return out


def available_formats() -> tuple[str, ...]:
    import importlib.util

    return tuple(f for f in VIDEO_FORMATS if f != "mp4" or importlib.util.find_spec("imageio_ffmpeg") is not None)


def materialize(value: Any, folder: Path) -> Any:
    """The stored request with upload references as paths (what the workflow config takes)."""
    if isinstance(value, str) and value.startswith(UPLOAD_PREFIX):
        return upload_path(folder, value)
    if isinstance(value, list):
        return [materialize(v, folder) for v in value]
    if isinstance(value, dict):
        return {k: materialize(v, folder) for k, v in value.items()}
    return value


def build(verb: str, request: dict[str, Any], model, folder: Path, limits: Limits) -> Any:
    """The workflow config (or, for encode/decode/replay, the checked inputs) of a stored request."""
    from latentscape.workflows.common import require

    params = materialize(request, folder)
    if verb in BODIES:
        return _build_small(verb, params, model, limits)
    from latentscape.io.recipe_schema import validate_params
    from latentscape.samplers import resolve_sampler
    from latentscape.workflows.fields import check_fields

    cls = config_class(verb)
    fields = {k: v for k, v in params.items() if k not in SERVER_FIELDS.get(verb, ())}
    validate_params(cls, fields, source=f"the {verb} request")
    if "image_mode" in {f.name for f in dataclasses.fields(cls)}:  # a new request gets the verb's default
        fields.setdefault("image_mode", "invert")  # (from_params reads a missing field as an old recipe's noise)
    if verb == "vary" and fields.get("init_image"):
        config = _vary_source(fields["init_image"], {k: v for k, v in fields.items() if k != "init_image"})[0]
    else:
        config = cls.from_params(fields) if hasattr(cls, "from_params") else cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    check_fields(config)
    steps = getattr(config, "steps", 1)
    require(steps <= limits.max_steps, f"steps got {steps}; this server accepts at most {limits.max_steps}.")
    resolve_sampler(config.sampler, model.is_flow)
    width, height = getattr(config, "width", None), getattr(config, "height", None)
    if width or height:
        from latentscape.workflows.common import resolve_size

        width, height = resolve_size(model, width, height)
        require(width * height <= limits.max_pixels,
                f"width x height is {width}x{height} = {width * height:,} pixels; this server accepts at most {limits.max_pixels:,}.")
    for name in ("batch", "n"):
        value = getattr(config, name, 1)
        require(value <= limits.max_batch, f"{name} got {value}; this server accepts at most {limits.max_batch}.")
    if verb == "morph":
        from latentscape.workflows.morph import check_config

        frames = check_config(config).timing.frames  # frames may be left out when keyframes are pinned to frames
        require(frames <= limits.max_frames, f"frames got {frames}; this server accepts at most {limits.max_frames}.")
    if verb in ("explore", "map"):
        from latentscape.workflows.grids import parse_grid

        cols, rows = parse_grid(config.grid, minimum=1 if verb == "explore" else 2, odd=verb == "explore", flag="grid")
        require(cols * rows <= limits.max_cells, f"grid got {config.grid}; this server accepts at most {limits.max_cells} cells.")
    if verb == "sweep":
        cells = len(config.prompts) * config.seeds * len(config.cfgs)
        require(cells <= limits.max_cells, f"prompts x seeds x cfgs is {cells} cells; this server accepts at most {limits.max_cells}.")
    return config


def _build_small(verb: str, params: dict[str, Any], model, limits: Limits) -> Any:
    from latentscape.workflows.common import require

    if verb == "encode":
        require(params.get("resize", "none") in ("none", "stretch", "crop"), f"resize got {params.get('resize')!r}; accepted: none, stretch, crop.")
        return params
    if verb == "decode":
        from latentscape.io.latents import load_latents

        latents, _ = load_latents(params["latents"])  # header and shape checks before the job is queued
        require(latents.ndim == 4 and latents.shape[0] <= limits.max_batch, "latents must hold (B, C, h, w) with B at most "
                f"{limits.max_batch}.")
        return params
    from latentscape.io.recipe import Recipe, read_recipe
    from latentscape.workflows.replay import config_from_recipe

    if "image" in params:
        recipe = read_recipe(params["image"])
    else:
        import json

        recipe = Recipe.from_json(json.dumps(params["recipe"]), source="the request's recipe")
    if recipe.workflow not in CONFIGS and recipe.workflow != "img2img":
        raise LatentscapeError(f"recipe workflow '{recipe.workflow}' cannot be replayed by the server; accepted: {', '.join(CONFIGS)}.")
    config = config_from_recipe(recipe)
    if _names_files(config):
        raise LatentscapeError("the recipe names input files (images) on disk, which no request may do; send the images in a new "
                               "job as base64 instead.")
    return recipe, config


def _names_files(config: Any) -> bool:
    from latentscape.workflows.keyframes import Keyframe

    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        items = value if isinstance(value, (tuple, list)) else (value,)
        if f.name in IMAGE_FIELDS + PATH_FIELDS and any(items):
            return True
        if any(isinstance(v, Keyframe) and v.image is not None for v in items):
            return True
    return False

