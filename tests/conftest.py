"""Shared fixtures: tiny random models of every family, built on first request, once per session.

Each model fixture yields the folder of a complete diffusers pipeline (see ``tiny_models.py`` for sizes).
Everything runs offline: the hub is switched off before anything imports ``huggingface_hub``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads its constants

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from tiny_models import make_flux, make_sd, make_sd3, make_sdxl  # noqa: E402
from tiny_single_file import make_sd_single_file  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a shared CPU the threads contend.

    Measured on the 2-core CI box: one tiny CLIP forward 1.8 ms with 1 thread, 30-90 ms with 2.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SD1-like: PNDM, epsilon prediction, one CLIP-L."""
    return make_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="session")
def tiny_sd_v(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SD2-like: DDIM, v-prediction, linear attention projections."""
    return make_sd(tmp_path_factory.mktemp("tiny_sd_v"), prediction_type="v_prediction")


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sdxl(tmp_path_factory.mktemp("tiny_sdxl"))


@pytest.fixture(scope="session")
def tiny_sd3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sd3(tmp_path_factory.mktemp("tiny_sd3"))


@pytest.fixture(scope="session")
def tiny_sd3_no_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SD3 saved without its T5: ``model_index.json`` has null ``text_encoder_3``/``tokenizer_3``, so
    diffusers' ``from_pretrained`` needs ``text_encoder_3=None, tokenizer_3=None`` to load it."""
    return make_sd3(tmp_path_factory.mktemp("tiny_sd3_no_t5"), with_t5=False)


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FLUX.1-dev-like: guidance embedding, dynamic shifting."""
    return make_flux(tmp_path_factory.mktemp("tiny_flux"))


@pytest.fixture(scope="session")
def tiny_flux_schnell(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FLUX.1-schnell-like: no guidance embedding, fixed shift 1."""
    return make_flux(tmp_path_factory.mktemp("tiny_flux_schnell"), guidance_embeds=False)


@pytest.fixture(scope="session")
def tiny_sd_single_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(checkpoint, config_folder)``: the tiny SD1 model (same weights as ``tiny_sd``) as one LDM file."""
    return make_sd_single_file(tmp_path_factory.mktemp("tiny_sd_single_file"))


@pytest.fixture(scope="session")
def embedded():
    """The shipped embedded model, loaded once (fp32, CPU)."""
    from latentscape.models.load import EMBEDDED_DIR, load

    if not (EMBEDDED_DIR / "model_index.json").is_file():
        pytest.skip("the embedded model has not been exported into src/latentscape/models/embedded yet")
    return load("embedded", device="cpu")
