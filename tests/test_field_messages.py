"""Lower layers name config fields, never command-line flags; the CLI maps fields to flags at its boundary."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.interfaces.cli import build_parser, verb_parser
from latentscape.interfaces.common import flag_of, with_flags

SRC = Path(latentscape.__file__).parent
LOWER = sorted([*SRC.glob("core/*.py"), SRC / "sampling.py", SRC / "samplers.py", SRC / "inversion.py", *SRC.glob("models/*.py")])
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are module, class or function docstrings (documentation, not messages)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def test_lower_layers_never_mention_a_flag_in_a_string():
    assert len(LOWER) > 20 and SRC / "models" / "load.py" in LOWER
    found = []
    for path in LOWER:
        tree = ast.parse(path.read_text(), str(path))
        docs = _docstrings(tree)
        for node in ast.walk(tree):  # f-strings too: their literal parts are Constant nodes
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs and FLAG.search(node.value):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value[:80]!r}")
    assert not found, "name the config field (LatentscapeError(..., field=...)), not the flag:\n" + "\n".join(found)


def test_the_scan_would_catch_a_flag():
    tree = ast.parse('def f():\n    """Docs may say --device."""\n    raise E(f"use --device {x}")\n')
    docs = _docstrings(tree)
    hits = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs and FLAG.search(n.value)]
    assert hits == ["use --device "]


def test_field_is_kept_optional_and_across_pickling():
    assert LatentscapeError("plain").field is None
    error = pickle.loads(pickle.dumps(LatentscapeError("device got 'x'; expected cpu.", field="device")))
    assert type(error) is LatentscapeError and str(error) == "device got 'x'; expected cpu." and error.field == "device"


@pytest.fixture(scope="module")
def generate_parser():
    return verb_parser(build_parser(), "generate")


@pytest.mark.parametrize("message, field, expected", [
    ("device got 'gpu0'; expected cpu, cuda, cuda:N or mps.", "device", "--device got 'gpu0'; expected cpu, cuda, cuda:N or mps."),
    ("device cuda was asked for, but this torch build sees no CUDA GPU; use device='cpu'.", "device",
     "--device cuda was asked for, but this torch build sees no CUDA GPU; use --device cpu."),
    ("'m.ckpt' is a pickle checkpoint; convert it or pass allow_pickle=True if you trust its source.", "allow_pickle",
     "'m.ckpt' is a pickle checkpoint; convert it or pass --allow-pickle if you trust its source."),
    ("single-file checkpoint 'm.safetensors' needs config=FOLDER: a diffusers folder.", "config",
     "single-file checkpoint 'm.safetensors' needs --config FOLDER: a diffusers folder."),
    ("strength 0.01 with 25 steps leaves no denoising step; use a strength of at least 0.04.", "strength",
     "--strength 0.01 with 25 steps leaves no denoising step; use a strength of at least 0.04."),
    ("guidance_rescale got 2.0; expected a number from 0 to 1.", "guidance_rescale", "--guidance-rescale got 2.0; expected a number from 0 to 1."),
    ("from_latents 'z.safetensors' was made with 50 ddim steps; pass steps=50.", "from_latents",
     "--from 'z.safetensors' was made with 50 ddim steps; pass steps=50."),  # another field's keyword is left alone
    ("inversion 'z.safetensors' replays with 50 steps; pass steps=50 or leave it out.", "steps",
     "inversion 'z.safetensors' replays with 50 steps; pass --steps 50 or leave it out."),
    ("the model's device is busy.", "device", "the model's device is busy."),  # only the defined spots change
])
def test_the_cli_writes_the_field_as_the_verbs_flag(generate_parser, message, field, expected):
    assert with_flags(LatentscapeError(message, field=field), generate_parser) == expected


def test_flag_of_asks_the_verbs_parser(generate_parser):
    assert flag_of("from_latents", generate_parser) == "--from"
    assert flag_of("guidance_rescale", generate_parser) == "--guidance-rescale"
    assert flag_of("prompt", generate_parser) == "PROMPT"
    assert flag_of("guidance_rescale") == "--guidance-rescale" and flag_of("closed") == "--loop"  # no parser: the table


def test_cli_prints_the_flag_for_a_models_field_error(capsys):
    from tests.cli.cli_helpers import run

    code, out, err = run(capsys, "generate", "p", "--device", "gpu0", "-o", "never.png")
    assert code == 2 and not out
    assert err.strip() == "latentscape generate: error: --device got 'gpu0'; expected cpu, cuda, cuda:N or mps."
    assert not Path("never.png").exists()


def test_cli_prints_the_flag_for_the_loops_field_error(capsys, tmp_path, tiny_sd):
    from tests.cli.cli_helpers import run

    from PIL import Image

    src = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(src)
    out_png = tmp_path / "out.png"
    code, _, err = run(capsys, "img2img", src, "p", "--strength", "0.01", "--steps", "4", "--model", tiny_sd, "-o", out_png)
    assert code == 2 and "error: --strength 0.01 with 4 steps leaves no denoising step" in err and not out_png.exists()
