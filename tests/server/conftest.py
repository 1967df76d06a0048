"""Fixtures for the studio server: an in-process app on the embedded model (loaded once per session) with a
fresh data folder per test, and a live ``latentscape serve`` subprocess on a free loopback port."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

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


def wait_job(client, job_id: str, timeout: float = 60.0, until=("done", "failed", "cancelled")) -> dict:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        job = client.get(f"/latentscape/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def png_b64(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``latentscape serve`` in a subprocess; :meth:`kill` sends SIGKILL, :meth:`start` (re)starts it."""

    def __init__(self, data: Path, port: int):
        self.data, self.port, self.proc = data, port, None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 90.0) -> "LiveServer":
        import httpx

        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.log = open(self.data.parent / f"serve-{self.port}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "latentscape.interfaces.cli", "serve", "--port", str(self.port),
                                      "--data", str(self.data), "--threads", "1"], stdout=self.log, stderr=self.log, env=env)
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"latentscape serve exited with {self.proc.returncode}: "
                                     f"{(self.data.parent / f'serve-{self.port}.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("latentscape serve did not answer /health in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no clean-up of any kind
            self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the server exits at once; the interpreter's own teardown can take seconds
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture
def live_server(tmp_path):
    from latentscape.models.load import EMBEDDED_DIR

    if not (EMBEDDED_DIR / "model_index.json").is_file():
        pytest.skip("the embedded model is not exported")
    server = LiveServer(tmp_path / "data", free_port())
    yield server
    server.stop()
