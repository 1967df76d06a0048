"""The one worker thread of a server process: it owns the model and runs one job at a time, so the API
thread stays responsive. Synchronous map-point renders (``POST /latentscape/v1/point``) jump the queue:
the worker serves them between jobs and between the sampling steps of a running job.

A job's outputs go to ``data/jobs/.partial-<id>/``; when the workflow returns, every file and the record
(``job.json``) are fsynced, the folder is renamed to ``data/jobs/<id>/`` and the parent folder fsynced,
then one transaction marks the row done. A crash before the rename leaves a partial folder (discarded at
start); after it, a folder the next start adopts. Either way the job's result is recorded exactly once.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import shutil
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from latentscape.errors import LatentscapeError
from latentscape.server.jobs import JobStore, fsync_dir, write_record
from latentscape.server.requests import Limits

PREVIEW_INTERVAL = 0.2  # seconds between two live previews of a running job

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """The running job was cancelled (``/cancel``, A1111 ``/interrupt``)."""


class Worker:
    def __init__(self, store: JobStore, model, limits: Limits, *, poll_s: float = 0.05):
        self.store, self.model, self.limits, self.poll_s = store, model, limits, poll_s
        self.live: dict[str, Any] = {}  # the running job: id, progress, preview PNG bytes, started
        # the last ended job's final preview, kept until the next job starts: a page that saw "preview": true
        # while the job ran may ask for it just after the job ends, and gets the image, not a 404
        self.last_preview: tuple[str, bytes] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._urgent: "queue.Queue[tuple[Callable, Future]]" = queue.Queue()
        self._skip = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="latentscape-worker", daemon=True)
        self.done_count = 0
        self.ended: dict[str, float] = {}  # job id -> when the worker let go of it (waiters poll this, not the database)

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    # -- what the API asks ---------------------------------------------------------------------------
    def submit_urgent(self, fn: Callable[[Any], Any]) -> Future:
        """Run ``fn(model)`` on the worker thread ahead of every queued job (and between steps of a running
        one); the future holds its result."""
        future: Future = Future()
        self._urgent.put((fn, future))
        self._wake.set()
        return future

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.live)

    def preview(self, job_id: str) -> bytes | None:
        """The latest live preview PNG of ``job_id`` (running, or the last job that ended), or None."""
        with self._lock:
            if self.live.get("id") == job_id:
                return self.live.get("preview")
            if self.last_preview is not None and self.last_preview[0] == job_id:
                return self.last_preview[1]
        return None

    def interrupt(self) -> str | None:
        """Cancel the running job (A1111 ``/interrupt``); returns its id."""
        job_id = self.snapshot().get("id")
        if job_id:
            self.store.cancel(job_id)
        return job_id

    def skip(self) -> str | None:
        """A1111 ``/skip``: stop the running job; its image so far is not kept (one job = one batch here)."""
        return self.interrupt()

    # -- the loop ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._serve_urgent()
            job = self.store.claim_next()
            if job is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self._run(job)

    def _serve_urgent(self) -> None:
        while True:
            try:
                fn, future = self._urgent.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(self.model))
            except BaseException as exc:  # handed to the waiting request
                future.set_exception(exc)

    def _run(self, job: dict[str, Any]) -> None:
        from latentscape.sampling import Cancelled
        from latentscape.server.execute import execute

        job_id = job["id"]
        partial = self.store.partial_folder(job_id)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with self._lock:
            self.last_preview = None
            self.live = {"id": job_id, "verb": job["verb"], "progress": {"step": 0, "total": 0, "frame": 0, "frames": 0},
                         "preview": None, "started": time.time()}
        try:
            record = execute(job["verb"], job["request"], self.model, uploads=self.store.upload_folder(job_id),
                             folder=partial, limits=self.limits, callback=self._step_callback(job_id),
                             frames=self._frame_callback(job_id))
            record["progress"] = self.snapshot().get("progress", {})
            self._commit(job_id, partial, record)
        except (Cancelled, Interrupted):
            shutil.rmtree(partial, ignore_errors=True)
            self.store.mark_cancelled(job_id)
        except LatentscapeError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            self.store.fail(job_id, str(exc))
        except Exception as exc:  # a bug or a resource problem: the job fails with a sentence, the server lives
            log.exception("job %s failed", job_id)
            shutil.rmtree(partial, ignore_errors=True)
            self.store.fail(job_id, f"the job failed with an internal error ({type(exc).__name__}: {str(exc)[:200]}).")
        finally:
            with self._lock:
                preview = self.live.get("preview") if self.live.get("id") == job_id else None
                self.last_preview = (job_id, preview) if preview else None
                self.live = {}
                self.ended[job_id] = time.monotonic()
                if len(self.ended) > 10_000:  # keep the most recent
                    for key in list(self.ended)[:5_000]:
                        del self.ended[key]

    def _commit(self, job_id: str, partial: Path, record: dict[str, Any]) -> None:
        for path in partial.iterdir():
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        write_record(partial, record)
        fsync_dir(partial)
        final = self.store.folder(job_id)
        if final.exists():  # a previous attempt's folder that was never recorded: this attempt replaces it
            shutil.rmtree(final)
        os.replace(partial, final)
        fsync_dir(final.parent)
        if self.store.finish(job_id, record):
            self.done_count += 1

    def _step_callback(self, job_id: str):
        last_check, last_preview = [0.0], [-PREVIEW_INTERVAL]

        def callback(state) -> bool:
            progress = dict(self.live.get("progress", {}))
            progress.update(step=int(state.step) + 1, total=int(state.total))
            preview = None  # at most one preview per interval (and the last step's): a fast GPU is not held up
            if time.monotonic() - last_preview[0] >= PREVIEW_INTERVAL or state.step + 1 >= state.total:
                preview, last_preview[0] = _preview_png(self.model, state), time.monotonic()
            with self._lock:
                if self.live.get("id") == job_id:
                    self.live["progress"] = progress
                    if preview is not None:
                        self.live["preview"] = preview
            self._serve_urgent()
            now = time.monotonic()
            if now - last_check[0] > 0.1:
                last_check[0] = now
                if self.store.cancel_requested(job_id):
                    return False
            return True

        return callback

    def _frame_callback(self, job_id: str):
        def progress(stage: str, done: int, total: int) -> None:
            with self._lock:
                if self.live.get("id") == job_id:
                    self.live["progress"] = {**self.live.get("progress", {}), "frame": int(done), "frames": int(total), "stage": stage}
            if self.store.cancel_requested(job_id):
                raise Interrupted

        return progress


def _preview_png(model, state) -> bytes | None:
    """The first item's current x0 prediction as a PNG of the image's size: through the model's tiny preview
    decoder when it has one (:mod:`latentscape.models.preview`), else the latent format's linear RGB preview
    (no VAE), enlarged."""
    from PIL import Image

    latents = state.denoised if state.denoised is not None else state.latents
    try:
        if getattr(model, "preview_decoder", None) is not None:
            rgb = model.preview(latents[:1])[0].permute(1, 2, 0).cpu().numpy()
        else:
            rgb = model.latent_format.preview(latents[:1].float())[0].permute(1, 2, 0).cpu().numpy()
    except Exception:  # a family without RGB preview factors: no live preview
        return None
    image = Image.fromarray((rgb.clip(0, 1) * 255).round().astype("uint8"))
    width, height = latents.shape[-1] * model.latent_format.downscale, latents.shape[-2] * model.latent_format.downscale
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
