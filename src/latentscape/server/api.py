"""``/latentscape/v1``: the latent workflows as durable jobs (JSON in, job id out, results downloadable)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from latentscape.errors import LatentscapeError
from latentscape.server.jobs import valid_job_id
from latentscape.server.requests import JOB_VERBS, prepare

FILE_TYPES = {"png": "image/png", "gif": "image/gif", "mp4": "video/mp4", "webp": "image/webp", "json": "application/json",
              "html": "text/html", "safetensors": "application/octet-stream", "npz": "application/octet-stream"}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_json(request: Request) -> Any:
    """The JSON body; or, for a ``multipart/form-data`` upload, its ``json`` field with every string
    ``"file:NAME"`` in it replaced by the file part ``NAME`` (then checked like a base64 image)."""
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return await _read_multipart(request)
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise LatentscapeError("the request body is not valid JSON.") from None


async def _read_multipart(request: Request) -> Any:
    import base64

    from starlette.datastructures import UploadFile

    form = await request.form(max_files=64, max_fields=64)
    text = form.get("json")
    if not isinstance(text, str):
        raise LatentscapeError("a multipart request needs a 'json' field holding the job's fields; files go in other parts.")
    try:
        body = json.loads(text)
    except ValueError:
        raise LatentscapeError("the multipart 'json' field is not valid JSON.") from None
    files = {name: base64.b64encode(await part.read()).decode() for name, part in form.multi_items() if isinstance(part, UploadFile)}

    def swap(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("file:"):
            name = value[len("file:"):]
            if name not in files:
                raise LatentscapeError(f"'{value[:60]}' names no file part of this request; parts: {', '.join(sorted(files)) or 'none'}.")
            return files[name]
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    return swap(body)


def job_view(job: dict[str, Any], live: dict[str, Any], preview: bool = False) -> dict[str, Any]:
    """A job row as the API shows it (the live progress for the running job; ``preview``: whether
    ``GET jobs/{id}/preview`` has an image for it now)."""
    base = f"/latentscape/v1/jobs/{job['id']}/files/"
    progress = {"step": 0, "total": 0, "frame": 0, "frames": 0, **(job.get("progress") or {})}
    if live.get("id") == job["id"]:
        progress.update(live.get("progress", {}))
    return {
        "id": job["id"], "verb": job["verb"], "status": job["status"], "progress": progress,
        "created": job["created"], "started": job["started"], "finished": job["finished"], "attempts": job["attempts"],
        "results": [{**r, "url": base + r["name"]} for r in job["results"]] if job["status"] == "done" else [],
        "recipe": job["recipe"], "infotext": job["infotext"], "cli": job["cli"], "error": job["error"],
        "info": job.get("info"), "preview": preview,
    }


def enqueue(state, verb: str, body: Any) -> str:
    """Check ``body`` for ``verb`` (uploads stored, seeds drawn) and queue it; returns the job id."""
    from latentscape.server.jobs import new_job_id

    job_id = new_job_id()
    request = prepare(verb, body, state.model, state.store.upload_folder(job_id), state.limits)
    state.store.enqueue(verb, request, job_id)
    state.worker.wake()
    return job_id


async def wait_done(state, job_id: str, timeout: float | None = None) -> dict[str, Any]:
    """The job's row once it has finished (or after ``timeout`` s): the worker's in-memory note is polled,
    the database read only when it says so (and once a second, for a job cancelled while queued)."""
    start = last_read = time.monotonic()
    while True:
        now = time.monotonic()
        if job_id in state.worker.ended or now - last_read > 1.0 or (timeout is not None and now - start > timeout):
            last_read = now
            job = state.store.get(job_id)
            if job["status"] in ("done", "failed", "cancelled") or (timeout is not None and now - start > timeout):
                return job
        await asyncio.sleep(0.01)


def router(state) -> APIRouter:
    r = APIRouter(prefix="/latentscape/v1")

    @r.get("/info")
    def info():
        from latentscape.samplers import sampler_names

        return {"model": state.model.model_id, "family": state.model.name, "size": list(state.model.default_size()),
                "samplers": sampler_names(state.model.is_flow), "default_steps": 25,
                "default_cfg": state.model.default_guidance(), "verbs": list(JOB_VERBS),
                "limits": state.limits.to_dict(), "video_formats": list(_formats())}

    @r.post("/jobs/{verb}", status_code=202)
    async def create_job(verb: str, request: Request):
        if verb not in JOB_VERBS:
            return error(404, f"unknown job verb '{verb[:40]}'; accepted: {', '.join(JOB_VERBS)}.")
        body = await read_json(request)
        job_id = await asyncio.to_thread(enqueue, state, verb, body)
        return JSONResponse({"id": job_id, "status": "queued"}, status_code=202)

    @r.get("/jobs")
    def list_jobs(limit: int = 50):
        live = state.worker.snapshot()
        return {"jobs": [job_view(j, live, state.worker.preview(j["id"]) is not None)
                         for j in state.store.list(max(1, min(int(limit), 500)))]}

    def get_job(job_id: str) -> dict[str, Any]:
        job = state.store.get(job_id) if valid_job_id(job_id) else None
        if job is None:
            raise _NotFound(f"no job '{job_id[:40]}' on this server.")
        return job

    @r.get("/jobs/{job_id}")
    def job(job_id: str):
        job = get_job(job_id)
        return job_view(job, state.worker.snapshot(), state.worker.preview(job_id) is not None)

    @r.get("/jobs/{job_id}/files/{name}")
    def job_file(job_id: str, name: str):
        job = get_job(job_id)
        names = {x["name"]: x["kind"] for x in job["results"]} if job["status"] == "done" else {}
        if name not in names:  # only a name the job recorded: never a path the request makes up
            raise _NotFound(f"job '{job_id}' has no result named '{name[:60]}'.")
        return FileResponse(state.store.folder(job_id) / name, media_type=FILE_TYPES.get(names[name], "application/octet-stream"))

    @r.get("/jobs/{job_id}/preview")
    def job_preview(job_id: str):
        get_job(job_id)
        preview = state.worker.preview(job_id)
        if preview is None:
            raise _NotFound(f"job '{job_id}' has no live preview now (no step has finished yet, or another job started since).")
        return Response(preview, media_type="image/png", headers={"Cache-Control": "no-store"})

    @r.post("/jobs/{job_id}/cancel")
    def cancel(job_id: str):
        get_job(job_id)
        status = state.store.cancel(job_id)
        return {"id": job_id, "status": status}

    return r


def _formats():
    from latentscape.server.requests import available_formats

    return available_formats()


class _NotFound(LookupError):
    """A job or file that is not here: 404 with the sentence."""
