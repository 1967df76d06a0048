"""Each training stage at toy size on a synthetic dataset: it trains, checkpoints, resumes identically,
and the exported folder loads in plain diffusers and generates."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from latentscape.core import metrics as core_metrics
from latentscape.errors import LatentscapeError
from latentscape.train import configs, data, diffusion, evaluate, export, loop, metrics, vae
from tests.train.toy_data import write_toy_dataset

TINY_LOOP = loop.LoopConfig(steps=4, batch_size=4, lr=1e-3, warmup=1, ema_decay=0.9, ema_warmup=1, checkpoint_every=2, log_every=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """16 images of coloured squares on white, two styles, with captions and a held-out split."""
    return write_toy_dataset(tmp_path_factory.mktemp("data") / "emoji64.npz")


def _vae_cfg(**kw):
    return dataclasses.replace(vae.VAETrainConfig(model=configs.TINY_VAE, loop=TINY_LOOP, eval_every=0), **kw)


def _diffusion_cfg(**kw):
    cfg = diffusion.DiffusionTrainConfig(unet=configs.TINY_UNET, text=configs.TINY_TEXT, loop=TINY_LOOP, eval_every=0)
    return dataclasses.replace(cfg, **kw)


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    vae.train(_vae_cfg(), dataset, root / "vae", progress=False)
    diffusion.train(_diffusion_cfg(), dataset, root / "vae", root / "diffusion", progress=False)
    return root


def test_vae_stage_writes_vae_with_scale_and_latents(runs, dataset):
    cfg = json.loads((runs / "vae" / "vae" / "config.json").read_text())
    z = np.load(runs / "vae" / "latents.npz")
    assert z["mean"].shape == (16, 4, 8, 8)  # f8c4: 64x64x3 -> 8x8x4
    d = data.load(dataset)
    assert cfg["scaling_factor"] == pytest.approx(1 / z["mean"][~d.heldout].std(), rel=1e-4)
    scores = json.loads((runs / "vae" / "vae_eval.json").read_text())
    assert scores["step"] == 4 and np.isfinite(scores["psnr"])


def _blob(path):
    return loop.read_checkpoint(path)  # what resuming reads: tensors and plain values only


def _state_dict(path):
    return _blob(path)["modules"]


def _assert_same(a, b, what):
    """Equal nested state dicts (modules, EMA modules, optimizer state)."""
    if isinstance(b, dict):
        assert a.keys() == b.keys(), what
        for key in b:
            _assert_same(a[key], b[key], f"{what}.{key}")
    elif isinstance(b, (list, tuple)):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{what}[{i}]")
    elif isinstance(b, torch.Tensor):
        assert torch.equal(a, b), f"{what} differs after resume"
    else:
        assert a == b, f"{what} differs after resume"


@pytest.mark.parametrize("stage", ["vae", "diffusion"])
def test_resume_continues_exactly(stage, runs, dataset, tmp_path):
    """Stopped by its time budget after one step, then resumed: == the uninterrupted four-step run of the
    fixture, weights, EMA weights and optimizer state alike."""
    out_of_time = dataclasses.replace(TINY_LOOP, minutes=0.0)  # stops (with a checkpoint) after the first step
    if stage == "vae":
        vae.train(_vae_cfg(loop=out_of_time), dataset, tmp_path / "vae", progress=False)
        assert _blob(tmp_path / "vae" / "last.pt")["step"] == 1
        # stopped early: none of the stage's outputs yet
        assert not any((tmp_path / "vae" / name).exists() for name in ("vae", "latents.npz", "vae_eval.json"))
        vae.train(_vae_cfg(), dataset, tmp_path / "vae", progress=False)
        assert json.loads((tmp_path / "vae" / "vae_eval.json").read_text())["step"] == 4
    else:
        diffusion.train(_diffusion_cfg(loop=out_of_time), dataset, runs / "vae", tmp_path / "diffusion", progress=False)
        diffusion.train(_diffusion_cfg(), dataset, runs / "vae", tmp_path / "diffusion", progress=False)
    resumed, straight = _blob(tmp_path / stage / "last.pt"), _blob(runs / stage / "last.pt")
    assert resumed["step"] == straight["step"] == 4
    for part in ("modules", "ema", "optimizer"):
        _assert_same(resumed[part], straight[part], part)


def test_diffusion_final_is_swapped_in_whole_and_rewritten_when_stale(runs, dataset, tmp_path):
    run = tmp_path / "diffusion"
    diffusion.train(_diffusion_cfg(), dataset, runs / "vae", run, progress=False)
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("final")) == ["final"]  # no .partial, no .old
    summary = run / "final" / "train_summary.json"
    assert json.loads(summary.read_text())["step"] == 4
    summary.write_text(json.dumps({"step": 2}))  # a final/ from an earlier checkpoint
    diffusion.train(_diffusion_cfg(), dataset, runs / "vae", run, progress=False)  # complete: no training, rewrites
    assert json.loads(summary.read_text())["step"] == 4


def test_resume_with_another_config_says_which_fields_differ(runs, dataset, tmp_path, capsys):
    import shutil

    from latentscape.interfaces import train_cli

    shutil.copytree(runs / "vae", tmp_path / "vae")
    before = (tmp_path / "vae" / "last.pt").read_bytes()
    code = train_cli.main(["train", "vae", "--tiny", "--data", str(dataset), "--runs", str(tmp_path), "--steps", "4",
                           "--batch-size", "4", "--lr", "2e-3", "--minutes", "5", "--checkpoint-every", "3", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "LoopConfig.lr" in err and "--fresh" in err and len(err.strip().splitlines()) == 1
    assert "minutes" not in err and "checkpoint_every" not in err  # those may change between invocations
    assert (tmp_path / "vae" / "last.pt").read_bytes() == before
    with pytest.raises(LatentscapeError, match="LoopConfig.lr"):
        vae.train(_vae_cfg(loop=dataclasses.replace(TINY_LOOP, lr=2e-3)), dataset, tmp_path / "vae", progress=False)
    # the same values (up to the time budget and checkpoint interval) resume
    same = dataclasses.replace(TINY_LOOP, minutes=5.0, checkpoint_every=3, threads=1)
    vae.train(_vae_cfg(loop=same), dataset, tmp_path / "vae", progress=False)


LOOP_FLAG_ERRORS = [
    (["--steps", "0"], "--steps 0"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--checkpoint-every", "0"], "--checkpoint-every 0"),
    (["--procs", "0"], "--procs 0"),
    (["--procs", "3", "--batch-size", "4"], "--procs 3 does not divide the batch size 4"),
    (["--ema-decay", "1"], "--ema-decay 1.0"),
    (["--ema-decay", "-0.5"], "--ema-decay -0.5"),
    (["--ema-warmup", "-1"], "--ema-warmup -1"),
]
CROP_ERRORS = [(["--crop", "12"], "--crop 12"), (["--crop", "72"], "--crop 72"), (["--crop", "0"], "--crop 0")]


@pytest.mark.parametrize("stage, flags, says", [(stage, f, s) for stage in ("vae", "diffusion") for f, s in LOOP_FLAG_ERRORS]
                         + [("vae", f, s) for f, s in CROP_ERRORS])  # --crop is a VAE flag
def test_bad_training_flags_fail_before_any_work(stage, flags, says, dataset, tmp_path, capsys):
    from latentscape.interfaces import train_cli

    code = train_cli.main(["train", stage, "--tiny", "--data", str(dataset), "--runs", str(tmp_path / "runs"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_export_has_no_no_ema_flag(capsys):
    from latentscape.interfaces import train_cli

    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["train", "export", "--no-ema"])
    assert exit_info.value.code == 2


def test_training_reduces_the_vae_loss(dataset, tmp_path):
    cfg = _vae_cfg(loop=dataclasses.replace(TINY_LOOP, steps=30, lr=3e-3, checkpoint_every=30))
    vae.train(cfg, dataset, tmp_path / "vae", progress=False)
    log = [json.loads(line) for line in (tmp_path / "vae" / "log.jsonl").read_text().splitlines()]
    first = vae.evaluate_vae(configs.build_vae(configs.TINY_VAE), data.load(dataset).test.images)
    assert json.loads((tmp_path / "vae" / "vae_eval.json").read_text())["psnr"] > first["psnr"]
    assert log  # the loop logged


def test_export_loads_in_plain_diffusers_and_generates(runs, dataset, tmp_path):
    from diffusers import StableDiffusionPipeline

    out = export.export(runs / "vae", runs / "diffusion", tmp_path / "model", data_path=dataset)
    names = {p.name for p in out.iterdir()}
    assert {"model_index.json", "scheduler", "text_encoder", "tokenizer", "unet", "vae", "latentscape.json"} <= names
    assert not list(out.rglob("*.bin"))  # safetensors only
    manifest = json.loads((out / "latentscape.json").read_text())
    assert np.asarray(manifest["latent_rgb_factors"]).shape == (4, 3) and len(manifest["latent_rgb_bias"]) == 3

    pipe = StableDiffusionPipeline.from_pretrained(out, dtype=torch.float32)
    assert pipe.unet.dtype == torch.float32
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    image = pipe("shape 1, google style", num_inference_steps=2, guidance_scale=3.0, height=64, width=64,
                 generator=torch.Generator().manual_seed(0), output_type="np").images
    assert image.shape == (1, 64, 64, 3) and np.isfinite(image).all()

    # no dtype argument: the fp16 text encoder must come back in the UNet's dtype and generate
    plain = StableDiffusionPipeline.from_pretrained(out)
    assert plain.text_encoder.dtype == plain.unet.dtype
    image = plain("shape 1, google style", num_inference_steps=2, guidance_scale=3.0, height=64, width=64,
                  generator=torch.Generator().manual_seed(0), output_type="np").images
    assert image.shape == (1, 64, 64, 3) and np.isfinite(image).all()

    # a re-export replaces the folder whole and keeps the hand-written model card
    (out / "README.md").write_text("card")
    export.export(runs / "vae", runs / "diffusion", out, data_path=dataset)
    assert (out / "README.md").read_text() == "card"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no model.partial, no model.old


def test_eval_measures(runs, dataset, tmp_path):
    d = data.load(dataset)
    # a training image is its own nearest neighbour: name and style both right
    idx = np.flatnonzero(~d.heldout)[:3]
    assert evaluate.score(d.images[idx], d.names[idx], d.styles[idx], d.train) == {"name_top1": 1.0, "style_acc": 1.0}
    x = torch.rand(4, 3, 16, 16)
    assert metrics.psnr(x, x).min() > 90 and metrics.ssim(x, x).min() == pytest.approx(1.0, abs=1e-4)
    assert core_metrics.mean_pairwise_distance(torch.stack([x[0]] * 3)) == pytest.approx(0.0, abs=1e-3)
    assert core_metrics.mean_pairwise_distance(torch.stack([torch.zeros(3, 16, 16), torch.ones(3, 16, 16)])) == pytest.approx(1.0)

    model = export.export(runs / "vae", runs / "diffusion", tmp_path / "model", data_path=dataset)
    cfg = evaluate.EvalConfig(n_captions=2, steps=2, sweep_prompts=1, sweep_seeds=2, batch=4)
    results = evaluate.main(model, dataset, cfg, device="cpu", runs=tmp_path / "runs")  # default out: <runs>/eval.json
    assert [r["guidance_scale"] for r in results["cfg_sweep"]] == list(evaluate.CFG_SWEEP)
    table = evaluate.markdown(results)
    assert "| CFG | name top-1 |" in table and "| dpmpp_2m | base names (gated) |" in table
    stored = json.loads((tmp_path / "runs" / "eval.json").read_text())
    assert set(stored["adherence"]["samplers"]) == {"euler", "dpmpp_2m"}
    coarse = stored["coarse"]  # one group ("an objects emoji") per style in the synthetic data, 2 seeds each
    assert coarse["n"] == 2 and 1 <= coarse["distinct_names_min"] <= 2 and "Coarse captions (group + style)" in table
    assert set(coarse["per_caption"]) == {"an objects emoji, google style", "an objects emoji, twitter style"}
    assert stored["adherence"]["samplers"]["euler"]["train"]["n"] == 2
    assert set(stored["gates"]) == {"vae.psnr", "vae.ssim", "euler.base.name_top1", "euler.base.style_acc",
                                    "dpmpp_2m.base.name_top1", "dpmpp_2m.base.style_acc", "coarse.distinct_names_mean"}
    assert stored["gates"]["coarse.distinct_names_mean"] == {"value": coarse["distinct_names_mean"], "target": 4.0,
                                                            "pass": coarse["distinct_names_mean"] >= 4}
    # against itself every gated number is "not worse"; a better baseline makes them worse
    again = evaluate.main(model, dataset, dataclasses.replace(cfg, skip_sweep=True, samplers=("euler",)), device="cpu",
                          out=tmp_path / "again.json", baseline=tmp_path / "runs" / "eval.json")
    assert all(c["not_worse"] for c in again["compare"].values()) and "vae.psnr" in again["compare"]
    better = json.loads(json.dumps(stored))
    better["vae"]["psnr"] += 1
    assert not evaluate.compare(stored, better)["vae.psnr"]["not_worse"]
    # a baseline that scored another sample does not compare: refused before anything is generated, and compare() is empty
    other = json.loads(json.dumps(stored))
    other["config"]["n_captions"] = 1024
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(LatentscapeError, match=r"was scored on other captions or settings \(n_captions 1024 there, 2 here\)"):
        evaluate.main(model, dataset, cfg, device="cpu", out=tmp_path / "never.json", baseline=tmp_path / "other.json")
    assert not (tmp_path / "never.json").exists() and evaluate.compare(stored, other) == {}
    other = json.loads(json.dumps(stored))
    other["config"]["sweep_seeds"] = 4  # the coarse measure's seeds: compared only when both scored coarse captions
    assert "sweep_seeds 4 there, 2 here" in evaluate.sample_differences(stored["config"], other)[0]
    del other["coarse"]
    assert evaluate.sample_differences(stored["config"], other) == []


def test_base_name_captions_have_no_skin_tone_and_generation_uses_the_one_loop(runs, dataset, tmp_path, monkeypatch):
    from latentscape import sampling

    d = data.load(dataset)
    tones = d.tones.copy()
    tones[np.flatnonzero(~d.heldout)[:4]] = "light skin tone"
    toned = dataclasses.replace(d, tones=tones)
    base = evaluate.eval_captions(toned, 100, base=True)
    assert base and all(toned.tones[i] == "" and not toned.heldout[i] for i in base)
    assert len(base) == int(((toned.tones == "") & ~toned.heldout).sum())

    model = export.export(runs / "vae", runs / "diffusion", tmp_path / "model", data_path=dataset)
    from latentscape.models.load import load

    family = load(str(model), device="cpu")
    calls = []
    real = sampling.denoise
    monkeypatch.setattr(sampling, "denoise", lambda *a, **k: calls.append(k["sampler"]) or real(*a, **k))
    images = evaluate.generate(family, ["shape 1, google style"] * 2, [3, 3], 7.5, 3, "dpmpp_2m", batch=1)
    assert calls == ["dpmpp_2m", "dpmpp_2m"] and images.shape == (2, 64, 64, 3) and images.dtype == np.uint8
    assert np.array_equal(images[0], images[1])  # one generator per seed, whatever the batch


def test_decoder_finetune_keeps_the_encoder_and_latents(runs, dataset, tmp_path):
    from diffusers import AutoencoderKL

    out = vae.finetune_decoder(_vae_cfg(), dataset, runs / "vae", tmp_path / "vae-decoder", progress=False)
    before, after = AutoencoderKL.from_pretrained(runs / "vae" / "vae"), AutoencoderKL.from_pretrained(out / "vae")
    assert after.config.scaling_factor == before.config.scaling_factor
    for (name, p), q in zip(before.encoder.named_parameters(), after.encoder.parameters()):
        assert torch.equal(p, q), name
    assert any(not torch.equal(p, q) for p, q in zip(before.decoder.parameters(), after.decoder.parameters()))
    assert (out / "latents.npz").read_bytes() == (runs / "vae" / "latents.npz").read_bytes()


@pytest.mark.slow
def test_two_processes_train_what_one_process_trains(runs, dataset, tmp_path):
    """``--procs 2`` (gloo, each process half of every batch) matches a one-process run."""
    import shutil

    from latentscape.interfaces import train_cli

    def cli(folder, *extra):
        shutil.copytree(runs / "vae", folder / "vae")
        train_cli.main(["train", "diffusion", "--tiny", "--data", str(dataset), "--runs", str(folder), "--steps", "4",
                        "--batch-size", "4", "--lr", "1e-3", "--warmup", "1", "--threads", "1", "--checkpoint-every", "2", "--no-progress", "--fp32", *extra])
        blob = _blob(folder / "diffusion" / "last.pt")
        return {**blob["modules"], **{f"ema.{k}": v for k, v in blob["ema"].items()}}

    one, two = cli(tmp_path / "one"), cli(tmp_path / "two", "--procs", "2")
    start = configs.build_unet(configs.TINY_UNET, configs.TINY_TEXT.hidden_size)
    assert (one["unet"]["conv_in.weight"] - start.conv_in.weight.detach()).abs().max() > 1e-3  # it trained
    assert {"ema.unet", "ema.text_encoder"} <= one.keys()  # the EMA weights are compared too
    # Adam's first steps move every weight by about ±lr, so a wrong split of the batch shows up as mean
    # differences of the order of lr; float summation order flips the sign of only a few near-zero gradients.
    for name in one:
        for key, value in one[name].items():
            assert (two[name][key].float() - value.float()).abs().mean() < 0.02 * 1e-3, f"{name}.{key}"


@pytest.mark.parametrize("stage", ["data", "vae", "diffusion", "export", "eval"])
def test_every_stage_has_help(stage, capsys):
    from latentscape.interfaces import train_cli

    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["train", stage, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_decoder_finetune_with_the_sharpening_terms_trains_the_decoder_and_resumes_exactly(runs, dataset, tmp_path):
    """SSIM + feature matching + PatchGAN (adaptive weight): the encoder stays, the discriminator trains and is
    checkpointed, and a run stopped after one step and resumed equals the straight run."""
    from diffusers import AutoencoderKL

    sharp = dict(ssim_weight=0.5, feature_weight=0.5, disc_weight=0.5, disc_start=1, crop=64)
    vae.finetune_decoder(_vae_cfg(**sharp), dataset, runs / "vae", tmp_path / "straight", progress=False)
    logs = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert "d_loss" not in logs[0] and all(k in logs[-1] for k in ("d_loss", "g_loss", "adv_weight", "feature_loss", "ssim_loss"))
    assert all(np.isfinite(v) for v in logs[-1].values())
    blob = _blob(tmp_path / "straight" / "last.pt")
    assert set(blob["modules"]) == {"vae", "disc"} and blob["config"]["disc_weight"] == 0.5
    before = AutoencoderKL.from_pretrained(runs / "vae" / "vae")
    after = AutoencoderKL.from_pretrained(tmp_path / "straight" / "vae")
    assert all(torch.equal(p, q) for p, q in zip(before.encoder.parameters(), after.encoder.parameters()))

    stopped = dict(sharp, loop=dataclasses.replace(TINY_LOOP, minutes=0.0))
    vae.finetune_decoder(_vae_cfg(**stopped), dataset, runs / "vae", tmp_path / "resumed", progress=False)
    vae.finetune_decoder(_vae_cfg(**sharp), dataset, runs / "vae", tmp_path / "resumed", progress=False)
    resumed = _blob(tmp_path / "resumed" / "last.pt")
    for part in ("modules", "ema", "optimizer"):
        _assert_same(resumed[part], blob[part], part)


def test_sharpening_flags_need_decoder_only_and_non_negative_values(dataset, tmp_path, capsys):
    from latentscape.interfaces import train_cli

    for flags, says in ((["--disc-weight", "0.5"], "--disc-weight needs --decoder-only"),
                        (["--decoder-only", "--ssim-weight", "-1"], "--ssim-weight -1.0 is not allowed")):
        code = train_cli.main(["train", "vae", "--tiny", "--data", str(dataset), "--runs", str(tmp_path / "runs"), *flags])
        err = capsys.readouterr().err
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_diffusion_with_caption_levels_trains_on_every_level_and_records_the_mix(runs, dataset, tmp_path):
    from transformers import CLIPTokenizer

    mix = (0.4, 0.2, 0.2, 0.2)
    diffusion.train(_diffusion_cfg(caption_mix=mix), dataset, runs / "vae", tmp_path / "diffusion", progress=False)
    assert _blob(tmp_path / "diffusion" / "last.pt")["config"]["caption_mix"] == list(mix)
    # the group captions' words are whole tokens of the trained vocabulary ("emoji" is in no fine caption)
    assert CLIPTokenizer.from_pretrained(tmp_path / "diffusion" / "tokenizer").tokenize("objects emoji") == ["objects</w>", "emoji</w>"]
    assert CLIPTokenizer.from_pretrained(runs / "diffusion" / "tokenizer").tokenize("emoji") != ["emoji</w>"]
    # the level drawn for each item is a pure function of the step's generator (resumable), and every level is drawn
    p = diffusion.check_caption_mix(mix)
    draws = torch.cat([torch.multinomial(p, 64, replacement=True, generator=loop.step_generator(0, s)) for s in range(4)])
    assert set(draws.tolist()) == {0, 1, 2, 3}
    with pytest.raises(LatentscapeError, match="caption_mix"):
        diffusion.check_caption_mix((1.0, -1.0, 0.0, 0.0))


def test_caption_mix_flag_is_checked_before_any_work(dataset, tmp_path, capsys):
    from latentscape.interfaces import train_cli

    for value in ("0.5,abc", "1,1", "0,0,0,0"):
        code = train_cli.main(["train", "diffusion", "--tiny", "--data", str(dataset), "--runs", str(tmp_path / "runs"),
                               "--caption-mix", value])
        err = capsys.readouterr().err
        assert code == 2 and "--caption-mix" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_diffusion_init_starts_from_an_exported_model_and_a_checkpoint_wins(runs, dataset, tmp_path):
    """--init: with a zero learning rate the run's EMA weights (what final/ holds) are the init model's own, the
    tokenizer is its tokenizer (not one trained on this run's captions), the run records the folder, the EMA
    flags reach the loop, and a second invocation resumes the checkpoint instead of starting over."""
    import shutil

    from safetensors.torch import load_file

    from latentscape.interfaces import train_cli

    model = export.export(runs / "vae", runs / "diffusion", tmp_path / "model", data_path=dataset)
    shutil.copytree(runs / "vae", tmp_path / "runs" / "vae")
    argv = ["train", "diffusion", "--tiny", "--data", str(dataset), "--runs", str(tmp_path / "runs"), "--init", str(model),
            "--caption-mix", "0.7,0.1,0.1,0.1", "--steps", "2", "--batch-size", "4", "--lr", "0", "--warmup", "1",
            "--ema-decay", "0.5", "--ema-warmup", "0", "--checkpoint-every", "2", "--no-progress"]
    assert train_cli.main(argv) == 0
    run = tmp_path / "runs" / "diffusion"
    for part, weights in (("unet", "diffusion_pytorch_model.safetensors"), ("text_encoder", "model.safetensors")):
        start, final = load_file(model / part / weights), load_file(run / "final" / part / weights)
        assert start.keys() == final.keys()
        for k in start:
            assert torch.equal(final[k], start[k].float()), f"{part}.{k} is not the init model's"
    for name in ("vocab.json", "merges.txt"):
        assert (run / "tokenizer" / name).read_bytes() == (model / "tokenizer" / name).read_bytes()
    blob = _blob(run / "last.pt")
    assert blob["config"]["init"] == str(model.resolve()) and blob["step"] == 2
    assert blob["config"]["LoopConfig"]["ema_decay"] == 0.5 and blob["config"]["LoopConfig"]["ema_warmup"] == 0
    # exported, the manifest tells the whole training: this run and the one it started from
    trained = json.loads((export.export(runs / "vae", run, tmp_path / "v2", data_path=dataset) / "latentscape.json").read_text())["trained"]
    assert trained["diffusion"]["step"] == 2
    assert trained["diffusion"]["init"] == {"model": "model", **json.loads((model / "latentscape.json").read_text())["trained"]["diffusion"]}
    assert trained["diffusion"]["init"]["step"] == 4
    assert "init" not in json.loads((model / "latentscape.json").read_text())["trained"]["diffusion"]  # a run from scratch has none
    # the same schedule again: nothing left to do, the checkpoint is kept
    before = (run / "last.pt").read_bytes()
    assert train_cli.main(argv) == 0
    assert (run / "last.pt").read_bytes() == before


def test_diffusion_init_run_resumes_from_its_checkpoint_not_from_the_init(runs, dataset, tmp_path):
    """Stopped after one step and resumed == uninterrupted: on resume the checkpoint's weights win over --init's."""
    model = export.export(runs / "vae", runs / "diffusion", tmp_path / "model", data_path=dataset)
    straight = _diffusion_cfg(init=str(model))
    diffusion.train(straight, dataset, runs / "vae", tmp_path / "straight", progress=False)
    stopped = dataclasses.replace(straight, loop=dataclasses.replace(TINY_LOOP, minutes=0.0))
    diffusion.train(stopped, dataset, runs / "vae", tmp_path / "resumed", progress=False)
    assert _blob(tmp_path / "resumed" / "last.pt")["step"] == 1
    diffusion.train(straight, dataset, runs / "vae", tmp_path / "resumed", progress=False)
    a, b = _blob(tmp_path / "resumed" / "last.pt"), _blob(tmp_path / "straight" / "last.pt")
    assert a["step"] == b["step"] == 4
    for part in ("modules", "ema", "optimizer"):
        _assert_same(a[part], b[part], part)


def test_diffusion_init_of_another_shape_or_not_a_model_fails_in_one_sentence(runs, dataset, tmp_path, capsys):
    from latentscape.interfaces import train_cli

    model = export.export(runs / "vae", runs / "diffusion", tmp_path / "model", data_path=dataset)
    wider = dataclasses.replace(configs.TINY_UNET, block_out_channels=(16, 32, 48))
    with pytest.raises(LatentscapeError, match=r"another shape .*unet\.block_out_channels"):
        diffusion.train(_diffusion_cfg(unet=wider, init=str(model)), dataset, runs / "vae", tmp_path / "wide", progress=False)
    assert not (tmp_path / "wide" / "last.pt").exists()
    (tmp_path / "empty").mkdir()
    capsys.readouterr()  # the export's progress bars
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        code = train_cli.main(["train", "diffusion", "--tiny", "--data", str(dataset), "--runs", str(tmp_path / "runs"),
                               "--init", str(folder)])
        err = capsys.readouterr().err
        assert code == 2 and "--init" in err and "unet/config.json" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_eval_can_score_only_the_gated_set_and_skip_the_vae(runs, dataset, tmp_path, capsys):
    """--sets base --no-vae: only the base-name captions are generated (a third of the cost), no VAE numbers, and the
    gates and the comparison hold just the base-name numbers; an unknown set is one sentence, nothing written."""
    from latentscape.interfaces import train_cli

    model = export.export(runs / "vae", runs / "diffusion", tmp_path / "model", data_path=dataset)
    full = evaluate.main(model, dataset, evaluate.EvalConfig(n_captions=2, steps=2, batch=4, skip_sweep=True, coarse_prompts=0,
                                                             samplers=("euler",)), device="cpu", out=tmp_path / "full.json")
    capsys.readouterr()
    argv = ["train", "eval", "--model", str(model), "--data", str(dataset), "--runs", str(tmp_path / "runs"), "--captions", "2",
            "--sampling-steps", "2", "--eval-batch", "4", "--samplers", "euler", "--no-sweep", "--coarse-prompts", "0"]
    assert train_cli.main(argv + ["--sets", "base", "--no-vae", "--baseline", str(tmp_path / "full.json")]) == 0
    part = json.loads((tmp_path / "runs" / "eval.json").read_text())
    assert "vae" not in part and set(part["adherence"]["samplers"]["euler"]) == {"base"}
    assert part["adherence"]["samplers"]["euler"]["base"] == full["adherence"]["samplers"]["euler"]["base"]  # same images
    assert set(part["gates"]) == set(part["compare"]) == {"euler.base.name_top1", "euler.base.style_acc"}
    capsys.readouterr()
    assert train_cli.main(argv + ["--out", str(tmp_path / "bad.json"), "--sets", "base,tones"]) == 2
    err = capsys.readouterr().err
    assert "tones" in err and "base, train, heldout" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad.json").exists()
