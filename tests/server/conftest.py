"""Fixtures for the studio server: an in-process app on the embedded model (loaded once per session) with a
fresh data folder per test, and a live ``latentscape serve`` subprocess on a free loopback port."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from server_helpers import LiveServer, free_port  # noqa: E402

BASE = "http://127.0.0.1:7860"


@pytest.fixture
def studio(embedded, tmp_path):
    """(client, state) for an app on the shared embedded model, jobs under ``tmp_path/data``."""
    from fastapi.testclient import TestClient

    from latentscape.server.app import create_app

    app = create_app(model=embedded, data_dir=tmp_path / "data")
    client = TestClient(app, base_url=BASE)
    yield client, app.state.studio
    app.state.studio.close()


@pytest.fixture
def live_server(tmp_path):
    from latentscape.models.load import EMBEDDED_DIR

    if not (EMBEDDED_DIR / "model_index.json").is_file():
        pytest.skip("the embedded model is not exported")
    server = LiveServer(tmp_path / "data", free_port())
    yield server
    server.stop()
