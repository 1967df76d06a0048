"""The synthetic emoji array file the training tests train on (no npm, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentscape.train import data


def write_toy_dataset(path: Path) -> Path:
    """16 images of coloured squares on white, two styles, with captions and a held-out split."""
    rng = np.random.default_rng(0)
    items, images = [], []
    for i in range(8):
        for style in ("google", "twitter"):
            im = np.full((64, 64, 3), 255, np.uint8)
            x, y = rng.integers(0, 32, 2)
            im[y : y + 24, x : x + 24] = rng.integers(0, 255, 3)
            images.append(im)
            items.append(data.Entry(f"{i}.png", f"shape {i}", None, style, "Objects"))
    heldout = data.split_heldout([e.name for e in items], 0.25, seed=0)
    return data.write(path, np.stack(images), items, heldout)
