"""Shared CLI plumbing: model/sampling flags, progress bars, output paths, JSON output."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from latentscape.errors import LatentscapeError

IMAGE_SUFFIXES = (".png",)


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", default=None, help="'embedded' (default), a diffusers folder, a .safetensors file, or a hub id")
    g.add_argument("--config", default=None, help="for a single-file checkpoint: a diffusers folder of the same architecture")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    g.add_argument("--dtype", default=None, choices=["fp32", "fp16", "bf16"], help="default: fp32 on CPU, half on GPU")
    g.add_argument("--allow-pickle", action="store_true", help="allow loading pickle (.ckpt/.bin) checkpoints: only for files you trust")
    g.add_argument("--offload", action="store_true", help="GPU: keep each component on the GPU only while it runs")
    g.add_argument("--backend", default=None, help="denoiser engine: torch (default, exact) or onnx (ONNX Runtime, CPU fp32, pixels within 2/255)")
    g.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                   help="torch.compile the denoiser (GPU fast path; MODE: default, reduce-overhead = CUDA graphs, max-autotune, "
                        "max-autotune-no-cudagraphs); matches the eager model to rounding")


def add_sampling_args(p: argparse.ArgumentParser, *, batch: bool = True) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--negative", default="", help="negative prompt")
    g.add_argument("--cfg", type=float, default=None, help="classifier-free guidance scale: low explores, high adheres (default: the family's)")
    g.add_argument("--true-cfg", type=float, default=1.0, help="real CFG on guidance-distilled models (FLUX dev), with --negative")
    g.add_argument("--guidance-rescale", type=float, default=0.0, help="guidance rescale phi, 0..1 (0.7 recommended for v-prediction)")
    g.add_argument("--steps", type=int, default=25)
    g.add_argument("--sampler", default="euler", action=SamplerAction,
                   help="euler, euler_a, heun, ddim, dpmpp_2m, dpmpp_2m_karras, unipc, lcm, or A1111's names ('Euler a', "
                        "'DPM++ 2M Karras', any case); flow_euler/flow_heun for SD3/FLUX")
    g.add_argument("--schedule", default=None, action=SamplerAction,
                   help="A1111 schedule type: Automatic (the model's own, default), Karras, Exponential (Euler, Heun, "
                        "DPM++ 2M, UniPC), SGM Uniform / Simple, Uniform, DDIM")
    g.add_argument("--seed", type=int, default=-1, help="-1 = random (the seed used is reported)")
    g.add_argument("--size", default=None, help="WIDTHxHEIGHT in pixels (default: the model's)")
    g.add_argument("--preview", default=None, metavar="PNG", help="rewrite a live latent->RGB preview of the current step here")
    if batch:
        g.add_argument("--batch", type=int, default=1, help="N images with seeds s, s+1, ...")


class SamplerAction(argparse.Action):
    """``--sampler`` and ``--schedule``, in any order: ``args.sampler`` becomes latentscape's name for the pair
    (``--sampler "DPM++ 2M" --schedule Karras`` -> ``dpmpp_2m_karras``), an unknown name refused at parse time."""

    def __call__(self, parser, namespace, values, option_string=None):
        from latentscape.samplers import canonical_sampler

        given = {**getattr(namespace, "sampler_given", {"sampler": "euler", "schedule": None}), self.dest: values}
        namespace.sampler_given = given
        try:
            namespace.sampler = canonical_sampler(given["sampler"], given["schedule"])
        except LatentscapeError as exc:
            raise argparse.ArgumentError(None, with_flags(exc, parser)) from None
        namespace.schedule = given["schedule"]


def add_output_args(p: argparse.ArgumentParser, default_hint: str = "outputs/NNNNN-SEED.png") -> None:
    p.add_argument("-o", "--output", default=None, help=f"output file, or a folder for numbered NNNNN-SEED.png names (default: {default_hint})")
    add_overwrite_arg(p)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def quiet_loading() -> None:
    """Hide diffusers'/transformers' loading bars (the CLI shows its own progress)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


# config fields whose flag is not "--" + the field with "-" for "_" (where no verb parser is at hand to ask)
FIELD_FLAGS = {"n": "-n", "closed": "--loop", "cfgs": "--cfg", "prompts": "PROMPT", "init_image": "IMAGE",
               "keyframes": "KEYFRAME", "clip_model": "--clip-model", "images_dir": "--images", "from_latents": "--from"}


def flag_of(field: str, parser: argparse.ArgumentParser | None = None) -> str:
    """How the command line spells config field ``field``: the option of ``parser`` (the verb's) whose
    destination is the field (its longest spelling; a positional's metavar), else :data:`FIELD_FLAGS`, else
    ``--`` + the field with ``-`` for ``_``."""
    for action in parser._actions if parser is not None else ():
        if action.dest == field and not isinstance(action, argparse._SubParsersAction):
            if action.option_strings:
                return max(action.option_strings, key=len)
            return action.metavar if isinstance(action.metavar, str) else field.upper()
    return FIELD_FLAGS.get(field, "--" + field.replace("_", "-"))


def with_flags(error: str | BaseException, parser: argparse.ArgumentParser | None = None) -> str:
    """A lower layer's sentence with its config field written as the command-line flag, at the CLI's boundary.

    For a :class:`LatentscapeError` with ``field`` set, the spots :mod:`latentscape.errors` defines: the
    field leading the sentence (``device got 'x'`` -> ``--device got 'x'``) and the field as a keyword
    (``allow_pickle=True`` -> ``--allow-pickle``, ``device='cpu'`` -> ``--device cpu``). Sentences without a
    field: one that starts ``FIELD got`` and ``pass save_frames``/``pass inputs``.
    """
    message = str(error)
    field = getattr(error, "field", None)
    if field:
        flag, name = flag_of(field, parser), re.escape(field)
        message = re.sub(rf"^{name}(?=[ :;,.]|$)", lambda m: flag, message)
        message = re.sub(rf"(?<![\w-]){name}=True\b", lambda m: flag, message)
        message = re.sub(rf"(?<![\w-]){name}=(?:'([^']*)'|([^\s'.,;:)]+))",
                         lambda m: f"{flag} {shlex.quote(m.group(1) if m.group(1) is not None else m.group(2))}", message)
    message = re.sub(r"^([a-z][a-z_]*) got ", lambda m: f"{flag_of(m.group(1), parser)} got ", message)
    return re.sub(r"\bpass (save_frames|inputs)\b", lambda m: f"pass {flag_of(m.group(1), parser)}", message)


def load_model(args: argparse.Namespace, config: Any = None):
    """The model ``--model`` names; with ``config``, its model-free checks run first (no load for a bad value)."""
    from latentscape.models.load import load

    if config is not None:
        from latentscape.workflows.fields import check_fields

        check_fields(config)

    if not getattr(args, "verbose", False):
        quiet_loading()

    with load_timer(args):
        return load(args.model, device=args.device, dtype=args.dtype, config=args.config,
                    allow_pickle=args.allow_pickle, offload=args.offload, backend=args.backend,
                    compile=getattr(args, "compile", None) or False)


def add_recipe_model_args(p: argparse.ArgumentParser) -> None:
    """``--model-from-recipe``: the one way a recipe read from a file chooses the model (it is untrusted)."""
    p.add_argument("--model-from-recipe", action="store_true",
                   help="load the model the recipe names (a folder, file or hub id written in the PNG: only for files you "
                        "trust); default: --model, else the embedded model")


def load_for_replay(args: argparse.Namespace, recipe_model: str, load_options=None):
    """The model for a job whose recipe came from a file: ``--model``, else the recipe's model (as it was
    loaded: single-file config, dtype) with ``--model-from-recipe``, else the default; a note on stderr when
    that is not the model the recipe was made with."""
    from latentscape.models.load import load

    if not getattr(args, "verbose", False):
        quiet_loading()
    options = dict(load_options or {})
    from_recipe = args.model is None and getattr(args, "model_from_recipe", False)
    with load_timer(args):
        model = load(recipe_model if from_recipe else args.model, device=args.device,
                     dtype=args.dtype or (options.get("dtype") if from_recipe else None),
                     config=args.config or (options.get("config") if from_recipe else None),
                     allow_pickle=args.allow_pickle, offload=args.offload,
                     backend=args.backend or options.get("backend"),  # replay stays within the recipe's backend
                     compile=getattr(args, "compile", None) or False)
    if model.model_id != recipe_model:
        print(f"note: the recipe was made with model '{recipe_model}' but '{model.model_id}' is loaded, so the result "
              "will differ; pass --model-from-recipe to load the recipe's model (only for files you trust).", file=sys.stderr)
    return model


def size_args(args: argparse.Namespace) -> tuple[int | None, int | None]:
    from latentscape.io.images import parse_size

    return parse_size(args.size) if args.size else (None, None)


def check_output_suffix(path: str | None, suffixes: Sequence[str], flag: str = "-o") -> None:
    """Fail before any work if an output path has an extension we cannot write."""
    if path is not None and Path(path).suffix.lower() not in suffixes:
        raise LatentscapeError(f"{flag} '{path}' has an unknown extension '{Path(path).suffix}'; accepted: {', '.join(suffixes)}.")


def add_overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace output files that already exist (default: refuse)")


def is_folder_output(output: str | None) -> bool:
    """``-o DIR/`` or an existing folder: outputs get A1111-style numbered names inside it."""
    return output is not None and (output.endswith(("/", os.sep)) or Path(output).is_dir())


def output_paths(output: str | None, seeds: Sequence[int], folder: str = "outputs") -> list[Path]:
    """``-o x.png`` -> x.png (one image) or x-0.png, x-1.png, ... (a batch); ``-o DIR/`` or none ->
    DIR/NNNNN-SEED.png (A1111 numbering, after the highest number already there; default DIR: outputs)."""
    if output is not None and not is_folder_output(output):
        path = Path(output)
        if len(seeds) == 1:
            return [path]
        return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(len(seeds))]
    root = Path(output if output is not None else folder)
    start = 0
    if root.is_dir():
        numbers = [int(m.group(1)) for f in root.iterdir() if (m := re.match(r"(\d{5})-", f.name))]
        start = max(numbers, default=-1) + 1
    return [root / f"{start + i:05d}-{seed}.png" for i, seed in enumerate(seeds)]


def check_writable(paths: Sequence[str | os.PathLike | None], *, overwrite: bool = False, inputs: Sequence[Any] = (),
                   flag: str = "-o", need_bytes: int = 0) -> None:
    """Before any work: each output path must not exist (unless ``overwrite``), must not be an input (also via
    links), and its folder must exist or be creatable, be writable and have ``need_bytes`` free. Also removes
    stale hidden temp files of these outputs (``.NAME.XXXXXXXX.partial.EXT``, left by a killed run)."""
    sources = [Path(i) for i in inputs if i is not None and Path(i).exists()]
    for p in paths:
        if p is None:
            continue
        path = Path(p)
        if path.is_dir():
            raise LatentscapeError(f"{flag} '{path}' is a folder; accepted: a file name (or a folder ending in '/' where the verb writes images).")
        for src in sources:
            if path.resolve() == src.resolve() or (path.exists() and os.path.samefile(path, src)):
                raise LatentscapeError(f"{flag} '{path}' is the input '{src}'; write the output to another file.")
        if path.exists() and not overwrite:
            raise LatentscapeError(f"{flag} '{path}' already exists; pass --overwrite to replace it, or choose another name.")
        folder = path.parent if str(path.parent) else Path(".")
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise LatentscapeError(f"{flag} '{path}': '{existing}' is a file, so the folder '{folder}' cannot be created.")
        if not os.access(existing, os.W_OK | os.X_OK):
            what = "is not writable" if existing == folder else f"cannot be created ('{existing}' is not writable)"
            raise LatentscapeError(f"{flag} '{path}': the folder '{folder}' {what}.")
        if need_bytes:
            free = shutil.disk_usage(existing).free
            if free < need_bytes:
                raise LatentscapeError(f"{flag} '{path}': the disk has {free / 1e6:.0f} MB free but this job needs about {need_bytes / 1e6:.0f} MB.")
        if folder.is_dir():
            remove_stale_partials(path)


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete the hidden temp files ``io.files.atomic_path`` makes for exactly this output (a killed run's)."""
    stale = re.compile(rf"\.{re.escape(path.stem)}\.[0-9a-f]{{8}}\.partial{re.escape(path.suffix)}")
    removed = []
    for p in path.parent.iterdir():
        if stale.fullmatch(p.name) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


class Progress:
    """A tqdm bar fed by the sampling loop's step callback (to stderr; silent with --quiet/--json).

    With ``preview`` (a PNG path and the model's latent format) it also rewrites a live preview of the
    first item's current x0 prediction at every step: the linear latent->RGB approximation, no VAE.
    """

    def __init__(self, enabled: bool, desc: str = "sampling", preview: tuple[str, Any] | None = None):
        self.enabled, self.desc, self.bar, self.preview = enabled, desc, None, preview

    def __call__(self, state) -> None:
        if self.preview is not None:
            self._write_preview(state)
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=state.total, desc=self.desc, unit="step", file=sys.stderr, leave=False)
        self.bar.update(1)
        if state.step + 1 >= state.total:
            self.close()

    def _write_preview(self, state) -> None:
        from PIL import Image

        from latentscape.io.recipe import save_png

        path, latent_format = self.preview
        latents = state.denoised if state.denoised is not None else state.latents
        rgb = latent_format.preview(latents[:1])[0].permute(1, 2, 0).cpu().numpy()
        image = Image.fromarray((rgb * 255).round().astype("uint8"))
        factor = latent_format.downscale
        save_png(image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST), path, None)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


RESULT_SCHEMA = "latentscape.result/1"  # documented in docs/json-schema.md (docs/result.schema.json)


@contextlib.contextmanager
def load_timer(args: argparse.Namespace):
    """Time a model load into ``args`` (the ``load_s`` of ``--json``'s timings)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        setattr(args, "_load_window", (start, time.perf_counter()))


def json_output(path: str | os.PathLike, kind: str, recipe: Any = None, *, seed: int | None = None) -> dict[str, Any]:
    """One ``outputs`` entry of ``--json``: the file, what it is, and (when it carries one) its seed, its
    A1111 infotext and its full recipe (as the PNG's ``latentscape`` chunk holds it)."""
    if recipe is None:
        return {"path": str(path), "kind": kind, "seed": seed, "infotext": None, "recipe": None}
    from latentscape.workflows.inputs import anchor_inputs

    recipe = anchor_inputs(recipe, path)  # as the file holds it: its inputs also relative to its folder
    return {"path": str(path), "kind": kind, "seed": recipe.seed if seed is None else seed,
            "infotext": recipe.infotext(), "recipe": json.loads(recipe.to_json())}


def json_result(args: argparse.Namespace, verb: str, outputs: Sequence[dict[str, Any]], model: Any = None,
           **extras: Any) -> dict[str, Any]:
    """The one ``--json`` document every verb prints (schema ``latentscape.result/1``): the verb, the model,
    ``outputs`` (see :func:`json_output`), ``seeds`` (of the outputs, in order, without repeats), ``timings``,
    then the verb's own fields (``extras``; they never replace a common field)."""
    now = time.perf_counter()
    started = getattr(args, "started_at", None)
    window = getattr(args, "_load_window", None)
    load_s = window[1] - window[0] if window else 0.0
    render_s = now - window[1] if window else (now - started if started is not None else 0.0)
    seeds = list(dict.fromkeys(o["seed"] for o in outputs if o.get("seed") is not None))
    doc: dict[str, Any] = {
        "schema": RESULT_SCHEMA, "verb": verb,
        "model": getattr(model, "model_id", None), "family": getattr(model, "name", None),
        "outputs": list(outputs), "seeds": seeds,
        "timings": {"load_s": round(load_s, 4), "render_s": round(render_s, 4),
                    "total_s": round(now - started if started is not None else load_s + render_s, 4)},
    }
    clash = sorted(set(extras) & set(doc))
    if clash:
        raise ValueError(f"verb fields {clash} would replace common result fields")
    return {**doc, **extras}


def emit(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    """Print the verb's :func:`result` as JSON (``--json``) or the human lines."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(human)
