"""Start-up and threading: help never imports torch; the thread count never changes the pixels."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from latentscape.interfaces.cli import build_parser

HELP_CHECK = """
import sys
from latentscape.interfaces.cli import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit:
        pass
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "numpy", "PIL") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


def test_help_of_every_verb_and_models_import_no_heavy_module():
    verbs = [v for v in build_parser()._subparsers._group_actions[0].choices]
    argvs = [["--help"]] + [[v, "--help"] for v in verbs] + [["models"]]
    out = subprocess.run([sys.executable, "-c", HELP_CHECK.format(argvs=argvs)], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="
    assert "generate" in verbs and "morph" in verbs


def test_bad_thread_count_is_one_sentence(capsys):
    from latentscape.interfaces.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["generate", "x", "--threads", "0"])
    assert exc.value.code == 2
    assert "'0' is not a thread count; accepted: a whole number of at least 1" in capsys.readouterr().err


def _render(tmp_path, name: str, threads: int, wait_policy: str | None) -> np.ndarray:
    import os

    path = tmp_path / f"{name}.png"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    cmd = [sys.executable, "-m", "latentscape.interfaces.cli", "generate", "cat face, google style", "--seed", "3",
           "--steps", "6", "--threads", str(threads), "-o", str(path), "-q"]
    subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


@pytest.mark.slow
def test_wait_policy_keeps_pixels_and_thread_count_stays_within_one_level(tmp_path):
    passive = _render(tmp_path, "passive", 2, None)  # the CLI's default: passive
    active = _render(tmp_path, "active", 2, "ACTIVE")
    one = _render(tmp_path, "one", 1, None)
    assert passive.shape == (64, 64, 3)
    assert np.array_equal(passive, active)  # the wait policy changes timing only
    # a different thread count splits float reductions differently: at most 1/255 on a few pixels
    assert np.abs(passive - one).max() <= 1
    assert (passive != one).mean() < 0.01
