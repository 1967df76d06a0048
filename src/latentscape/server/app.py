"""The studio server: one FastAPI app per process and model, a durable job store, one worker thread.

``create_app(model_id, data_dir)`` loads the model, recovers the job store (jobs a dead server left
running are queued again, see :mod:`latentscape.server.jobs`), starts the worker and returns the app:
``GET /health``, the page (``/`` and ``/static``), ``/latentscape/v1`` (:mod:`.api`) and the
AUTOMATIC1111-compatible ``/sdapi/v1`` subset (:mod:`.a1111`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from latentscape import __version__
from latentscape.errors import LatentscapeError
from latentscape.server.jobs import JobStore
from latentscape.server.requests import Limits
from latentscape.server.security import Access, SecurityMiddleware, check_bind
from latentscape.server.worker import Worker

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


@dataclass
class ServerState:
    model: Any
    store: JobStore
    worker: Worker
    limits: Limits
    options: dict[str, Any]

    def close(self) -> None:
        self.worker.stop()
        self.store.close()


def create_app(model_id: str | None = "embedded", data_dir: str | Path = "latentscape-data", *, host: str = "127.0.0.1",
               token: str | None = None, limits: Limits | None = None, model: Any = None,
               extra_hosts: tuple[str, ...] = (), load_options: dict[str, Any] | None = None) -> FastAPI:
    """The app for ``model_id`` (or an already loaded ``model``) with its jobs under ``data_dir``."""
    check_bind(host, token)
    limits = limits or Limits()
    if model is None:
        from latentscape.models.load import load

        model = load(model_id, **(load_options or {}))
    store = JobStore(data_dir)
    recovered = store.recover()
    if any(recovered.values()):
        log.warning("recovered jobs after a restart: %s", {k: len(v) for k, v in recovered.items()})
    worker = Worker(store, model, limits)
    state = ServerState(model=model, store=store, worker=worker, limits=limits,
                        options={"sd_model_checkpoint": model.model_id})

    app = FastAPI(title="latentscape studio", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.studio = state
    app.add_middleware(SecurityMiddleware, access=Access(bind_host=host, token=token, max_body_bytes=limits.max_body_bytes,
                                                         extra_hosts=extra_hosts))
    _errors(app)

    @app.get("/health")
    def health():
        return {"status": "ok", "model": model.model_id, "family": model.name, "size": list(model.default_size()),
                "version": __version__, "queue": store.queued_count()}

    @app.get("/")
    def index():
        page = STATIC / "index.html"
        if not page.is_file():
            return JSONResponse({"error": "the studio page is not installed (src/latentscape/server/static/index.html is missing)."},
                                status_code=404)
        return FileResponse(page, media_type="text/html")

    @app.get("/static/{name:path}")
    def static(name: str):
        root = STATIC.resolve()
        path = (root / name).resolve()
        if not name or root not in path.parents or not path.is_file():  # nothing outside the static folder
            return JSONResponse({"error": f"no static file '{name[:80]}'."}, status_code=404)
        return FileResponse(path)

    from latentscape.server import a1111, api, point

    app.include_router(api.router(state))
    app.include_router(point.router(state))
    app.include_router(a1111.router(state))
    worker.start()
    return app


def _errors(app: FastAPI) -> None:
    from latentscape.server.api import _NotFound

    @app.exception_handler(LatentscapeError)
    async def user_error(request: Request, exc: LatentscapeError):
        return JSONResponse({"error": str(exc)}, status_code=422 if "limit" not in str(exc) else 413)

    @app.exception_handler(_NotFound)
    async def not_found(request: Request, exc: _NotFound):
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        text = exc.detail if isinstance(exc.detail, str) else "the request was refused."
        if exc.status_code == 404:
            text = f"no route {request.method} {request.url.path[:80]}."
        elif exc.status_code == 405:
            text = f"{request.url.path[:80]} does not take {request.method}."
        return JSONResponse({"error": text}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"error": f"{where or 'the request'}: {first.get('msg', 'is not valid')}."}, status_code=422)
