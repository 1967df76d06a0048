"""``POST /latentscape/v1/point`` (and ``/point/pin``): the image under the map explorer's point, now.

A point between 2-4 corner keyframes is the ``blend`` workflow (the CLI's ``latentscape blend``) with the
point's weights: 2 corners ``(1-u, u)``; 3 corners barycentric ``(1-u-v, u, v)``; 4 corners (TL, TR, BL, BR)
bilinear ``((1-u)(1-v), u(1-v), (1-u)v, uv)``. A corner's own weight is one-hot, so the point on a corner is
that corner's ``generate`` image. It runs on the worker thread ahead of the queue (between the steps of a
running job), not as a stored job: a drag makes many throwaway renders. The response carries the recipe's
infotext, seed and (when a command line can express it) the ``latentscape blend`` command in headers;
``/point/pin`` returns a keyframe (the rendered image, the nearest corner's prompt and the interpolated CFG)
that the morph studio can use.
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
import shutil
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from latentscape.errors import LatentscapeError
from latentscape.server.api import read_json
from latentscape.server.execute import cli_command
from latentscape.server.jobs import POINT_PREFIX

POINT_FIELDS = ("corners", "u", "v", "steps", "cfg", "sampler", "negative", "seed", "width", "height", "strength", "true_cfg",
                "guidance_rescale")


def point_weights(n: int, u: float, v: float) -> list[float]:
    """The blend weights of point (u, v) between ``n`` corners (see the module docstring)."""
    if n == 2:
        return [1 - u, u]
    if n == 3:
        if u + v > 1 + 1e-9:
            raise LatentscapeError(f"u + v is {u + v:g}; with 3 corners the point must lie in the triangle (u + v <= 1).")
        return [max(0.0, 1 - u - v), u, v]
    return [(1 - u) * (1 - v), u * (1 - v), (1 - u) * v, u * v]


def blend_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise LatentscapeError("the point request body must be a JSON object with corners, u and v.")
    unknown = sorted(set(body) - set(POINT_FIELDS))
    if unknown:
        raise LatentscapeError(f"the point request has unknown fields ({', '.join(unknown)}); accepted: {', '.join(POINT_FIELDS)}.")
    corners = body.get("corners")
    if not isinstance(corners, list) or not 2 <= len(corners) <= 4:
        raise LatentscapeError("corners must be a list of 2 to 4 keyframes (prompts, PROMPT@SEED, or objects with prompt/seed/image/cfg).")
    coords = []
    for name in ("u", "v"):
        value = body.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise LatentscapeError(f"{name} got {value!r}; expected a number from 0 to 1.")
        coords.append(float(value))
    out = {k: v for k, v in body.items() if k not in ("corners", "u", "v")}
    out["inputs"] = corners
    out["weights"] = point_weights(len(corners), *coords)
    return out


def router(state) -> APIRouter:
    r = APIRouter(prefix="/latentscape/v1")

    async def render_point(request: Request):
        from latentscape.server.requests import build, prepare

        body = blend_body(await read_json(request))
        folder = state.store.uploads_dir / f"{POINT_PREFIX}{secrets.token_hex(8)}"
        try:
            stored = await asyncio.to_thread(prepare, "blend", body, state.model, folder, state.limits)

            def run(model):
                from latentscape.workflows.blend import blend

                return blend(model, build("blend", stored, model, folder, state.limits))

            out = await asyncio.wrap_future(state.worker.submit_urgent(run))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return stored, out

    @r.post("/point")
    async def point(request: Request):
        _, out = await render_point(request)
        recipe = out.recipes[0]
        headers = {"X-Latentscape-Infotext": header_text(recipe.infotext()), "X-Latentscape-Seed": str(recipe.seed),
                   "Cache-Control": "no-store"}
        command = point_cli(recipe.params)
        if command is not None:
            headers["X-Latentscape-Cli"] = header_text(command)
        return Response(png_bytes(out.images[0], recipe), media_type="image/png", headers=headers)

    @r.post("/point/pin")
    async def pin(request: Request):
        stored, out = await render_point(request)
        recipe = out.recipes[0]
        weights = stored["weights"]
        nearest = stored["inputs"][max(range(len(weights)), key=lambda i: weights[i])]
        buf = io.BytesIO()
        out.images[0].save(buf, format="PNG")
        keyframe = {"image": base64.b64encode(buf.getvalue()).decode(), "cfg": round(float(out.info["cfg"]), 6)}
        if isinstance(nearest, dict) and nearest.get("prompt"):
            keyframe["prompt"] = nearest["prompt"]
        return {"keyframe": keyframe, "weights": weights, "seed": recipe.seed, "infotext": recipe.infotext(),
                "recipe": _recipe_dict(recipe)}

    return r


def point_cli(params: dict[str, Any]) -> str | None:
    """The ``latentscape blend ... --weights ...`` command that renders this point, or None when a corner has
    its own CFG (a blend command line has no per-input CFG, so no command would make the same image)."""
    if any(isinstance(k, dict) and k.get("cfg") is not None for k in params.get("inputs", ())):
        return None
    return cli_command("blend", dict(params))


def header_text(text: str) -> str:
    """``text`` as an ASCII header value: non-ASCII backslash-escaped, newlines as the two characters ``\\n``."""
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\n", "\\n")


def png_bytes(image, recipe) -> bytes:
    """``image`` as PNG bytes with the same two chunks :func:`latentscape.io.recipe.save_png` writes."""
    from PIL import PngImagePlugin

    from latentscape.io.recipe import A1111_CHUNK, RECIPE_CHUNK

    info = PngImagePlugin.PngInfo()
    info.add_text(A1111_CHUNK, recipe.infotext())
    info.add_itxt(RECIPE_CHUNK, recipe.to_json())
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _recipe_dict(recipe) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(recipe)
