"""`serve`: the studio (web page, latentscape job API, AUTOMATIC1111-compatible API) on one model."""

from __future__ import annotations

import argparse
import os
import sys

TOKEN_ENV = "LATENTSCAPE_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="the studio: web page + HTTP API (A1111-compatible /sdapi/v1) with a durable job queue",
        description="Serve one model over HTTP: the studio page at /, the latent workflows as durable jobs under "
                    "/latentscape/v1, and the AUTOMATIC1111 API subset under /sdapi/v1 (the webuiapi client works). "
                    "Jobs live in SQLite under --data and survive a crash: on start, jobs that were running are run again. "
                    "Binds 127.0.0.1 unless --host says otherwise; any other address needs --token.",
    )  # fmt: skip
    p.add_argument("--model", "-m", default="embedded", help="'embedded' (default), a diffusers folder, a .safetensors file, or a hub id")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; a non-loopback address needs --token)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860, as A1111)")
    p.add_argument("--data", default="latentscape-data", metavar="DIR", help="jobs database and outputs (default ./latentscape-data)")
    p.add_argument("--token", default=None, help=f"every request must send 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV})")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another Host name the page may be reached by (e.g. a LAN name); repeatable")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--dtype", default=None, choices=["fp32", "fp16", "bf16"], help="default: fp32 on CPU, half on GPU")
    p.add_argument("--preview-decoder", default=None, metavar="DIR",
                   help="a local TAESD-family folder (taesd, taesdxl, taesd3, taef1) for the live progress previews "
                        "(default: the embedded model's own when one is shipped, else the linear latent->RGB preview)")
    p.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE", help="torch.compile the denoiser (see generate --help)")
    g = p.add_argument_group("limits (per request)")
    g.add_argument("--max-steps", type=int, default=150)
    g.add_argument("--max-frames", type=int, default=240)
    g.add_argument("--max-pixels", type=int, default=1024 * 1024, help="pixels of one rendered image")
    g.add_argument("--max-body-mb", type=float, default=16.0, help="request body size in MB")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from latentscape.errors import LatentscapeError

    token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ModuleNotFoundError:
        raise LatentscapeError("the server needs the 'serve' extra: pip install 'latentscape[serve]' (fastapi, uvicorn, python-multipart).") from None
    from latentscape.interfaces.common import quiet_loading
    from latentscape.server.app import create_app
    from latentscape.server.requests import Limits
    from latentscape.server.security import check_bind

    check_bind(args.host, token)  # before the model loads
    for name in ("max_steps", "max_frames", "max_pixels", "port"):
        if getattr(args, name) < 1:
            raise LatentscapeError(f"{name} got {getattr(args, name)}; expected a whole number of at least 1.")
    limits = Limits(max_steps=args.max_steps, max_frames=args.max_frames, max_pixels=args.max_pixels,
                    max_body_bytes=int(args.max_body_mb * (1 << 20)))
    if not args.verbose:
        quiet_loading()
    app = create_app(args.model, args.data, host=args.host, token=token, limits=limits, extra_hosts=tuple(args.allow_host),
                     load_options={"device": args.device, "dtype": args.dtype, "preview_decoder": args.preview_decoder,
                                   "compile": args.compile or False})
    import gc

    gc.freeze()  # the model's objects live as long as the process: keep them out of every collection (exit takes seconds otherwise)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"latentscape serve: {app.state.studio.model.model_id} on http://{shown}:{args.port}/ (jobs in {args.data})",
          file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    finally:
        app.state.studio.close()
    return 0
