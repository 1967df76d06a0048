"""Make the README's exploration pictures (docs/images/*.png) with the embedded model.

Run from the repository root: ``python docs/make_creative_images.py``. Every picture comes from the
commands listed in COMMANDS (the ones the README shows); vary, blend, mix and math outputs are single
images, so they are laid out here as labelled strips next to their sources.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

from latentscape.interfaces.cli import main
from latentscape.io.grid import contact_sheet
from latentscape.workflows.adherence import EMOJI_NAMES, emoji_data_path

OUT = Path(__file__).parent / "images"
EMOJI_DATA = emoji_data_path()
CAT = "cat face, google style"
SWEEP_SET = [f"{name}, {style} style" for name, style in zip(EMOJI_NAMES[:8], ("google", "twitter") * 4)]
COMMANDS = {
    "source": ["generate", CAT, "--seed", "7", "-o", "{tmp}/source.png"],
    "vary": ["vary", "{tmp}/source.png", "-n", "4", "--strength", "subtle", "--variation-seed", "100", "-o", "{tmp}/vary.png"],
    "vary_strong": ["vary", "{tmp}/source.png", "-n", "4", "--strength", "strong", "--variation-seed", "100", "-o", "{tmp}/strong.png"],
    "blend_a": ["generate", "grinning face, google style", "--seed", "3", "-o", "{tmp}/blend_a.png"],
    "blend_b": ["generate", "fire, twitter style", "--seed", "4", "-o", "{tmp}/blend_b.png"],
    "blend": ["blend", "grinning face, google style@3", "fire, twitter style@4", "-o", "{tmp}/blend.png"],
    "mix": ["mix", f"{CAT}@7", "twitter style", "--ratio", "0,0.25,0.5,0.75,1", "-o", "{tmp}/mix.png"],
    "mix_schedule": ["mix", f"{CAT}@7", "twitter style", "--ratio", "0,0.25,0.5,0.75,1", "--mode", "schedule", "-o", "{tmp}/mixs.png"],
    "explore": ["explore", f"{CAT}@7", "--grid", "5x5", "--radius", "0.3", "-o", str(OUT / "explore.png")],
    "map": ["map", f"{CAT}@1", "dog face, twitter style@2", "grinning face, twitter style@3", "fire, google style@4",
            "--grid", "7x7", "-o", str(OUT / "map.png"), "--html", str(OUT / "map.html")],
    "sweep": ["sweep", CAT, "--cfg", "1,3,5,7.5,10,15", "--seeds", "4", "--seed", "0", "-o", str(OUT / "sweep.png"),
              "--chart", "{tmp}/sweep-cat-chart.png"],
    # the chart: the 8-prompt set of the monotone-adherence test, 4 seeds each, with the nearest-training-image
    # accuracy when the emoji data is there (caption retrieval among 8 prompts saturates on the v3 model)
    "sweep_set": ["sweep", *SWEEP_SET, "--cfg", "1,3,5,7.5,10,15", "--seeds", "4", "--seed", "0", "--steps", "20",
                  *(["--emoji-data", str(EMOJI_DATA)] if EMOJI_DATA else []),
                  "-o", "{tmp}/sweep-set.png", "--chart", str(OUT / "sweep-chart.png")],
    "math_a": ["generate", "cat face, google style", "--seed", "7", "-o", "{tmp}/math_a.png"],
    "math": ["math", '"cat face, google style" - "google style" + "twitter style"', "--seed", "7", "-o", "{tmp}/math.png"],
}


def strip(paths: list[Path], labels: list[str], title: str, name: str) -> None:
    images = [Image.open(p).convert("RGB") for p in paths]
    sheet = contact_sheet(images, len(images), labels=labels, title=title, cell_scale=2)
    sheet.save(OUT / name)


def run() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name, argv in COMMANDS.items():
            code = main([a.format(tmp=tmp) for a in argv] + ["-q", "--overwrite"])
            if code:
                print(f"{name} failed", file=sys.stderr)
                return code
        strip([tmp / "source.png", *(tmp / f"vary-{i}.png" for i in range(4)), *(tmp / f"strong-{i}.png" for i in range(4))],
              ["source", *["subtle"] * 4, *["strong"] * 4], f"vary: {CAT} @ seed 7", "vary.png")
        strip([tmp / "blend_a.png", tmp / "blend_b.png", tmp / "blend.png"], ["grinning face, google", "fire, twitter", "blend 50/50"],
              "blend", "blend.png")
        ratios = ["0", "0.25", "0.5", "0.75", "1"]
        strip([*(tmp / f"mix-{i}.png" for i in range(5)), *(tmp / f"mixs-{i}.png" for i in range(5))],
              [f"embed {r}" for r in ratios] + [f"schedule {r}" for r in ratios], f"mix: {CAT} x twitter style", "mix.png")
        strip([tmp / "math_a.png", tmp / "math.png"], [CAT, '- "google style" + "twitter style"'], "math", "math.png")
    return 0


if __name__ == "__main__":
    sys.exit(run())
