"""The studio's explore job around an uploaded image: inverted by default (the centre cell is the image's VAE
round trip); an unknown image mode fails the job with one sentence and no results."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from server_helpers import one_sentence, png_b64, wait_job


def test_explore_an_uploaded_image(studio, embedded, tmp_path, monkeypatch):
    from latentscape.io.images import pil_to_tensor
    from latentscape.workflows.common import decode_images

    monkeypatch.setenv("LATENTSCAPE_INVERSION_CACHE", str(tmp_path / "cache"))
    client, _ = studio
    rng = np.random.default_rng(77)
    source = Image.fromarray((np.array((240, 190, 40)) * 0.8 + rng.random((64, 64, 3)) * 50).clip(0, 255).astype(np.uint8))
    body = {"point": {"image": png_b64(source)}, "grid": "3x1", "steps": 3, "seed": 1, "returns": "cells"}
    job = wait_job(client, client.post("/latentscape/v1/jobs/explore", json=body).json()["id"])
    assert job["status"] == "done", job["error"]
    cells = [np.asarray(Image.open(io.BytesIO(client.get(r["url"]).content)).convert("RGB"), dtype=np.int16)
             for r in job["results"] if r["name"].startswith("cell-")]  # the results: sheet.png, then cell-NNN.png
    trip = np.asarray(decode_images(embedded, embedded.encode_images(pil_to_tensor([source])))[0], dtype=np.int16)
    assert np.abs(cells[1] - trip).max() <= 1  # the studio runs the embedded model
    assert len(cells) == 3 and np.abs(cells[0] - cells[1]).max() > 1
    # an unknown mode is refused when the request comes in (one sentence, no job), not by a failing job later
    message = one_sentence(client.post("/latentscape/v1/jobs/explore", json={**body, "image_mode": "img2img"}), 422)
    assert "image_mode got 'img2img'; accepted: invert" in message
