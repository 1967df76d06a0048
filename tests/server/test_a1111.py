"""The A1111 /sdapi/v1 subset: in process for every route and error, and the real PyPI ``webuiapi`` client
against a live ``latentscape serve`` on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

from server_helpers import nothing_written, one_sentence

# what webuiapi 0.9 sends for txt2img besides the prompt (a sample of its ~40 fields)
WEBUIAPI_FIELDS = {"enable_hr": False, "hr_scale": 2, "hr_upscaler": "Latent", "denoising_strength": 0.7, "styles": [],
                   "subseed": -1, "subseed_strength": 0.0, "seed_resize_from_h": 0, "seed_resize_from_w": 0,
                   "batch_size": 1, "n_iter": 1, "restore_faces": False, "tiling": False, "do_not_save_samples": False,
                   "eta": 1.0, "s_churn": 0, "s_tmax": 0, "s_tmin": 0, "s_noise": 1, "override_settings": {},
                   "override_settings_restore_afterwards": True, "script_args": [], "script_name": None,
                   "send_images": True, "save_images": False, "alwayson_scripts": {}, "width": 512, "height": 512}


def test_txt2img_accepts_webuiapi_fields_maps_samplers_and_documents_the_size(studio, embedded):
    from latentscape.workflows.generate import GenerateConfig, generate

    client, _ = studio
    body = {**WEBUIAPI_FIELDS, "prompt": "cat face, google style", "seed": 11, "steps": 3, "cfg_scale": 7.5,
            "sampler_name": "DPM++ 2M", "scheduler": "Karras", "batch_size": 2, "unknown_extension_field": {"x": 1}}
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    info = json.loads(out["info"])
    assert info["seed"] == 11 and info["all_seeds"] == [11, 12] and len(out["images"]) == 2
    assert "rendered at 64x64" in info["size_note"] and info["width"] == 64
    assert out["parameters"]["unknown_extension_field"] == {"x": 1}
    assert "Sampler: DPM++ 2M" in info["infotexts"][0] and "Schedule type: Karras" in info["infotexts"][0]
    png = Image.open(io.BytesIO(base64.b64decode(out["images"][0])))
    assert png.text["parameters"] == info["infotexts"][0]
    direct = generate(embedded, GenerateConfig(prompt="cat face, google style", seed=11, steps=3, cfg=7.5,
                                               sampler="dpmpp_2m_karras", batch=2))
    assert np.array_equal(np.asarray(png.convert("RGB")), np.asarray(direct.images[0]))
    # within 2x of the model's size: honoured; "Automatic" reads DPM++ 2M as A1111 does (Karras)
    auto = json.loads(client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 2, "seed": 1, "width": 128, "height": 128,
                                                               "sampler_name": "DPM++ 2M", "scheduler": "Automatic"}).json()["info"])
    assert auto["width"] == 128 and "size_note" not in auto and "Schedule type: Karras" in auto["infotexts"][0]
    honoured = json.loads(client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 2, "enable_hr": True}).json()["info"])
    assert honoured["not_honoured"] == ["hires fix"]


def test_a1111_errors_are_one_sentence_and_write_nothing(studio):
    client, state = studio
    assert "sampler got 'Nope a'" in one_sentence(client.post("/sdapi/v1/txt2img", json={"prompt": "x", "sampler_name": "Nope a"}), 422)
    assert "schedule got 'Beta'" in one_sentence(
        client.post("/sdapi/v1/txt2img", json={"prompt": "x", "sampler_name": "Euler", "scheduler": "Beta"}), 422)
    assert "base64" in one_sentence(client.post("/sdapi/v1/img2img", json={"prompt": "x", "init_images": ["@@@"]}), 422)
    assert "init_images" in one_sentence(client.post("/sdapi/v1/img2img", json={"prompt": "x"}), 422)
    assert "base64" in one_sentence(client.post("/sdapi/v1/png-info", json={"image": "%%%"}), 422)
    assert "one model" in one_sentence(client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "sdxl.safetensors"}), 422)
    one_sentence(client.post("/sdapi/v1/txt2img", content=b"{not json", headers={"content-type": "application/json"}), 422)
    nothing_written(state)


def test_listing_routes_and_options(studio):
    client, _ = studio
    models = client.get("/sdapi/v1/sd-models").json()
    assert models[0]["model_name"] == "embedded" and models[0]["title"].startswith("embedded")
    names = [s["name"] for s in client.get("/sdapi/v1/samplers").json()]
    assert {"Euler a", "Euler", "DPM++ 2M"} <= set(names)
    assert {"automatic", "karras"} <= {s["name"] for s in client.get("/sdapi/v1/schedulers").json()}
    assert client.get("/sdapi/v1/scripts").json() == {"txt2img": [], "img2img": []}
    assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": models[0]["title"], "CLIP_stop_at_last_layers": 1}).json() == {}
    options = client.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == models[0]["title"] and options["CLIP_stop_at_last_layers"] == 1
    idle = client.get("/sdapi/v1/progress").json()
    assert idle["progress"] == 0 and idle["current_image"] is None
    assert client.post("/sdapi/v1/interrupt").json() == {} and client.post("/sdapi/v1/skip").json() == {}


def test_webuiapi_client_against_a_live_server(live_server):
    webuiapi = pytest.importorskip("webuiapi")
    live_server.start()
    api = webuiapi.WebUIApi(host="127.0.0.1", port=live_server.port, sampler="Euler a", steps=3)
    result = api.txt2img(prompt="cat face, google style", seed=5, steps=3)
    assert result.image.size == (64, 64) and result.info["seed"] == 5 and result.info["all_seeds"] == [5]
    assert "Sampler: Euler a" in result.info["infotexts"][0]

    edited = api.img2img(images=[result.image], prompt="fire, twitter style", denoising_strength=0.5, seed=3, steps=4,
                         width=64, height=64)
    assert edited.image.size == (64, 64) and edited.info["seed"] == 3 and edited.info["denoising_strength"] == 0.5
    assert not np.array_equal(np.asarray(edited.image), np.asarray(result.image))

    info = api.png_info(result.image)  # the client re-encodes the PIL image (keeping its text chunks)
    assert info.info == result.info["infotexts"][0]
    assert info.parameters["Seed"] == 5 and info.parameters["Prompt"] == "cat face, google style"
    assert "embedded" in api.util_get_model_names()[0]
    api.util_set_model("embedded")

    box: dict = {}
    worker = threading.Thread(target=lambda: box.setdefault("result", api.txt2img(prompt="rocket", seed=1, steps=150, batch_size=8)))
    worker.start()
    seen = None
    start = time.monotonic()
    while time.monotonic() - start < 60:
        progress = api.get_progress()
        if progress["state"]["sampling_step"] >= 1 and progress["current_image"]:
            seen = progress
            break
        time.sleep(0.05)
    assert seen is not None, "progress never showed the running job"
    assert seen["state"]["sampling_steps"] == 150 and 0 < seen["progress"] < 1
    assert Image.open(io.BytesIO(base64.b64decode(seen["current_image"]))).size == (64, 64)
    api.interrupt()
    worker.join(60)
    assert not worker.is_alive()
    assert box["result"].images == [] and box["result"].info["interrupted"] is True
    assert api.get_progress()["state"]["interrupted"] is True
    again = api.txt2img(prompt="cat face, google style", seed=5, steps=3)  # the server carries on after an interrupt
    assert np.array_equal(np.asarray(again.image), np.asarray(result.image))
