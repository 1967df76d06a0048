"""The time-boxed recipe (``latentscape train recipe``) at toy size on the CPU: every stage runs to its deadline and
hands on, the export loads and generates, the eval has the gated numbers, bad flags fail in one sentence, and the
device script returns what the device tool can bring back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latentscape.errors import LatentscapeError
from latentscape.train import data, recipe
from tests.train.toy_data import write_toy_dataset

REPO = Path(__file__).resolve().parents[2]
GATED = {"vae.psnr", "vae.ssim", "euler.base.name_top1", "euler.base.style_acc", "dpmpp_2m.base.name_top1",
         "dpmpp_2m.base.style_acc", "coarse.distinct_names_mean"}
TOY = ["--tiny", "--device", "cpu", "--threads", "1", "--no-progress", "--eval-captions", "2", "--coarse-prompts", "2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """16 images of coloured squares on white, two styles, with captions and a held-out split."""
    return write_toy_dataset(tmp_path_factory.mktemp("data") / "emoji64.npz")


def _recipe(argv):
    from latentscape.interfaces import train_cli

    return train_cli.main(["train", "recipe", *argv])


@pytest.fixture(scope="module")
def done(dataset, tmp_path_factory):
    """One toy recipe of 12 s: each stage probed, sized to its share, stopped at its deadline."""
    out = tmp_path_factory.mktemp("recipe") / "out"
    assert _recipe(["--budget-minutes", "0.2", "--data", str(dataset), "--out", str(out), *TOY]) == 0
    return out


def test_recipe_exports_a_model_that_loads_and_generates(done):
    import latentscape

    assert sorted(p.name for p in done.iterdir()) == ["eval.json", "model", "recipe.json", "runs"]
    from latentscape.workflows.generate import GenerateConfig, generate

    model = latentscape.load(str(done / "model"), device="cpu")
    result = generate(model, GenerateConfig(prompt="shape 1, google style", seed=0, steps=2))
    pixels = np.asarray(result.images[0])
    assert pixels.shape == (64, 64, 3) and pixels.std() > 0  # a picture, not a constant
    manifest = json.loads((done / "model" / "latentscape.json").read_text())
    trained = manifest["trained"]
    assert set(trained["recipe"]["stages"]) == set(recipe.STAGES)  # the whole recipe is in the model's own record
    assert trained["vae"]["encoder"]["step"] >= 1 and trained["diffusion"]["step"] >= 1 and trained["dtype"] == "fp16"


def test_recipe_writes_the_gated_eval_and_a_record_inside_the_budget(done):
    results = json.loads((done / "eval.json").read_text())
    assert set(results["gates"]) == GATED
    assert results["coarse"]["n"] == 2 and results["config"]["sets"] == ["base"]
    record = json.loads((done / "recipe.json").read_text())
    assert record["eval"]["gates"] == results["gates"]
    stages = record["stages"]
    assert list(stages) == list(recipe.STAGES)
    for name, s in stages.items():
        assert s["probe"]["steps"] >= 1 and s["probe"]["seconds_per_step"] > 0, name
        assert 1 <= s["reached_steps"] <= s["planned_steps"], name
        assert s["config"]["loop"]["steps"] == s["planned_steps"], name  # the schedule was sized, not the default
    # deadlines are cumulative shares of the budget; the diffusion stage's leaves the eval its estimated time
    assert stages["vae"]["deadline_s"] == pytest.approx(0.3 * 12, abs=1e-3)
    assert stages["decoder"]["deadline_s"] == pytest.approx(0.45 * 12, abs=1e-3)
    assert stages["diffusion"]["eval_reserve_s"] >= recipe.MIN_EVAL_SHARE * 12
    assert stages["diffusion"]["deadline_s"] == pytest.approx(12 - stages["diffusion"]["eval_reserve_s"], abs=1e-3)
    assert stages["decoder"]["config"]["disc_start"] == round(0.15 * stages["decoder"]["planned_steps"])
    assert stages["diffusion"]["config"]["caption_mix"] == list(recipe.CAPTION_MIX)
    assert record["export"]["within_60_mb"] and record["device"] == "cpu"
    assert not any(probe.name.startswith("probe-") for probe in (done / "runs").iterdir())  # probes cleaned up
    assert (done / "runs" / "diffusion" / "tokenizer" / "vocab.json").is_file()


def test_a_budget_below_the_stages_set_up_still_ends_with_a_clean_export(dataset, tmp_path, caplog):
    out = tmp_path / "out"
    assert _recipe(["--budget-minutes", "0.001", "--data", str(dataset), "--out", str(out), *TOY]) == 0
    record = json.loads((out / "recipe.json").read_text())
    assert not record["within_budget"] and "over its budget" in caplog.text
    for s in record["stages"].values():  # every stage stopped at (past) its deadline after one step, and handed on
        assert s["reached_steps"] >= 1 and s["stopped_at_deadline"] or s["reached_steps"] == s["planned_steps"]
    assert (out / "model" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert set(json.loads((out / "eval.json").read_text())["gates"]) == GATED


def test_fixed_steps_replay_the_schedule_without_probes(dataset, tmp_path):
    out = tmp_path / "out"
    assert _recipe(["--budget-minutes", "2", "--steps", "3,2,4", "--data", str(dataset), "--out", str(out), *TOY,
                    "--eval-device", "cpu"]) == 0
    record = json.loads((out / "recipe.json").read_text())
    stages = record["stages"]
    assert record["eval_device"] == "cpu"
    assert [stages[k]["reached_steps"] for k in recipe.STAGES] == [3, 2, 4]
    assert not any("probe" in s for s in stages.values())


def _bad_cases(dataset, tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    other_sample = tmp_path / "eval-1024.json"  # a real eval.json shape, but 1024 captions: another sample than the recipe's
    other_sample.write_text(json.dumps({"config": {"n_captions": 1024, "steps": 25, "guidance_scale": 7.5, "seed": 0},
                                        "vae": {"psnr": 20.0, "ssim": 0.8}}))
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    out = str(tmp_path / "out")
    d = str(dataset)
    return [
        (["--budget-minutes", "0", "--data", d, "--out", out], "--budget-minutes 0.0 is not allowed"),
        (["--budget-minutes", "-3", "--data", d, "--out", out], "--budget-minutes -3.0 is not allowed"),
        (["--budget-minutes", "nan", "--data", d, "--out", out], "--budget-minutes nan is not allowed"),
        (["--budget-minutes", "1", "--data", str(tmp_path / "missing.npz"), "--out", out], "does not exist"),
        (["--budget-minutes", "1", "--data", str(afile), "--out", out], "is not an emoji array file"),
        (["--budget-minutes", "1", "--data", d, "--out", str(afile / "sub")], "cannot be created"),
        (["--budget-minutes", "1", "--data", d, "--out", str(afile)], "is a file or a link"),
        (["--budget-minutes", "1", "--data", d, "--out", str(full)], "is not empty"),
        (["--budget-minutes", "1", "--data", d, "--out", out, "--shares", "0.7,0.4"], "sums to 1.1"),
        (["--budget-minutes", "1", "--data", d, "--out", out, "--shares", "0.5,0.3,0.1"], "--shares got '0.5,0.3,0.1'"),
        (["--budget-minutes", "1", "--data", d, "--out", out, "--shares", "0.5,-0.1"], "--shares got '0.5,-0.1'"),
        (["--budget-minutes", "1", "--data", d, "--out", out, "--steps", "3,0,2"], "--steps got '3,0,2'"),
        (["--budget-minutes", "1", "--data", d, "--out", out, "--device", "tpu"], "--device 'tpu' is not allowed"),
        (["--budget-minutes", "1", "--data", d, "--out", out, "--eval-device", "tpu"], "--eval-device 'tpu' is not allowed"),
        (["--budget-minutes", "1", "--data", d, "--out", out, "--eval-captions", "0"], "--eval-captions 0"),
        (["--budget-minutes", "1", "--data", d, "--out", out, "--baseline", str(afile)], "--baseline"),
        (["--budget-minutes", "1", "--data", d, "--out", out, "--baseline", str(other_sample)], "was scored on other captions"),
    ]


def test_bad_flags_fail_in_one_sentence_and_write_nothing(dataset, tmp_path, capsys):
    cases = _bad_cases(dataset, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, says in cases:
        code = _recipe([*argv, "--tiny", "--device", "cpu", "--no-progress"] if "--device" not in argv else [*argv, "--tiny"])
        err = capsys.readouterr().err
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert err.startswith("latentscape train: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out folder, nothing in the full one
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_out_folder_fails_in_one_sentence(dataset, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = _recipe(["--budget-minutes", "1", "--data", str(dataset), "--out", str(locked / "out"), *TOY])
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert code == 2 and "cannot be created" in err and len(err.strip().splitlines()) == 1
    assert not any(locked.iterdir())


def test_schedules_scale_with_their_length_and_the_eval_reserve_with_its_work():
    from latentscape.train.loop import LoopConfig

    base = LoopConfig(steps=1, batch_size=8, lr=1e-3)
    long, short = recipe.sized(base, 4000, 2.0), recipe.sized(base, 2, 0.1)
    assert (long.warmup, long.ema_warmup, long.checkpoint_every, long.ema_decay, long.minutes) == (200, 800, 1000, 0.9975, 2.0)
    assert (short.warmup, short.checkpoint_every, short.ema_decay) == (1, 1, 0.9)  # a two-step schedule still runs
    cfg = recipe.default_config(9, "cuda")
    assert cfg.vae.bf16 and cfg.vae.model == recipe.WIDE_VAE and cfg.diffusion.loop.batch_size == 512
    assert not recipe.default_config(9, "cpu").vae.bf16 and recipe.default_config(9, "cpu").vae_size == "shipped"
    gated_only, full = recipe._eval_seconds(cfg, 0.02, 1.0), recipe._eval_seconds(recipe.default_config(9, "cuda", full_eval=True), 0.02, 1.0)
    assert 5.0 < gated_only < full < 60.0  # seconds on a GPU: the eval is not what the budget goes to
    cpu = recipe.default_config(8, "cpu")
    assert recipe._eval_seconds(cpu, 3.0618870, 5.0045807) == pytest.approx(246.655, abs=0.01)  # the CPU rehearsal (took 144 s)


def test_the_wide_vae_keeps_the_export_under_60_mb_and_the_geometry():
    from latentscape.train.configs import TextConfig, UNetConfig, build_text_encoder, build_unet, build_vae, n_params

    vae = build_vae(recipe.WIDE_VAE)
    fp16_mb = 2e-6 * (n_params(vae) + n_params(build_unet(UNetConfig(), TextConfig().hidden_size))
                      + n_params(build_text_encoder(TextConfig(), 4000, 0, 1, 1)))
    assert fp16_mb < recipe.MAX_EXPORT_MB - 4  # room for the tokenizer, configs and a larger vocabulary
    assert len(recipe.WIDE_VAE.block_out_channels) == 4 and recipe.WIDE_VAE.latent_channels == 4  # f8c4 still


def test_packed_data_reads_back_the_same_arrays(dataset, tmp_path):
    packed = data.pack(dataset, tmp_path / "emoji64.npz.xz", preset=1)
    a, b = data.load(dataset), data.load(packed)
    for field in ("images", "captions", "names", "styles", "heldout", "tones", "categories"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    with pytest.raises(LatentscapeError, match="must end in .xz"):
        data.pack(dataset, tmp_path / "emoji64.npz")


def _run_call(script: str) -> str:
    """The `run` call written in the script's header: its command line."""
    found = re.search(r"command:\s+(.+)", script)
    assert found, "the header names the device command"
    return found.group(1).strip()


def test_the_device_script_returns_what_the_device_tool_brings_back(dataset, tmp_path):
    script = (REPO / "tools" / "gpu_train.sh").read_text()
    command = _run_call(script)
    assert len(command) <= 2000 and re.search(r'carry:\s+\[".whl", ".cache/gpu"\]', script) and "timeout_s: 600" in script
    packed = data.pack(dataset, tmp_path / "emoji64.npz.xz", preset=1)  # the carried form of the data
    out = tmp_path / "OUT"
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, SMOKE="0", BUDGET="0.15", DATA=str(packed),
               WORK=str(tmp_path / "work"), BASELINE=str(tmp_path / "none.json"), RECIPE_FLAGS=" ".join([*TOY, "--steps", "2,2,2"]))
    done = subprocess.run(["bash", str(REPO / "tools" / "gpu_train.sh")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"eval.json", "recipe.json", "log.txt", "model.tar.00"}
    assert len(files) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in files)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in files)
    assert "recipe: done" in (out / "log.txt").read_text()
    results = json.loads((out / "eval.json").read_text())  # the device run scores the README's whole table
    assert results["config"]["sets"] == ["base", "train", "heldout"] and len(results["cfg_sweep"]) == 6
    parts = sorted(out.glob("model.tar.*"))
    joined = tmp_path / "back"
    joined.mkdir()
    subprocess.run(f"cat {' '.join(str(p) for p in parts)} | tar -x -C {joined}", shell=True, check=True)
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(joined / "model")
    assert pipe.unet is not None and (joined / "model" / "latentscape.json").is_file()


def test_gpu_prep_checks_what_travels():
    prep = (REPO / "tools" / "gpu_prep.sh").read_text()
    subprocess.run(["bash", "-n", str(REPO / "tools" / "gpu_prep.sh")], check=True)
    assert "64 * 1048576" in prep and ".cache/gpu/emoji64.npz.xz" in prep and "diffusers==0.42.1" in prep
