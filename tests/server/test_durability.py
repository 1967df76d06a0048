"""Durable jobs: SIGKILL a live server while a morph runs and jobs wait in the queue, restart it, and every
job finishes exactly once with outputs identical to an uninterrupted run; the store's recovery rules."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import numpy as np
from PIL import Image

from server_helpers import wait_job

MORPH = {"keyframes": ["cat face, google style@1", {"prompt": "fire, twitter style", "seed": 2, "cfg": 5}], "frames": 6,
         "steps": 4, "batch_size": 1, "formats": ["gif", "webp"]}
QUEUED = [("generate", {"prompt": "rocket, google style", "steps": 2, "seed": -1}),  # -1: drawn at enqueue, kept on rerun
          ("vary", {"prompt": "cat face, twitter style", "seed": 4, "n": 2, "steps": 2}),
          ("generate", {"prompt": "grinning face, google style", "steps": 2, "seed": 9, "batch": 2})]


def frames_of(folder) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png")) if not p.name.startswith("sheet")]


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_while_a_morph_runs_and_jobs_are_queued(live_server, embedded, tmp_path):
    live_server.start()
    url = live_server.url + "/latentscape/v1"
    ids = [httpx.post(f"{url}/jobs/morph", json=MORPH).json()["id"]]
    ids += [httpx.post(f"{url}/jobs/{verb}", json=body).json()["id"] for verb, body in QUEUED]
    start = time.monotonic()
    while True:  # kill once the morph is part-way: some frames written, not all
        job = httpx.get(f"{url}/jobs/{ids[0]}").json()
        if job["status"] == "running" and 1 <= job["progress"].get("frame", 0) < 6:
            break
        assert job["status"] in ("queued", "running") and time.monotonic() - start < 120, job
        time.sleep(0.05)
    live_server.kill()
    data = live_server.data
    assert (data / "jobs" / f".partial-{ids[0]}").is_dir()  # the killed morph's half-written folder
    requests = {}
    import sqlite3

    with sqlite3.connect(data / "jobs.sqlite3") as db:
        rows = dict(db.execute("SELECT id, status FROM jobs").fetchall())
        requests = {i: json.loads(r) for i, r in db.execute("SELECT id, request FROM jobs").fetchall()}
    assert rows[ids[0]] == "running" and all(rows[i] == "queued" for i in ids[1:])

    live_server.start()  # recovery: the partial folder is discarded, the morph requeued, the queue kept
    jobs = [wait_jobs(url, i) for i in ids]
    live_server.stop()
    assert [j["status"] for j in jobs] == ["done"] * 4, [j["error"] for j in jobs]
    assert jobs[0]["attempts"] == 2 and all(j["attempts"] == 1 for j in jobs[1:])
    assert sorted(p.name for p in (data / "jobs").iterdir()) == sorted(ids)  # one folder each, no partials left
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 4  # nothing duplicated
        after = {i: json.loads(r) for i, r in db.execute("SELECT id, request FROM jobs").fetchall()}
    assert after == requests  # the stored requests (with the seeds drawn at enqueue) were rerun as they were

    # the same requests on an uninterrupted in-process server give identical outputs
    from fastapi.testclient import TestClient

    from latentscape.server.app import create_app

    app = create_app(model=embedded, data_dir=tmp_path / "reference")
    client = TestClient(app, base_url="http://127.0.0.1:7860")
    try:
        for job, (verb, _) in zip(jobs, [("morph", None)] + QUEUED):
            ref = wait_job(client, client.post(f"/latentscape/v1/jobs/{verb}", json=requests[job["id"]]).json()["id"], timeout=120)
            assert ref["status"] == "done"
            assert [r["name"] for r in ref["results"]] == [r["name"] for r in job["results"]]
            mine, theirs = data / "jobs" / job["id"], tmp_path / "reference" / "jobs" / ref["id"]
            a, b = frames_of(mine), frames_of(theirs)
            assert len(a) == len(b) > 0 and all(np.array_equal(x, y) for x, y in zip(a, b)), verb
            for name in ("morph.gif", "morph.webp"):
                if (mine / name).exists():
                    assert digest(mine / name) == digest(theirs / name)
    finally:
        app.state.studio.close()


def wait_jobs(url: str, job_id: str, timeout: float = 180.0) -> dict:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        job = httpx.get(f"{url}/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_store_recovery_adopts_finished_folders_and_discards_partial_ones(tmp_path):
    from latentscape.server.jobs import JobStore, write_record

    store = JobStore(tmp_path)
    finished, partial, waiting, cancelled = (store.enqueue("generate", {"prompt": str(i)}) for i in range(4))
    for _ in range(4):
        store.claim_next()  # all four running when the "crash" happens
    store._tx("UPDATE jobs SET status = 'queued' WHERE id = ?", (waiting,))
    store.cancel(cancelled)  # asked to stop while running
    folder = store.partial_folder(finished)  # renamed into place, row not yet marked: adopt
    folder.mkdir()
    (folder / "00000-1.png").write_bytes(b"png")
    write_record(folder, {"results": [{"name": "00000-1.png", "kind": "png"}], "recipe": None, "infotext": "x", "cli": "c"})
    folder.rename(store.folder(finished))
    store.partial_folder(partial).mkdir()  # killed mid-write: discard and rerun
    (store.partial_folder(partial) / "frame_00000.png").write_bytes(b"half")
    (store.uploads_dir / ("0" * 29)).mkdir()  # an upload whose job row was never written
    (store.uploads_dir / "point-0123456789abcdef").mkdir()  # a map point's upload left by the crash
    (store.uploads_dir / "photos").mkdir()  # not the server's: a --data folder that already held files
    (store.uploads_dir / "photos" / "keep.png").write_bytes(b"mine")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (store.jobs_dir / f".partial-{'1' * 29}").symlink_to(outside, target_is_directory=True)  # planted link
    store.close()

    store = JobStore(tmp_path)
    done = store.recover()
    assert done == {"adopted": [finished], "requeued": [partial], "discarded": [partial], "cancelled": [cancelled]}
    assert store.get(finished)["status"] == "done" and store.get(finished)["results"][0]["name"] == "00000-1.png"
    assert store.get(partial)["status"] == "queued" and not store.partial_folder(partial).exists()
    assert store.get(waiting)["status"] == "queued" and store.get(cancelled)["status"] == "cancelled"
    assert [p.name for p in store.uploads_dir.iterdir()] == ["photos"]  # only the server's own folders go
    assert (store.uploads_dir / "photos" / "keep.png").read_bytes() == b"mine"
    assert (outside / "keep.txt").read_text() == "mine"  # a link is never followed or deleted
    assert store.finish(finished, {"results": []}) is False  # a result is recorded once: a second finish is refused
    assert store.recover() == {"adopted": [], "requeued": [], "discarded": [], "cancelled": []}  # idempotent
    claimed = [store.claim_next()["id"], store.claim_next()["id"]]
    assert claimed == [partial, waiting] and store.claim_next() is None  # queue order kept
