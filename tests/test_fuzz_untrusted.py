"""Property test of the public CLI on hostile files (issue 12): random and mutated recipes (in PNGs), latent
files, single-file safetensors headers and image bytes go to ``latentscape.interfaces.cli.main``.

Every example must end with exit code 2, exactly one stderr line ``latentscape VERB: error: ...``, no
traceback, no file written, removed or changed in its temporary folder (where the output would go, and
HOME, the caches and the working directory point), and the tiny model folder it reads untouched.

Each generated file carries at least one fault by construction (a recipe names an input file that does not
exist, a latent file breaks one invariant of its format, an image is asked of a 1-pixel limit), so a
success would itself be a bug. Examples never load a model for real except the single-file checkpoint
case, which fails at the header; the image and latent verbs get the already-loaded tiny model.
Derandomized, no example database: CI sees the same examples every run (about 20 s here).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin
from untrusted_files import good_latent_meta, latent_file_bytes, png_claiming_size, safetensors_bytes

import latentscape
from latentscape.interfaces.cli import main

FUZZ = settings(max_examples=40, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MISSING_SHA = "ab" * 32

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def tiny_model(tiny_sd):
    return latentscape.load(str(tiny_sd))


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def assert_refused(verb: str, argv: list, files: dict[str, bytes], *, watch: Path, model=None, env: dict | None = None):
    """Write ``files`` into a fresh folder, run ``latentscape VERB ARGV`` there and check the contract."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, data in files.items():
            (root / name).write_bytes(data)
        for name in ("home", "cache"):
            (root / name).mkdir()
        before, watched = _snapshot(root), _snapshot(watch)
        err, out = io.StringIO(), io.StringIO()
        environment = {"HOME": str(root / "home"), "XDG_CACHE_HOME": str(root / "cache"), "HF_HOME": str(root / "cache" / "hf"),
                       **(env or {})}
        with pytest.MonkeyPatch.context() as mp:
            for key, value in environment.items():
                mp.setenv(key, value)
            mp.chdir(root)
            if model is not None:
                mp.setattr("latentscape.models.load.load", lambda *a, **k: model)
            else:
                mp.setattr("latentscape.models.load.family_classes", _no_model_build)
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                    code = main([verb] + [str(a) for a in argv])
            except BaseException:  # noqa: BLE001 - any escape is the failure this test looks for
                pytest.fail(f"latentscape {verb} {argv} raised:\n{traceback.format_exc()}")
        lines = err.getvalue().strip().splitlines()
        assert code == 2, f"{verb} {argv}: exit {code}; stderr {lines}"
        assert len(lines) == 1 and lines[0].startswith(f"latentscape {verb}: error: "), lines
        assert "Traceback" not in err.getvalue()
        assert _snapshot(root) == before, "a file was written, removed or changed"
        assert _snapshot(watch) == watched, "the model folder was touched"


def _no_model_build():
    raise AssertionError("a hostile file got as far as building a model")


# --- recipes in PNGs ----------------------------------------------------------------------------------
def _base_recipe() -> dict:
    return {"workflow": "generate", "model": "embedded", "family": "sd", "seed": 5, "batch_index": 0,
            "params": {"prompt": "cat face, google style", "negative": "", "seed": 5, "steps": 2, "sampler": "euler",
                       "cfg": 7.5, "width": 64, "height": 64, "batch": 1, "init_image": "gone.png", "strength": 0.5},
            "inputs": {"init_image": {"path": "gone.png", "sha256": MISSING_SHA}},  # never exists: replay must stop
            "infotext_extra": {}, "sampler_label": "Euler", "versions": {"latentscape": "0.1.0"}, "load": {}, "format": 1}


@st.composite
def recipe_texts(draw) -> str:
    data = _base_recipe()
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.sampled_from(["top", "params", "entry"]))
        if where == "top":
            key = draw(st.sampled_from([k for k in data if k != "inputs"] + ["extra"]))
            if draw(st.booleans()) and key in data:
                del data[key]
            else:
                data[key] = draw(json_values)
        elif where == "params" and isinstance(data.get("params"), dict):
            key = draw(st.sampled_from(sorted(data["params"]) + ["keyframes", "unknown"]))
            data["params"][key] = draw(json_values)
        else:
            entry = data["inputs"]["init_image"]
            entry[draw(st.sampled_from(["path", "sha256", "relative", "size"]))] = draw(json_values)
    text = json.dumps(data, allow_nan=True)
    if draw(st.booleans()):  # damage the text itself
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.text(max_size=3)) + text[i + draw(st.integers(0, 3)):]
    return text


def _png_with_chunk(text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("latentscape", text)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


@FUZZ
@given(text=recipe_texts())
def test_replay_of_mutated_recipes(text, tiny_sd):
    assert_refused("replay", ["r.png", "-o", "out/again.png", "-q"], {"r.png": _png_with_chunk(text)}, watch=tiny_sd)


@FUZZ
@given(text=st.text(max_size=200))
def test_replay_of_random_recipe_text(text, tiny_sd):
    assert_refused("replay", ["r.png", "-o", "out/again.png"], {"r.png": _png_with_chunk(text)}, watch=tiny_sd)


# --- latent files ---------------------------------------------------------------------------------------
BAD_META = {
    "scale": st.text(max_size=6).map(json.dumps) | st.just("NaN") | st.just("-1") | st.just("{x"),
    "shift": st.text(max_size=6).map(json.dumps) | st.just("Infinity") | st.just("[0]"),
    "channels": st.integers(-3, 0).map(json.dumps) | st.just('"4"') | st.just("4.5"),
    "width": st.integers(-5, 0).map(json.dumps) | st.just("1e9") | st.just("true"),
    "family": st.integers().map(json.dumps) | st.just("null") | st.just("[]"),
}


BYTE_FAULTS = ["length", "truncate", "header", "extra", "random"]


def _damage(draw, good: bytes, fault: str) -> bytes:
    """A fault in the framing of a safetensors file ``good``: its length prefix, its end, its header bytes."""
    n = struct.unpack("<Q", good[:8])[0]
    if fault == "length":
        return struct.pack("<Q", draw(st.integers(0, 2**64 - 1).filter(lambda v: v != n))) + good[8:]
    if fault == "truncate":
        return good[: draw(st.integers(0, len(good) - 1))]
    if fault == "header":
        raw = draw(st.binary(min_size=1, max_size=200))
        return struct.pack("<Q", len(raw)) + raw + good[8 + n:]
    if fault == "extra":
        return good + draw(st.binary(min_size=1, max_size=40))
    return draw(st.binary(max_size=300))


@st.composite
def bad_latent_files(draw) -> bytes:
    good = latent_file_bytes(np.zeros((1, 4, 4, 4), np.float32), good_latent_meta())
    fault = draw(st.sampled_from(["nan", "meta", "shape", "offsets", "dtype"] + BYTE_FAULTS))
    if fault in BYTE_FAULTS:
        return _damage(draw, good, fault)
    if fault == "nan":
        arr = np.zeros((1, 4, 4, 4), np.float32)
        arr.flat[draw(st.integers(0, 63))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return latent_file_bytes(arr, good_latent_meta())
    n = struct.unpack("<Q", good[:8])[0]
    header, data = json.loads(good[8:8 + n]), good[8 + n:]
    if fault == "meta":
        field = draw(st.sampled_from(sorted(BAD_META)))
        header["__metadata__"][field] = draw(BAD_META[field])
    elif fault == "shape":
        header["latents"]["shape"] = draw(st.lists(st.integers(-2, 9), max_size=5).filter(lambda s: int(np.prod(s)) != 64 or len(s) != 4 or 0 in s))
    elif fault == "offsets":
        header["latents"]["data_offsets"] = draw(st.lists(st.integers(-5, 2**40), max_size=3).filter(lambda o: o != [0, 256]))
    else:
        header["latents"]["dtype"] = draw(st.text(max_size=5).filter(lambda d: d != "F32") | st.sampled_from(["I32", "U8", "F64", "BOOL"]))
    return safetensors_bytes(header, data)


@FUZZ
@given(data=bad_latent_files())
def test_decode_of_broken_latent_files(data, tiny_model, tiny_sd):
    assert_refused("decode", ["z.safetensors", "-o", "out/x.png"], {"z.safetensors": data}, watch=tiny_sd, model=tiny_model)


# --- single-file checkpoints --------------------------------------------------------------------------
@st.composite
def bad_checkpoints(draw) -> bytes:
    names = draw(st.lists(st.text(min_size=1, max_size=30), min_size=2, max_size=4, unique=True))
    header = {name: {"dtype": "F32", "shape": [2], "data_offsets": [8 * i, 8 * i + 8]} for i, name in enumerate(names)}
    data = b"\x00" * (8 * len(names))
    fault = draw(st.sampled_from(["overlap", "range", "not-an-object"] + BYTE_FAULTS))
    if fault in BYTE_FAULTS:
        return _damage(draw, safetensors_bytes(header, data), fault)
    if fault == "overlap":
        header[names[1]]["data_offsets"] = [4, 12]
    elif fault == "range":
        header[names[0]]["data_offsets"] = [0, draw(st.integers(len(data) + 1, 2**62))]
    else:
        header = draw(st.lists(json_values, max_size=3))
    return safetensors_bytes(header, data)


@FUZZ
@given(data=bad_checkpoints())
def test_generate_with_broken_single_file_checkpoints(data, tiny_sd):
    assert_refused("generate", ["p", "--model", "m.safetensors", "--config", tiny_sd, "--steps", "1", "-o", "out/x.png", "-q"],
                   {"m.safetensors": data}, watch=tiny_sd)


# --- image bytes ----------------------------------------------------------------------------------------
def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (11, 13, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


BASE_IMAGES = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP")}


@st.composite
def image_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "random", "bomb"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "bomb":
        return png_claiming_size(draw(st.integers(1, 2**31 - 1)), draw(st.integers(1, 2**31 - 1)))
    data = bytearray(BASE_IMAGES[draw(st.sampled_from(sorted(BASE_IMAGES)))])
    for _ in range(draw(st.integers(1, 6))):
        op, i = draw(st.sampled_from(["flip", "cut", "insert"])), draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:i + draw(st.integers(1, 64))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        if not data:
            break
    return bytes(data)


@FUZZ
@given(data=image_bytes())
def test_img2img_of_hostile_image_bytes(data, tiny_model, tiny_sd):
    # a 1-pixel limit: any image that does decode is then refused too, so every example must fail in one sentence
    assert_refused("img2img", ["in.png", "p", "--steps", "1", "-o", "out/x.png", "-q"], {"in.png": data},
                   watch=tiny_sd, model=tiny_model, env={"LATENTSCAPE_MAX_PIXELS": "1"})


# --- morph manifests ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def morph_manifest(tiny_sd, tmp_path_factory) -> dict:
    """A real manifest of a finished 3-frame morph on the tiny model (the base every example mutates)."""
    folder = tmp_path_factory.mktemp("morph")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        code = main(["morph", "a red cat", "a dog", "--model", str(tiny_sd), "--frames", "3", "--steps", "1",
                     "--seed", "1", "-o", str(folder / "m.gif"), "-q"])
    assert code == 0
    return json.loads((folder / "m.gif.manifest.json").read_text())


MANIFEST_KEYS = ["kind", "format", "recipe", "frames_dir", "keep_frames", "stages", "pacing", "output", "complete"]


@st.composite
def mutated_manifests(draw, base: dict, sibling: str) -> dict:
    data = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(MANIFEST_KEYS))
        choice = draw(st.sampled_from(["value", "delete", "sibling", "stage"]))
        if choice == "delete":
            data.pop(key, None)
        elif choice == "sibling":  # the hole of old: a manifest naming a folder it wants used or deleted
            data["frames_dir"], data["complete"] = sibling, draw(st.booleans())
        elif choice == "stage" and isinstance(data.get("stages"), dict) and isinstance(data["stages"].get("final"), dict):
            final = data["stages"]["final"]
            field = draw(st.sampled_from(["positions", "frames"]))
            if isinstance(final.get(field), list) and final[field] and draw(st.booleans()):
                final[field][draw(st.integers(0, len(final[field]) - 1))] = draw(json_values)
            else:
                final[field] = draw(json_values)
        else:
            data[key] = draw(json_values)
    return data


@settings(max_examples=25, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_resume_and_replay_of_mutated_manifests_touch_nothing_outside(data, morph_manifest, tiny_model, tiny_sd):
    """``morph --resume`` and ``replay`` of a tampered manifest: a sentence (exit 2) or, when the mutation
    left a valid manifest, a normal run (exit 0); never a traceback, and a sibling folder the manifest names
    (with a file of the user's in it) survives untouched."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sibling = root / "precious"
        sibling.mkdir()
        (sibling / "frame_00000.png").write_bytes(b"the user's own file")
        manifest = data.draw(mutated_manifests(morph_manifest, str(sibling)))
        (root / "m.gif.manifest.json").write_text(json.dumps(manifest, allow_nan=True))
        keep = _snapshot(sibling)
        for argv in (["morph", "a red cat", "a dog", "--frames", "3", "--steps", "1", "--seed", "1", "-o", "m.gif",
                      "--resume", "-q", "--overwrite"],
                     ["replay", "m.gif.manifest.json", "-o", "again.gif", "-q", "--overwrite"]):
            err = io.StringIO()
            with pytest.MonkeyPatch.context() as mp:
                mp.chdir(root)
                mp.setenv("HOME", str(root))
                mp.setattr("latentscape.models.load.load", lambda *a, **k: tiny_model)
                try:
                    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                        code = main(argv)
                except BaseException:  # noqa: BLE001 - any escape is the failure this test looks for
                    pytest.fail(f"latentscape {argv[0]} raised:\n{traceback.format_exc()}")
            lines = err.getvalue().strip().splitlines()
            assert "Traceback" not in err.getvalue()
            assert code in (0, 2), (argv[0], code, lines)
            if code == 2:
                errors = [line for line in lines if line.startswith(f"latentscape {argv[0]}: error: ")]
                assert len(errors) == 1, lines
            assert _snapshot(sibling) == keep, "a folder the manifest names was touched"
