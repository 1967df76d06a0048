"""The durable job store: one SQLite database (WAL) under the data folder, one row per render request.

A job's life: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``. Its outputs live in
``data/jobs/<id>/``, written by the worker to a hidden temp folder first and renamed into place; the row is
marked ``done`` (with its results and recipe) in one transaction after the rename, only if it is still
``running``, so a result is recorded exactly once. :meth:`JobStore.recover` (run at start) puts jobs left
``running`` by a dead server back in the queue, adopts a finished folder whose row was not yet marked, and
discards partial folders. Pure stdlib: no torch.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
RESULT_FILE = "job.json"  # inside a finished folder: what the row records, so a folder can be adopted
PARTIAL_PREFIX = ".partial-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    verb TEXT NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    results TEXT NOT NULL DEFAULT '[]',
    recipe TEXT,
    infotext TEXT,
    cli TEXT,
    info TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, seq);
"""


def new_job_id() -> str:
    """A server-made job id: time-ordered, 16 hex digits of randomness (never taken from a request)."""
    return f"{int(time.time() * 1000):013x}{secrets.token_hex(8)}"


def valid_job_id(text: str) -> bool:
    return isinstance(text, str) and len(text) == 29 and all(c in "0123456789abcdef" for c in text)


POINT_PREFIX = "point-"  # uploads of a synchronous map point: POINT_PREFIX + 16 hex


def own_folder(path: Path) -> bool:
    """Whether ``path`` is a folder this server made: a real directory (not a link) named like a job id, a
    partial job folder or a point upload. Recovery deletes nothing else, whatever else the data folder holds."""
    name = path.name
    if name.startswith(PARTIAL_PREFIX):
        name = name[len(PARTIAL_PREFIX):]
    elif name.startswith(POINT_PREFIX):
        rest = name[len(POINT_PREFIX):]
        name = rest if len(rest) == 16 and all(c in "0123456789abcdef" for c in rest) else ""
        return bool(name) and path.is_dir() and not path.is_symlink()
    return valid_job_id(name) and path.is_dir() and not path.is_symlink()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JobStore:
    """Job rows in ``data_dir/jobs.sqlite3`` and their output folders in ``data_dir/jobs/``; thread-safe."""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir)
        self.jobs_dir = self.data_dir / "jobs"
        self.uploads_dir = self.data_dir / "uploads"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.data_dir / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed 'done' survives power loss, not only kill -9
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {r["name"] for r in self._db.execute("PRAGMA table_info(jobs)")}
        if "info" not in columns:  # a database made before jobs recorded their workflow's info
            self._db.execute("ALTER TABLE jobs ADD COLUMN info TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- folders -------------------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def partial_folder(self, job_id: str) -> Path:
        return self.jobs_dir / f"{PARTIAL_PREFIX}{job_id}"

    def upload_folder(self, job_id: str) -> Path:
        return self.uploads_dir / job_id

    # -- rows ----------------------------------------------------------------------------------------
    def _tx(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def enqueue(self, verb: str, request: dict[str, Any], job_id: str | None = None) -> str:
        job_id = job_id or new_job_id()
        self._tx("INSERT INTO jobs (id, verb, request, status, created) VALUES (?, ?, ?, 'queued', ?)",
                 (job_id, verb, json.dumps(request, sort_keys=True), time.time()))
        return job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self._tx("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row(row) if row is not None else None

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._tx("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (int(limit),)).fetchall()
        return [_row(r) for r in rows]

    def queued_count(self) -> int:
        return int(self._tx("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0])

    def counts(self) -> dict[str, int]:
        rows = self._tx("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def claim_next(self) -> dict[str, Any] | None:
        """The oldest queued job, now marked ``running`` (attempts + 1), or None."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                self._db.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1, started = ?, "
                                 "progress = '{}' WHERE id = ?", (time.time(), row["id"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.get(row["id"])

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        self._tx("UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running'", (json.dumps(progress), job_id))

    def finish(self, job_id: str, record: dict[str, Any]) -> bool:
        """Mark a running job ``done`` with ``record`` (results, recipe, infotext, cli, info): True the one time it
        happens; False if the row is no longer running (cancelled meanwhile, or already recorded)."""
        cur = self._tx(
            "UPDATE jobs SET status = 'done', results = ?, recipe = ?, infotext = ?, cli = ?, info = ?, error = NULL, "
            "finished = ?, progress = ? WHERE id = ? AND status = 'running'",
            (json.dumps(record.get("results", [])), _dumps(record.get("recipe")), record.get("infotext"),
             record.get("cli"), _dumps(record.get("info")), time.time(), json.dumps(record.get("progress", {})), job_id))
        return cur.rowcount == 1

    def fail(self, job_id: str, error: str) -> bool:
        cur = self._tx("UPDATE jobs SET status = 'failed', error = ?, finished = ? WHERE id = ? AND status = 'running'",
                       (error, time.time(), job_id))
        return cur.rowcount == 1

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued job now, or ask a running one to stop (the worker sees the flag at its next step).
        Returns the status after the call (None: no such job)."""
        with self._lock:
            self._db.execute("UPDATE jobs SET status = 'cancelled', finished = ? WHERE id = ? AND status = 'queued'",
                             (time.time(), job_id))
            self._db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", (job_id,))
            row = self._db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row["status"] if row is not None else None

    def cancel_requested(self, job_id: str) -> bool:
        row = self._tx("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def mark_cancelled(self, job_id: str) -> bool:
        cur = self._tx("UPDATE jobs SET status = 'cancelled', finished = ? WHERE id = ? AND status = 'running'",
                       (time.time(), job_id))
        return cur.rowcount == 1

    # -- start-up ------------------------------------------------------------------------------------
    def recover(self) -> dict[str, list[str]]:
        """After a crash: adopt finished folders whose row is not ``done``, drop partial folders, requeue
        jobs left ``running`` (cancel those whose cancel was asked), drop uploads of jobs with no row.
        Returns what it did, by kind, for the log."""
        done: dict[str, list[str]] = {"adopted": [], "requeued": [], "discarded": [], "cancelled": []}
        for path in sorted(self.jobs_dir.iterdir()):
            if not own_folder(path):
                continue
            if path.name.startswith(PARTIAL_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
                done["discarded"].append(path.name[len(PARTIAL_PREFIX):])
                continue
            job = self.get(path.name)
            if job is None or job["status"] == "done":
                continue
            record = _read_record(path)
            if record is None:  # a folder without its record was never renamed into place by us
                shutil.rmtree(path, ignore_errors=True)
                continue
            self._tx("UPDATE jobs SET status = 'running' WHERE id = ?", (job["id"],))
            if self.finish(job["id"], record):
                done["adopted"].append(job["id"])
        for job in [j for j in self.list(limit=1 << 30) if j["status"] == "running"]:
            if self.cancel_requested(job["id"]):
                self.mark_cancelled(job["id"])
                done["cancelled"].append(job["id"])
            else:
                self._tx("UPDATE jobs SET status = 'queued', progress = '{}' WHERE id = ? AND status = 'running'", (job["id"],))
                done["requeued"].append(job["id"])
        for path in self.uploads_dir.iterdir():
            if own_folder(path) and self.get(path.name) is None:
                shutil.rmtree(path, ignore_errors=True)
        return done


def write_record(folder: Path, record: dict[str, Any]) -> None:
    """The row's future contents, inside the (temp) output folder, fsynced, so a folder can be adopted."""
    path = folder / RESULT_FILE
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _row(row: sqlite3.Row) -> dict[str, Any]:
    job = dict(row)
    job["request"] = json.loads(job["request"])
    job["progress"] = json.loads(job["progress"] or "{}")
    job["results"] = json.loads(job["results"] or "[]")
    job["recipe"] = json.loads(job["recipe"]) if job["recipe"] else None
    job["info"] = json.loads(job["info"]) if job.get("info") else None
    job["cancel_requested"] = bool(job["cancel_requested"])
    return job
