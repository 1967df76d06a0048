"""The /latentscape/v1 job API, /health, the page routes and the request checks, in process (embedded model)."""

from __future__ import annotations

import base64
import io
import json
import shlex
import time

import numpy as np
import pytest
from PIL import Image

from server_helpers import nothing_written, one_sentence, png_b64, wait_job
from latentscape.interfaces.cli import build_parser

GEN = {"prompt": "cat face, google style", "steps": 2, "seed": 7}


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_health_info_and_page_routes(studio):
    client, state = studio
    health = client.get("/health").json()
    assert health == {"status": "ok", "model": "embedded", "family": "sd", "size": [64, 64], "version": health["version"], "queue": 0}
    info = client.get("/latentscape/v1/info").json()
    assert "euler_a" in info["samplers"] and info["size"] == [64, 64]
    assert set(info["limits"]) >= {"max_steps", "max_frames", "max_pixels", "max_body_bytes"}
    index = client.get("/")
    assert index.status_code in (200, 404)  # the page ships with the static folder (ENG-G)
    assert client.get("/static/../jobs.py").status_code == 404  # nothing outside the static folder
    assert client.get("/static/%2e%2e/app.py").status_code == 404
    one_sentence(client.get("/nope"), 404)


def test_generate_job_runs_once_records_recipe_and_serves_only_its_files(studio):
    client, state = studio
    r = client.post("/latentscape/v1/jobs/generate", json={**GEN, "seed": -1})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "done" and job["attempts"] == 1 and job["error"] is None
    stored_seed = state.store.get(job["id"])["request"]["seed"]
    assert stored_seed != -1 and job["recipe"]["seed"] == stored_seed  # drawn at enqueue, used by the render
    assert [x["name"] for x in job["results"]] == [f"00000-{stored_seed}.png"]
    assert f"Seed: {stored_seed}" in job["infotext"] and job["cli"].startswith("latentscape generate 'cat face, google style'")
    assert job["progress"]["step"] == job["progress"]["total"] == 2
    png = client.get(job["results"][0]["url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).text["parameters"] == job["infotext"]
    for name in ("job.json", "..%2Fjobs.sqlite3", "00000-1.png"):
        one_sentence(client.get(f"/latentscape/v1/jobs/{job['id']}/files/{name}"), 404)
    one_sentence(client.get("/latentscape/v1/jobs/0123/files/x.png"), 404)
    assert client.get("/latentscape/v1/jobs").json()["jobs"][0]["id"] == job["id"]


def test_the_same_request_gives_the_same_pixels_as_the_workflow(studio, embedded):
    from latentscape.workflows.generate import GenerateConfig, generate

    client, _ = studio
    job = wait_job(client, client.post("/latentscape/v1/jobs/generate", json=GEN).json()["id"])
    served = pixels(client.get(job["results"][0]["url"]).content)
    direct = np.asarray(generate(embedded, GenerateConfig(**GEN)).images[0])
    assert np.array_equal(served, direct)


@pytest.mark.parametrize("body, status, words", [
    ({**GEN, "sampler": "nope"}, 422, "sampler got 'nope'"),
    ({**GEN, "init_image": "!!not base64!!"}, 422, "not valid base64"),
    ({**GEN, "init_image": "https://example.com/cat.png"}, 422, "URL or a path"),
    ({**GEN, "init_image": base64.b64encode(b"not an image").decode()}, 422, "not a readable image"),
    ({**GEN, "bogus": 1}, 422, "unknown fields (bogus)"),
    ({**GEN, "steps": "7"}, 422, "steps"),
    ({**GEN, "steps": 10_000}, 422, "steps"),
    ({**GEN, "cfg": float("inf")}, 422, "JSON"),
    ({"prompt": "x", "width": 8192, "height": 8192}, 413, "limit"),
])
def test_bad_generate_requests_get_one_sentence_and_write_nothing(studio, body, status, words):
    client, state = studio
    if body.get("cfg") == float("inf"):
        response = client.post("/latentscape/v1/jobs/generate", content=json.dumps(body), headers={"content-type": "application/json"})
        assert response.status_code == 422
    else:
        response = client.post("/latentscape/v1/jobs/generate", json=body)
        assert words in one_sentence(response, status)
    nothing_written(state)


def test_requests_naming_server_files_are_refused(studio):
    client, state = studio
    for verb, body in [("morph", {"keyframes": ["image:/etc/passwd", "a cat"], "frames": 2}),
                       ("morph", {"keyframes": ["/etc/hosts.png", "a cat"], "frames": 2}),
                       ("map", {"images_dir": "/etc", "grid": "2x2"}),
                       ("sweep", {"prompts": ["cat face"], "clip_model": "/root/clip"})]:
        assert "no request may do" in one_sentence(client.post(f"/latentscape/v1/jobs/{verb}", json=body), 422)
    one_sentence(client.post("/latentscape/v1/jobs/shell", json={}), 404)
    nothing_written(state)


def test_oversized_image_and_body(embedded, tmp_path):
    from fastapi.testclient import TestClient

    from latentscape.server.app import create_app
    from latentscape.server.requests import Limits

    app = create_app(model=embedded, data_dir=tmp_path / "d", limits=Limits(max_upload_pixels=64 * 64, max_body_bytes=200_000))
    client, state = TestClient(app, base_url="http://127.0.0.1:7860"), app.state.studio
    try:
        big = png_b64(Image.new("RGB", (128, 128)))
        message = one_sentence(client.post("/latentscape/v1/jobs/generate", json={**GEN, "init_image": big}), 413)
        assert "128x128" in message and "limit" in message
        huge = {"prompt": "x" * 300_000}
        assert "byte limit" in one_sentence(client.post("/latentscape/v1/jobs/generate", json=huge), 413)
        nothing_written(state)
    finally:
        state.close()


def test_host_origin_and_token_checks(embedded, tmp_path):
    from fastapi.testclient import TestClient

    from latentscape.errors import LatentscapeError
    from latentscape.server.app import create_app

    with pytest.raises(LatentscapeError, match="needs a token"):
        create_app(model=embedded, data_dir=tmp_path / "x", host="0.0.0.0")
    app = create_app(model=embedded, data_dir=tmp_path / "d", token="s3cret")
    client, state = TestClient(app, base_url="http://127.0.0.1:7860"), app.state.studio
    try:
        assert "needs a token" in one_sentence(client.get("/health"), 401)
        assert "wrong" in one_sentence(client.get("/health", headers={"Authorization": "Bearer nope"}), 401)
        ok = {"Authorization": "Bearer s3cret"}
        assert client.get("/health", headers=ok).status_code == 200
        assert client.get("/health?token=s3cret").status_code == 200  # <img src> URLs
        one_sentence(client.post("/latentscape/v1/jobs/generate?token=s3cret", json=GEN), 401)  # not for writes
        assert "DNS-rebinding" in one_sentence(client.get("/health", headers={**ok, "Host": "evil.example:7860"}), 403)
        assert "another site" in one_sentence(
            client.post("/latentscape/v1/jobs/generate", json=GEN, headers={**ok, "Origin": "http://evil.example"}), 403)
        one_sentence(client.post("/latentscape/v1/jobs/generate", json=GEN, headers={**ok, "Origin": "http://127.0.0.1:9999"}), 403)
        same = client.post("/latentscape/v1/jobs/generate", json=GEN, headers={**ok, "Origin": "http://127.0.0.1:7860"})
        assert same.status_code == 202
        wait_job(TestClient(app, base_url="http://127.0.0.1:7860", headers=ok), same.json()["id"])
    finally:
        state.close()


def test_cancel_a_queued_and_a_running_job_and_the_live_preview(studio):
    client, state = studio
    long = client.post("/latentscape/v1/jobs/generate", json={**GEN, "steps": 150, "batch": 8}).json()["id"]
    queued = client.post("/latentscape/v1/jobs/generate", json=GEN).json()["id"]
    wait_job(client, long, until=("running",))
    assert client.post(f"/latentscape/v1/jobs/{queued}/cancel").json() == {"id": queued, "status": "cancelled"}
    start = time.monotonic()
    while not client.get(f"/latentscape/v1/jobs/{long}").json()["preview"]:  # the page asks for /preview only then
        assert time.monotonic() - start < 30
        time.sleep(0.02)
    preview = client.get(f"/latentscape/v1/jobs/{long}/preview")
    assert preview.status_code == 200
    assert Image.open(io.BytesIO(preview.content)).size == (64, 64)
    assert client.get(f"/latentscape/v1/jobs/{long}").json()["progress"]["total"] == 150
    assert client.post(f"/latentscape/v1/jobs/{long}/cancel").json()["status"] == "running"  # stops at its next step
    job = wait_job(client, long)
    assert job["status"] == "cancelled" and job["results"] == [] and job["progress"]["step"] < 150
    assert wait_job(client, queued)["status"] == "cancelled"
    assert not state.store.folder(long).exists() and not state.store.folder(queued).exists()
    assert client.get(f"/latentscape/v1/jobs/{queued}").json()["preview"] is False
    # just after the job ends its last preview still answers (a page's request in flight gets no 404) ...
    assert client.get(f"/latentscape/v1/jobs/{long}").json()["preview"] is True
    assert client.get(f"/latentscape/v1/jobs/{long}/preview").status_code == 200
    # ... until the next job starts
    wait_job(client, client.post("/latentscape/v1/jobs/generate", json=GEN).json()["id"])
    assert [j["preview"] for j in client.get("/latentscape/v1/jobs").json()["jobs"] if j["id"] == long] == [False]
    one_sentence(client.get(f"/latentscape/v1/jobs/{long}/preview"), 404)


def test_every_workflow_verb_runs_as_a_job(studio, embedded):
    from latentscape.io.latents import LatentMeta, save_latents

    client, state = studio
    a, b = "cat face, google style@1", {"prompt": "fire, twitter style", "seed": 2, "cfg": 5}
    small = {"steps": 2}
    image = png_b64(Image.new("RGB", (64, 64), (200, 120, 40)))
    latents = io.BytesIO()
    path = state.store.data_dir / "l.safetensors"
    lf = embedded.latent_format
    import torch

    save_latents(path, torch.zeros(1, 4, 8, 8), LatentMeta("sd", "embedded", 4, lf.scale, lf.shift, 64, 64))
    latents = base64.b64encode(path.read_bytes()).decode()
    path.unlink()
    cases = {
        "generate": ({**small, "prompt": "rocket", "image": image, "strength": 0.5}, ["00000-"]),
        "morph": ({**small, "keyframes": [a, b, {"image": image}], "frames": 4, "formats": ["gif", "webp"]},
                  ["morph.gif", "morph.webp", "sheet.png", "frame_00000.png", "frame_00003.png", "keyframes.json", "keyframe-2.png"]),
        "vary": ({**small, "prompt": "rocket", "seed": 3, "n": 2}, ["00000-", "00001-"]),
        "blend": ({**small, "inputs": [a, b], "weights": [1, 1]}, ["00000-"]),
        "mix": ({**small, "content": a, "style": "twitter style", "ratio": [0, 0.5]}, ["00000-", "00001-"]),
        "explore": ({**small, "point": a, "grid": "3x3"}, ["sheet.png", "cell-000.png", "cell-008.png"]),
        "map": ({**small, "corners": [a, b, "rocket@3", "seed:4"], "grid": "2x2"}, ["sheet.png", "cell-003.png"]),
        "math": ({**small, "expression": "'cat face, google style' + 0.5 * 'fire, twitter style'"}, ["00000-"]),
        "encode": ({"image": image}, ["latents.safetensors"]),
        "decode": ({"latents": latents}, ["decoded-00.png"]),
    }
    ids = {verb: client.post(f"/latentscape/v1/jobs/{verb}", json=body).json() for verb, (body, _) in cases.items()}
    for verb, (body, expected) in cases.items():
        assert "id" in ids[verb], (verb, ids[verb])
        job = wait_job(client, ids[verb]["id"], timeout=120)
        assert job["status"] == "done", (verb, job["error"])
        names = [x["name"] for x in job["results"]]
        for prefix in expected:
            assert any(n.startswith(prefix) for n in names), (verb, prefix, names)
        for result in job["results"][:2]:
            assert client.get(result["url"]).status_code == 200
        if verb == "morph":  # per-keyframe CFG and an image: the command reads the job's own keyframe file
            assert job["cli"].startswith("latentscape morph --keyframes keyframes.json --frames 4")
            kf = client.get(f"/latentscape/v1/jobs/{job['id']}/files/keyframes.json").json()
            assert kf[1] == {"prompt": "fire, twitter style", "seed": 2, "cfg": 5} and kf[2]["image"] == "keyframe-2.png"
        if verb not in ("encode", "decode"):
            assert job["recipe"]["workflow"] in (verb, "img2img", "map") and job["cli"].startswith("latentscape ")
            parsed = build_parser().parse_args(shlex.split(job["cli"])[1:])  # "copy as CLI command" is a valid command
            assert parsed.command == ("img2img" if job["recipe"]["workflow"] == "img2img" else verb)
            if hasattr(parsed, "steps"):
                assert parsed.steps == 2
    # replay: the generate job's own PNG, sent back, makes the same pixels
    job = wait_job(client, ids["vary"]["id"])
    first = client.get(job["results"][0]["url"]).content
    again = wait_job(client, client.post("/latentscape/v1/jobs/replay", json={"image": base64.b64encode(first).decode()}).json()["id"])
    assert again["status"] == "done", again["error"]
    assert np.array_equal(pixels(client.get(again["results"][0]["url"]).content), pixels(first))
    by_recipe = client.post("/latentscape/v1/jobs/replay", json={"recipe": job["recipe"]}).json()
    assert wait_job(client, by_recipe["id"])["status"] == "done"


def test_a_sweep_job_shows_its_measurements_as_info(studio):
    client, _ = studio
    body = {"prompts": ["cat face, google style"], "cfgs": [1, 6], "seeds": 2, "steps": 2, "seed": 11}
    job = wait_job(client, client.post("/latentscape/v1/jobs/sweep", json=body).json()["id"], timeout=120)
    assert job["status"] == "done", job["error"]
    info = job["info"]  # what the CFG explorer charts: one row per CFG with its measured adherence and diversity
    assert info["cfgs"] == [1.0, 6.0] and info["seeds"] == [11, 12]
    assert [row["cfg"] for row in info["table"]] == [1.0, 6.0]
    for row in info["table"]:
        assert 0 <= row["adherence"] <= 1 and row["diversity"] >= 0
    assert "sheet" not in info and "chart" not in info  # images are the job's files, not JSON
    assert client.get("/latentscape/v1/jobs").json()["jobs"][0]["info"] == info
    morph = wait_job(client, client.post("/latentscape/v1/jobs/morph", json={
        "keyframes": ["cat face, google style@1", "rocket@2"], "frames": 3, "steps": 1, "formats": ["gif"]}).json()["id"])
    assert morph["info"]["keyframe_frames"] == [0, 2] and len(morph["info"]["positions"]) == 3


def test_json_info_keeps_only_json_values_and_old_databases_get_the_column(tmp_path):
    import sqlite3

    from latentscape.server.execute import json_info
    from latentscape.server.jobs import JobStore

    info = {"table": [{"cfg": np.float32(2.0), "x": float("nan")}], "grid": (2, 3), "sheet": Image.new("RGB", (2, 2)),
            "cells": [Image.new("RGB", (2, 2))], "n": np.int64(4), "path": tmp_path}
    assert json_info(info) == {"table": [{"cfg": 2.0, "x": None}], "grid": [2, 3], "n": 4}
    db = sqlite3.connect(tmp_path / "jobs.sqlite3")  # a jobs table from before the info column
    db.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, verb TEXT NOT NULL, "
               "request TEXT NOT NULL, status TEXT NOT NULL, progress TEXT NOT NULL DEFAULT '{}', results TEXT NOT NULL "
               "DEFAULT '[]', recipe TEXT, infotext TEXT, cli TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0, "
               "created REAL NOT NULL, started REAL, finished REAL, cancel_requested INTEGER NOT NULL DEFAULT 0)")
    db.commit()
    db.close()
    store = JobStore(tmp_path)
    job_id = store.enqueue("generate", {})
    assert store.claim_next()["id"] == job_id and store.get(job_id)["info"] is None
    assert store.finish(job_id, {"results": [], "info": {"cfgs": [1.0]}}) and store.get(job_id)["info"] == {"cfgs": [1.0]}
    store.close()


def test_replay_refuses_recipes_that_name_server_files(studio):
    client, state = studio
    job = wait_job(client, client.post("/latentscape/v1/jobs/generate", json={**GEN, "image": png_b64(Image.new("RGB", (64, 64)))}).json()["id"])
    assert job["recipe"]["params"]["init_image"]  # an upload path on this server
    before = len(state.store.list())
    assert "input files" in one_sentence(client.post("/latentscape/v1/jobs/replay", json={"recipe": job["recipe"]}), 422)
    assert len(state.store.list()) == before


def test_point_on_a_corner_is_that_corners_generate_and_pin_gives_a_keyframe(studio):
    client, _ = studio
    corners = ["cat face, google style@7", "fire, twitter style@2", "rocket, google style@3", "seed:4"]
    job = wait_job(client, client.post("/latentscape/v1/jobs/generate", json=GEN).json()["id"])
    own = pixels(client.get(job["results"][0]["url"]).content)
    for n, (u, v) in [(2, (0.0, 0.0)), (3, (0.0, 0.0)), (4, (0.0, 0.0))]:
        r = client.post("/latentscape/v1/point", json={"corners": corners[:n], "u": u, "v": v, "steps": 2})
        assert r.status_code == 200 and r.headers["x-latentscape-seed"] == "7"
        assert np.array_equal(pixels(r.content), own), n
        assert "Seed: 7" in r.headers["x-latentscape-infotext"]
    mid = client.post("/latentscape/v1/point", json={"corners": corners, "u": 0.25, "v": 0.5, "steps": 2})
    assert not np.array_equal(pixels(mid.content), own)
    command = mid.headers["x-latentscape-cli"]  # the map view's "Copy as CLI command"
    assert command.isascii() and command.startswith("latentscape blend ")
    parsed = build_parser().parse_args(shlex.split(command)[1:])
    assert parsed.command == "blend" and parsed.steps == 2 and parsed.inputs[:3] == corners[:3]
    assert [float(w) for w in parsed.weights.split(",")] == [0.375, 0.125, 0.375, 0.125]
    own_cfg = client.post("/latentscape/v1/point",
                          json={"corners": [corners[0], {"prompt": "fire", "seed": 2, "cfg": 5}], "u": 0.5, "steps": 2})
    assert own_cfg.status_code == 200 and "x-latentscape-cli" not in own_cfg.headers  # no blend flag carries a corner's CFG
    pin = client.post("/latentscape/v1/point/pin", json={"corners": corners[:2], "u": 0.25, "steps": 2}).json()
    assert pin["weights"] == [0.75, 0.25] and pin["keyframe"]["prompt"] == "cat face, google style"
    morph = client.post("/latentscape/v1/jobs/morph", json={"keyframes": [corners[0], pin["keyframe"]], "frames": 2, "steps": 2})
    assert morph.status_code == 202  # a pinned point is a keyframe the morph studio can use
    assert "triangle" in one_sentence(client.post("/latentscape/v1/point", json={"corners": corners[:3], "u": 0.8, "v": 0.8}), 422)
    assert "0 to 1" in one_sentence(client.post("/latentscape/v1/point", json={"corners": corners[:2], "u": 2}), 422)
    wait_job(client, morph.json()["id"])


def test_vary_of_an_uploaded_latentscape_png_uses_its_recipe_and_variation_seeds(studio, embedded):
    client, state = studio
    job = wait_job(client, client.post("/latentscape/v1/jobs/generate", json=GEN).json()["id"])
    source = client.get(job["results"][0]["url"]).content
    body = {"image": base64.b64encode(source).decode(), "n": 2, "strength": 0.0, "variation_seed": 100}
    vary = client.post("/latentscape/v1/jobs/vary", json=body).json()
    assert state.store.get(vary["id"])["request"].get("seed") is None  # the PNG's own seed, from its recipe
    vary = wait_job(client, vary["id"])
    assert vary["status"] == "done", vary["error"]
    assert vary["recipe"]["seed"] == 7 and vary["recipe"]["params"]["prompt"] == GEN["prompt"]
    served = pixels(client.get(vary["results"][0]["url"]).content)
    assert np.abs(served.astype(int) - pixels(source)).max() <= 1  # strength 0: the source (batched: within 1/255)
    folder = state.store.data_dir / "src.png"
    folder.write_bytes(source)
    from latentscape.workflows.vary import vary as vary_workflow, vary_config

    config, recipe = vary_config(f"image:{folder}", n=2, strength=0.0, variation_seed=100)
    assert recipe is not None and np.array_equal(served, np.asarray(vary_workflow(embedded, config).images[0]))  # = the CLI's
    strong = wait_job(client, client.post("/latentscape/v1/jobs/vary", json={**body, "strength": 0.6}).json()["id"])
    assert not np.array_equal(pixels(client.get(strong["results"][0]["url"]).content), pixels(source))


def test_serve_refuses_a_public_address_without_a_token_before_loading(capsys):
    from latentscape.interfaces.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("latentscape serve: error: host '0.0.0.0' is not a loopback address") and "--token" in err


def test_multipart_upload_of_keyframe_images(studio):
    client, state = studio
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 160, 220)).save(buf, format="PNG")
    fields = {"keyframes": [{"image": "file:a"}, "cat face, google style@1"], "frames": 2, "steps": 2, "strength": 0.5,
              "formats": ["gif"]}
    r = client.post("/latentscape/v1/jobs/morph", data={"json": json.dumps(fields)}, files={"a": ("a.png", buf.getvalue(), "image/png")})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "done", job["error"]
    assert "keyframe-0.png" in [x["name"] for x in job["results"]]
    bad = client.post("/latentscape/v1/jobs/morph", data={"json": json.dumps({**fields, "keyframes": [{"image": "file:b"}, "x"]})},
                      files={"a": ("a.png", buf.getvalue(), "image/png")})
    assert "names no file part" in one_sentence(bad, 422)
    assert "'json' field" in one_sentence(client.post("/latentscape/v1/jobs/generate", files={"a": ("a.png", b"x")}), 422)
    assert len(state.store.list()) == 1
