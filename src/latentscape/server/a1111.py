"""``/sdapi/v1``: the AUTOMATIC1111 API subset that the PyPI ``webuiapi`` client and A1111 scripts use.

txt2img/img2img become ordinary ``generate`` jobs (durable, in the same queue; the call waits for its job):
A1111's fields map to :class:`~latentscape.workflows.generate.GenerateConfig`'s, unknown fields are accepted
and ignored (the response's info lists the ones that change an A1111 render and are not honoured), sampler and
scheduler names go through :func:`latentscape.samplers.from_a1111` (``Euler a``; ``DPM++ 2M`` + ``Karras`` or
``automatic``, read as A1111 >= 1.9 reads them). ``batch_size`` x ``n_iter`` images use seeds s, s+1, ...

Sizes: a request whose side is more than 2x off the model's own size (``512x512``, webuiapi's default, on the
64x64 embedded model) is rendered at the model's size, and the info's ``size_note`` says so; sizes within 2x
are rendered as asked (they must be multiples of the model's factor).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from latentscape.errors import LatentscapeError
from latentscape.limits import UNTRAINED_SIDE_RATIO
from latentscape.server.api import enqueue, read_json, wait_done

# A1111 fields that change its render and that this server does not do (named in the response's info)
NOT_HONOURED = {"enable_hr": "hires fix", "restore_faces": "face restoration", "tiling": "tiling",
                "subseed_strength": "variation seed", "refiner_checkpoint": "refiner", "mask": "inpainting mask",
                "styles": "styles", "alwayson_scripts": "extension scripts", "script_name": "scripts"}


def _truthy(value: Any) -> bool:
    return bool(value) and value not in ("", "None", [], {}, 0, 0.0)


def a1111_size(model, width: Any, height: Any) -> tuple[int | None, int | None, str | None]:
    """(width, height, note): the request's size, or the model's own (with a note) when far from it."""
    if width in (None, 0, -1) or height in (None, 0, -1):
        return None, None, None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height)):
        raise LatentscapeError(f"width and height must be whole numbers; got {width!r} x {height!r}.")
    tw, th = model.default_size()
    far = any(r > UNTRAINED_SIDE_RATIO or r < 1 / UNTRAINED_SIDE_RATIO for r in (width / tw, height / th))
    if far:
        return None, None, (f"{width}x{height} is far from the {tw}x{th} model '{model.model_id}' was made for, so it was "
                            f"rendered at {tw}x{th}; ask for a size within {UNTRAINED_SIDE_RATIO:g}x of it to get that size.")
    return width, height, None


def generate_body(model, body: dict[str, Any], img2img: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """An A1111 txt2img/img2img payload -> a ``generate`` job body and notes for the response's info."""
    from latentscape.samplers import from_a1111

    if not isinstance(body, dict):
        raise LatentscapeError("the request body must be a JSON object of A1111 txt2img/img2img fields.")
    notes: dict[str, Any] = {}
    ignored = [what for key, what in NOT_HONOURED.items() if _truthy(body.get(key))]
    if body.get("script_name") in (None, "", "None") and "scripts" in ignored:
        ignored.remove("scripts")
    if img2img and body.get("mask") is None and "inpainting mask" in ignored:
        ignored.remove("inpainting mask")
    if ignored:
        notes["not_honoured"] = ignored
    sampler = body.get("sampler_name") or body.get("sampler_index") or "Euler"
    scheduler = body.get("scheduler")
    name = from_a1111(str(sampler), None if scheduler in (None, "") else str(scheduler))
    batch = _int(body.get("batch_size", 1), "batch_size") * _int(body.get("n_iter", 1), "n_iter")
    width, height, note = a1111_size(model, body.get("width"), body.get("height"))
    if note:
        notes["size_note"] = note
    seed = body.get("seed", -1)
    job = {"prompt": str(body.get("prompt") or ""), "negative": str(body.get("negative_prompt") or ""),
           "seed": -1 if seed in (None, -1) else seed, "steps": body.get("steps", 20) if body.get("steps") is not None else 20,
           "sampler": name, "cfg": body.get("cfg_scale", 7.0) if body.get("cfg_scale") is not None else 7.0, "batch": batch,
           "width": width, "height": height}
    if img2img:
        images = body.get("init_images") or []
        if not isinstance(images, list) or not images:
            raise LatentscapeError("init_images must be a list holding one base64 image.")
        if len(images) > 1:
            notes.setdefault("not_honoured", []).append("more than one init image (the first is used)")
        job["init_image"] = images[0]
        strength = body.get("denoising_strength", 0.75)
        job["strength"] = 0.75 if strength is None else strength
        job["resize"] = "stretch" if width else "crop"
    return job, notes


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LatentscapeError(f"{name} got {value!r}; expected a whole number of at least 1.")
    return value


def parse_infotext(text: str) -> dict[str, Any]:
    """A1111 infotext -> {"Prompt", "Negative prompt", "Steps", ...} (the shape of A1111's png-info parameters)."""
    lines = text.strip().split("\n")
    settings = lines.pop() if lines and re.search(r"(^|, )Steps: ", lines[-1]) else ""
    negative = [i for i, line in enumerate(lines) if line.startswith("Negative prompt:")]
    cut = negative[0] if negative else len(lines)
    out: dict[str, Any] = {"Prompt": "\n".join(lines[:cut]),
                           "Negative prompt": "\n".join(lines[cut:])[len("Negative prompt:"):].strip() if negative else ""}
    for key, value in re.findall(r'\s*([\w ,./+\-()]+?):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', settings):
        value = value.strip()
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key.strip()] = _number(value)
    return out


def _number(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+\.\d*", value):
        return float(value)
    return value


def router(state) -> APIRouter:
    r = APIRouter(prefix="/sdapi/v1")
    model = state.model
    last: dict[str, Any] = {"interrupted": False, "skipped": False}

    async def render(request: Request, img2img: bool):
        body = await read_json(request)
        job, notes = generate_body(model, body, img2img)
        job_id = await asyncio.to_thread(enqueue, state, "generate", job)
        done = await wait_done(state, job_id)
        return JSONResponse(response(state, done, body if isinstance(body, dict) else {}, notes))

    @r.post("/txt2img")
    async def txt2img(request: Request):
        return await render(request, img2img=False)

    @r.post("/img2img")
    async def img2img(request: Request):
        return await render(request, img2img=True)

    @r.post("/png-info")
    async def png_info(request: Request):
        from latentscape.server.uploads import check_image_bytes, decode_base64

        body = await read_json(request)
        image = body.get("image") if isinstance(body, dict) else None
        data = decode_base64(image, field="image", max_bytes=state.limits.max_upload_bytes)
        check_image_bytes(data, field="image", max_pixels=state.limits.max_upload_pixels)
        items = _text_chunks(data)
        text = items.pop("parameters", "")
        return {"info": text, "items": items, "parameters": parse_infotext(text) if text else {}}

    @r.get("/progress")
    def progress(skip_current_image: bool = False):
        live = state.worker.snapshot()
        p = live.get("progress", {})
        queued = state.store.queued_count()
        step, total = p.get("step", 0), p.get("total", 0)
        frames, frame = p.get("frames", 0), p.get("frame", 0)
        fraction = (frame / frames) if frames else (step / total if total else 0.0)
        elapsed = time.time() - live["started"] if live.get("started") else 0.0
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        preview = live.get("preview")
        return {
            "progress": round(fraction, 4), "eta_relative": round(eta, 3),
            "state": {"skipped": last["skipped"], "interrupted": last["interrupted"], "job": live.get("id", ""),
                      "job_count": queued, "job_timestamp": time.strftime("%Y%m%d%H%M%S"), "job_no": 0,
                      "sampling_step": step, "sampling_steps": total},
            "current_image": base64.b64encode(preview).decode() if preview and not skip_current_image else None,
            "textinfo": f"{live.get('verb')} job {live.get('id')}" if live else None,
        }

    @r.post("/interrupt")
    def interrupt():
        last["interrupted"] = state.worker.interrupt() is not None
        return {}

    @r.post("/skip")
    def skip():
        last["skipped"] = state.worker.skip() is not None
        return {}

    @r.get("/options")
    def get_options():
        return {**state.options, "sd_model_checkpoint": _title(model), "samples_format": "png", "sd_checkpoint_hash": model.model_hash or ""}

    @r.post("/options")
    async def set_options(request: Request):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise LatentscapeError("the options body must be a JSON object.")
        wanted = body.get("sd_model_checkpoint")
        if wanted is not None and wanted not in (_title(model), model.model_id):
            raise LatentscapeError(f"sd_model_checkpoint got '{str(wanted)[:80]}'; this server runs one model: '{_title(model)}' "
                                   "(start another `latentscape serve --model ...` for another).")
        state.options.update({k: v for k, v in body.items() if k != "sd_model_checkpoint"})
        return {}

    @r.get("/sd-models")
    def sd_models():
        return [{"title": _title(model), "model_name": model.model_id, "hash": model.model_hash, "sha256": None,
                 "filename": model.model_id, "config": None}]

    @r.get("/samplers")
    def samplers():
        from latentscape.samplers import SAMPLERS

        specs = [s for s in SAMPLERS.values() if s.flow == model.is_flow and s.schedule == "automatic"]
        return [{"name": s.a1111, "aliases": [s.name], "options": {}} for s in specs]

    @r.get("/schedulers")
    def schedulers():
        from latentscape.samplers import SCHEDULES

        return [{"name": k, "label": s.label, "aliases": list(s.aliases) or None, "default_rho": -1, "need_inner_model": False}
                for k, s in SCHEDULES.items()]

    @r.get("/scripts")
    def scripts():
        return {"txt2img": [], "img2img": []}

    @r.get("/cmd-flags")
    def cmd_flags():
        return {}

    return r


def _title(model) -> str:
    return f"{model.model_id} [{model.model_hash}]" if model.model_hash else model.model_id


def response(state, job: dict[str, Any], body: dict[str, Any], notes: dict[str, Any]) -> dict[str, Any]:
    """The A1111 response for a finished generate job: images (base64 PNGs with their infotext chunks),
    the parameters as sent, and info (a JSON string) with seed, all_seeds and infotexts."""

    if job["status"] == "failed":
        raise LatentscapeError(job["error"] or "the job failed.")
    folder = state.store.folder(job["id"])
    images, infotexts, seeds = [], [], []
    if job["status"] == "done":
        for result in job["results"]:
            data = (folder / result["name"]).read_bytes()
            images.append(base64.b64encode(data).decode())
            seeds.append(int(result["name"].split("-", 1)[1].split(".")[0]))
            infotexts.append(_text_chunks(data).get("parameters", ""))
    recipe = job["recipe"] or {}
    params = recipe.get("params", {})
    seed = seeds[0] if seeds else job["request"].get("seed", -1)
    info = {
        "prompt": params.get("prompt", job["request"].get("prompt", "")), "all_prompts": [params.get("prompt", "")] * len(images),
        "negative_prompt": params.get("negative", ""), "all_negative_prompts": [params.get("negative", "")] * len(images),
        "seed": seed, "all_seeds": seeds, "subseed": -1, "all_subseeds": [-1] * len(images), "subseed_strength": 0,
        "width": params.get("width"), "height": params.get("height"), "sampler_name": recipe.get("sampler_label"),
        "scheduler": recipe.get("schedule_label"), "cfg_scale": params.get("cfg"), "steps": params.get("steps"),
        "batch_size": len(images), "restore_faces": False, "sd_model_name": state.model.model_id,
        "sd_model_hash": state.model.model_hash, "denoising_strength": params.get("strength") if params.get("init_image") else None,
        "extra_generation_params": dict(recipe.get("infotext_extra", {})), "index_of_first_image": 0, "infotexts": infotexts,
        "styles": [], "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(job["created"])), "clip_skip": 1,
        "is_using_inpainting_conditioning": False, "version": f"latentscape {recipe.get('versions', {}).get('latentscape', '')}",
        "latentscape_job": job["id"], "interrupted": job["status"] == "cancelled", **notes,
    }
    return {"images": images, "parameters": body, "info": json.dumps(info)}


def _text_chunks(data: bytes) -> dict[str, str]:
    """A PNG's text chunks (tEXt/iTXt), read from its header without decoding pixels."""
    import io

    from PIL import Image

    from latentscape.io.images import decode_limits

    with decode_limits(), Image.open(io.BytesIO(data)) as im:
        return {k: v for k, v in getattr(im, "text", {}).items() if isinstance(v, str)}
