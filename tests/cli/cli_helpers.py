"""What the CLI tests share: run a command in process and read its output, and an image's pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image

from latentscape.interfaces.cli import main


def run(capsys, *argv):
    """(exit code, stdout, stderr) of ``latentscape ARGV...`` run in this process."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def pixels(path) -> np.ndarray:
    """An image file's RGB pixels as int16 (differences do not wrap)."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
