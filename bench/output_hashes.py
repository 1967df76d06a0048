"""SHA-256 of every output of a 12-frame morph render, to compare two checkouts' bytes (not a benchmark).

    PYTHONPATH=/path/to/main/src python bench/output_hashes.py > main.json
    PYTHONPATH=src python bench/output_hashes.py > this.json && diff main.json this.json

Renders the morph of tests/workflows/test_morph_streaming.py (tiny SD model from tests/tiny_models.py,
12 frames, 4 steps, one torch thread as the tests run) with uniform pacing, perceptual pacing and a closed
ping-pong loop, each to .gif, .webp and .mp4 with its frame PNGs and contact sheet, in a fixed folder
(``--work``: recipes in PNG and MP4 files record the model's path, so both runs must use the same one).
Prints the hashes of the videos, the sheets, the frame PNGs' bytes and their decoded pixels, as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {"uniform": {"pacing": "uniform"}, "perceptual": {"pacing": "perceptual"},
         "closed_pingpong": {"pacing": "uniform", "closed": True, "pingpong": True}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/latentscape-output-hashes", help="the folder to render in (emptied)")
    args = parser.parse_args(argv)
    import numpy as np
    import torch
    from PIL import Image

    sys.path.insert(0, str(ROOT / "tests"))
    import latentscape
    from latentscape.workflows.morph import MorphConfig, render_morph
    from tiny_models import make_sd

    torch.set_num_threads(1)

    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model = latentscape.load(str(make_sd(work / "sd")))
    out: dict = {}
    for name, kw in CASES.items():
        config = MorphConfig(keyframes=("a cat", "a dog@5", "a bird@9"), frames=12, seed=3, steps=4, batch_size=5, **kw)
        for ext in ("gif", "webp", "mp4"):
            folder = work / name / ext
            render_morph(model, config, folder / f"morph.{ext}", save_frames=folder / "frames", contact_sheet=folder / "sheet.png")
            pngs = sorted((folder / "frames").glob("frame_*.png"))
            out[f"{name}.{ext}"] = sha((folder / f"morph.{ext}").read_bytes())
            out[f"{name}.{ext}.sheet"] = sha((folder / "sheet.png").read_bytes())
            out[f"{name}.{ext}.frame_files"] = sha(b"".join(p.read_bytes() for p in pngs))
            out[f"{name}.pixels"] = sha(b"".join(np.asarray(Image.open(p).convert("RGB")).tobytes() for p in pngs))
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
