"""Run one stored job request on the model with the same workflow functions the CLI calls, writing its
outputs into ``folder`` under names the server picks; returns the record the job row keeps."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Any, Callable

from latentscape.server.requests import BODIES, Limits, build

KINDS = {".png": "png", ".gif": "gif", ".mp4": "mp4", ".webp": "webp", ".safetensors": "safetensors", ".json": "json",
         ".html": "html", ".npz": "npz"}
# verb -> the config fields that are the CLI's positional arguments, in order
POSITIONAL = {"generate": ("prompt",), "img2img": ("prompt",), "morph": ("keyframes",), "blend": ("inputs",), "mix": ("content", "style"),
              "explore": ("point",), "map": ("corners",), "sweep": ("prompts",), "math": ("expression",), "vary": ("prompt",)}
CLI_VERB = {"generate": "generate", "img2img": "img2img", "morph": "morph", "vary": "vary", "blend": "blend", "mix": "mix",
            "explore": "explore", "map": "map", "sweep": "sweep", "math": "math"}


def execute(verb: str, request: dict[str, Any], model, *, uploads: Path, folder: Path, limits: Limits,
            callback: Callable | None = None, frames: Callable | None = None) -> dict[str, Any]:
    """Render ``request`` into ``folder``: returns {"results": [{name, kind}], "recipe", "infotext", "cli"}."""
    built = build(verb, request, model, uploads, limits)
    if verb in BODIES:
        return _small(verb, built, model, folder, callback, frames)
    if verb == "morph":
        return _morph(built, request.get("formats"), model, folder, callback, frames)
    from latentscape.workflows.replay import WORKFLOWS, resolve

    _, fn = resolve(verb if verb in WORKFLOWS else "generate")
    out = fn(model, built, callback=callback)
    return _images(out, folder, verb)


def _images(out, folder: Path, verb: str) -> dict[str, Any]:
    from latentscape.io.recipe import save_png

    results = []
    if "sheet" in out.info and "sheet_recipe" in out.info:
        save_png(out.info["sheet"], folder / "sheet.png", out.info["sheet_recipe"])
        results.append("sheet.png")
        if "chart" in out.info and hasattr(out.info["chart"], "save"):
            save_png(out.info["chart"], folder / "chart.png", out.info.get("chart_recipe"))
            results.append("chart.png")
        for i, (image, recipe) in enumerate(zip(out.images, out.recipes)):
            save_png(image, folder / f"cell-{i:03d}.png", recipe)
            results.append(f"cell-{i:03d}.png")
        main = out.info["sheet_recipe"]
    else:
        for i, (image, recipe) in enumerate(zip(out.images, out.recipes)):
            name = f"{i:05d}-{recipe.seed}.png"
            save_png(image, folder / name, recipe)
            results.append(name)
        main = out.recipes[0]
    return {**record(results, main, verb), "info": json_info(out.info)}


def _morph(config, formats, model, folder: Path, callback, frames) -> dict[str, Any]:
    from latentscape.io.video import pingpong, write_video
    from latentscape.server.requests import available_formats
    from latentscape.workflows.morph import render_morph

    formats = list(formats or available_formats())
    main = folder / f"morph.{formats[0]}"
    out = render_morph(model, config, main, save_frames=folder, contact_sheet=folder / "sheet.png",
                       callback=callback, progress=frames)
    sequence = pingpong(out.images) if config.pingpong else out.images
    for fmt in formats[1:]:
        write_video(sequence, folder / f"morph.{fmt}", fps=config.fps, loop=True)
    names = [f"morph.{f}" for f in formats] + ["sheet.png", main.name + ".manifest.json"]
    names += sorted(p.name for p in folder.glob("frame_*.png"))
    names += keyframe_file(out.recipe.params.get("keyframes", []), folder)
    rec = record([n for n in names if (folder / n).is_file()], out.recipe, "morph")
    if "keyframes.json" in names:  # per-keyframe CFG or images: the command reads the job's own keyframe file
        rec["cli"] = cli_command("morph", {**out.recipe.params, "keyframes": []}).replace(
            "latentscape morph", "latentscape morph --keyframes keyframes.json", 1)
    rec["positions"] = out.positions
    rec["keyframe_frames"] = out.keyframe_frames
    rec["info"] = json_info({"positions": out.positions, "keyframe_frames": out.keyframe_frames})
    return rec


def keyframe_file(keyframes: list, folder: Path) -> list[str]:
    """When a command line cannot carry the keyframes (a per-keyframe CFG, an image), write them as the
    ``keyframes.json`` that ``latentscape morph --keyframes`` reads, with each image beside it as
    ``keyframe-N.png``; returns the names written (none when the keyframes fit on the command line)."""
    import json
    import shutil

    if not any(isinstance(k, dict) and (k.get("cfg") is not None or k.get("image")) for k in keyframes):
        return []
    items, names = [], []
    for i, k in enumerate(keyframes):
        k = {key: value for key, value in dict(k).items() if value is not None}
        if k.get("image"):
            name = f"keyframe-{i}{Path(k['image']).suffix.lower() or '.png'}"
            source = Path(k["image"]) if Path(k["image"]).is_absolute() else folder / k["image"]  # recipes anchor
            shutil.copyfile(source, folder / name)  # inputs relative to the output's folder
            k["image"], names = name, names + [name]
        items.append(k)
    (folder / "keyframes.json").write_text(json.dumps(items, indent=1), encoding="utf-8")
    return ["keyframes.json", *names]


def _small(verb: str, built, model, folder: Path, callback, frames) -> dict[str, Any]:
    from latentscape.io.recipe import save_png

    if verb == "encode":
        from latentscape.io.latents import save_latents
        from latentscape.workflows.latents import encode_image

        latents, meta = encode_image(model, built["image"], built.get("resize", "none"))
        save_latents(folder / "latents.safetensors", latents, dataclasses.replace(meta, source="upload"))
        return {**record(["latents.safetensors"], None, verb), "cli": "latentscape encode IMAGE -o latents.safetensors",
                "shape": list(latents.shape)}
    if verb == "decode":
        from latentscape.workflows.latents import decode_file

        images = decode_file(model, built["latents"])
        names = [f"decoded-{i:02d}.png" for i in range(len(images))]
        for image, name in zip(images, names):
            save_png(image, folder / name, None)
        return {**record(names, None, verb), "cli": "latentscape decode latents.safetensors -o decoded.png"}
    recipe, config = built
    if recipe.workflow == "morph":
        return _morph(config, None, model, folder, callback, frames)
    from latentscape.workflows.replay import resolve

    _, fn = resolve(recipe.workflow)
    out = fn(model, config, callback=callback)
    return _images(out, folder, recipe.workflow)


def json_info(info: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe part of a workflow Output's ``info`` (what ``GET jobs/{id}`` shows as ``info``): numbers,
    strings, booleans and lists/dicts of them (numpy scalars as numbers, tuples as lists, NaN/inf as null);
    images, tensors, recipes and paths are left out (they are the job's files and recipe)."""
    import math

    skip = object()

    def safe(value: Any) -> Any:
        if value is None or isinstance(value, (bool, str, int)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
            return safe(value.item())
        if isinstance(value, (list, tuple)):
            items = [safe(v) for v in value]
            return skip if any(v is skip for v in items) else items
        if isinstance(value, dict):
            out = {str(k): safe(v) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not skip}
        return skip

    return {k: v for k, v in ((str(k), safe(v)) for k, v in info.items()) if v is not skip}


def record(names: list[str], recipe, verb: str) -> dict[str, Any]:
    """The job row's contents for these output files and the job's main recipe."""
    return {
        "results": [{"name": n, "kind": KINDS.get(Path(n).suffix.lower(), "file")} for n in names],
        "recipe": dataclasses.asdict(recipe) if recipe is not None else None,
        "infotext": recipe.infotext() if recipe is not None else None,
        "cli": cli_command(recipe.workflow if recipe is not None else verb, dict(recipe.params) if recipe is not None else {}),
    }


def cli_command(workflow: str, params: dict[str, Any]) -> str:
    """A copy-pasteable ``latentscape ...`` command for a recipe's params (defaults left out); uploaded
    images appear as ``IMAGE`` placeholders for the user's own file."""
    from latentscape.interfaces.common import flag_of
    from latentscape.server.requests import CONFIGS, config_class
    from latentscape.workflows.options import SAMPLING_FIELDS

    verb = CLI_VERB.get(workflow, workflow)
    cls = config_class("generate" if workflow == "img2img" else workflow) if (workflow in CONFIGS or workflow == "img2img") else None
    defaults = {f.name: f.default for f in dataclasses.fields(cls)} if cls is not None else {}
    words = ["latentscape", verb]
    if workflow == "img2img":
        words.append("IMAGE")
    for name in POSITIONAL.get(workflow, ()):
        value = params.get(name)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None and item != "":
                words.append(_keyframe_text(item))
    if workflow == "vary" and params.get("init_image"):
        words.append("IMAGE")
    # fields with no flag: what a grid returns (the CLI writes the sheet and --save-cells), explore's axis seeds
    # (derived from the seed again), and those the size or the model decide
    skip = set(POSITIONAL.get(workflow, ())) | {"init_image", "width", "height", "images", "images_dir", "distance",
                                                 "returns", "axis_seeds"}
    for name, value in sorted(params.items(), key=lambda kv: kv[0] in SAMPLING_FIELDS):  # the verb's own flags, then sampling's
        if name in skip or value is None or (name in defaults and defaults[name] == value) or isinstance(value, dict):
            continue
        if isinstance(value, bool):
            if value:
                words.append(flag_of(name))
            continue
        text = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, (list, tuple)) else \
            (f"{value:g}" if isinstance(value, float) else str(value))
        words += [flag_of(name), text]
    if params.get("width") and params.get("height"):
        words += ["--size", f"{params['width']}x{params['height']}"]
    if workflow == "morph":
        words += ["-o", "morph.mp4"]
    return " ".join(shlex.quote(w) if i > 1 else w for i, w in enumerate(words))


def _keyframe_text(item: Any) -> str:
    if isinstance(item, dict):
        if item.get("image"):
            return "image:IMAGE"
        prompt, seed = item.get("prompt"), item.get("seed")
        if prompt and seed is not None:
            return f"{prompt}@{seed}"
        return f"seed:{seed}" if seed is not None else f"prompt:{prompt or ''}"
    return str(item)
