"""Helpers of the studio server tests (imported by name, like tests/tiny_models.py; fixtures live in conftest.py)."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


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


def nothing_written(state) -> None:
    assert state.store.list() == []
    assert list(state.store.uploads_dir.iterdir()) == []
    assert [p for p in state.store.jobs_dir.iterdir()] == []


def one_sentence(response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert isinstance(message, str) and message.endswith(".") and "\n" not in message and "Traceback" not in message
    return message
