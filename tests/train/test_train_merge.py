"""`latentscape train merge`: (1 - alpha) * base + alpha * tuned for the UNet and text encoder, everything else
from the fine-tune, recorded in latentscape.json; bad input is one sentence, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from latentscape.interfaces.train_cli import main
from latentscape.models.load import EMBEDDED_DIR
from latentscape.train import merge

UNET = "unet/diffusion_pytorch_model.safetensors"
TE = "text_encoder/model.safetensors"
VAE = "vae/diffusion_pytorch_model.safetensors"

pytestmark = pytest.mark.skipif(not (EMBEDDED_DIR / "model_index.json").is_file(), reason="the embedded model is not exported")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The embedded model as the base, and a "fine-tune" of it: UNet weights + 1, text encoder weights - 2, a VAE
    whose weights are halved (so it can be told apart), and a manifest of its own."""
    root = tmp_path_factory.mktemp("merge")
    base, tuned = root / "base", root / "tuned"
    shutil.copytree(EMBEDDED_DIR, base)
    shutil.copytree(EMBEDDED_DIR, tuned)
    for name, change in ((UNET, lambda t: t + 1), (TE, lambda t: t - 2), (VAE, lambda t: t / 2)):
        w = load_file(str(tuned / name))
        save_file({k: change(v) if v.is_floating_point() else v for k, v in w.items()}, str(tuned / name), metadata={"format": "pt"})
    manifest = json.loads((tuned / "latentscape.json").read_text())
    manifest["trained"]["diffusion"] = {"step": 700, "note": "the fine-tune"}
    (tuned / "latentscape.json").write_text(json.dumps(manifest))
    return base, tuned


def test_merge_interpolates_unet_and_text_encoder_and_keeps_the_rest_of_the_fine_tune(pair, tmp_path):
    base, tuned = pair
    out = merge.merge(base, tuned, 0.25, tmp_path / "m")
    a, b, m = (load_file(str(f / UNET)) for f in (base, tuned, out))
    for k in list(a)[:20]:
        assert m[k].dtype == b[k].dtype == torch.float16
        expected = torch.lerp(a[k].float(), b[k].float(), 0.25).half()
        assert torch.equal(m[k], expected), k
        assert torch.allclose(m[k].float(), a[k].float() + 0.25, atol=2e-3 * (1 + a[k].float().abs().max().item()))
    te_a, te_m = load_file(str(base / TE)), load_file(str(out / TE))
    k = next(k for k in te_a if te_a[k].is_floating_point())
    assert torch.allclose(te_m[k].float(), te_a[k].float() - 0.5, atol=5e-3 * (1 + te_a[k].float().abs().max().item()))
    assert (out / VAE).read_bytes() == (tuned / VAE).read_bytes()  # the VAE is the fine-tune's
    record = json.loads((out / "latentscape.json").read_text())["trained"]
    assert record["diffusion"]["note"] == "the fine-tune"
    assert record["merge"]["alpha"] == 0.25 and record["merge"]["components"] == ["text_encoder", "unet"]
    assert record["merge"]["unet_sha256"]["base"] != record["merge"]["unet_sha256"]["tuned"]
    assert record["merge"]["base_diffusion"]["step"] == json.loads((base / "latentscape.json").read_text())["trained"]["diffusion"]["step"]
    assert not (tmp_path / "m.partial").exists()
    # the ends are the two models exactly, and the result loads as a model
    assert all(torch.equal(v, a[k]) for k, v in load_file(str(merge.merge(base, tuned, 0.0, tmp_path / "zero") / UNET)).items())
    assert all(torch.equal(v, b[k]) for k, v in load_file(str(merge.merge(base, tuned, 1.0, tmp_path / "one") / UNET)).items())
    from latentscape.models.load import load

    model = load(str(out), device="cpu")
    assert model.default_size() == (64, 64) and model.dtype == torch.float32


def test_train_merge_cli_and_bad_input_in_one_sentence(pair, tmp_path, capsys):
    base, tuned = pair
    assert main(["train", "merge", "--base", str(base), "--tuned", str(tuned), "--alpha", "0.5", "--out", str(tmp_path / "ok")]) == 0
    assert "merged" in capsys.readouterr().out and (tmp_path / "ok" / UNET).is_file()
    other = tmp_path / "other"
    shutil.copytree(base, other)
    config = json.loads((other / "unet" / "config.json").read_text())
    config["cross_attention_dim"] = 999
    (other / "unet" / "config.json").write_text(json.dumps(config))
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    cases = [
        (["--alpha", "1.5"], "--alpha 1.5 is not allowed"),
        (["--alpha", "nan"], "--alpha nan is not allowed"),
        (["--base", str(tmp_path / "missing")], "has no unet/config.json"),
        (["--tuned", str(other)], "different unet configs"),
        (["--out", str(keep)], "holds no model"),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for change, says in cases:
        argv = {"--base": str(base), "--tuned": str(tuned), "--alpha": "0.5", "--out": str(tmp_path / "new")}
        argv.update(dict(zip(change[::2], change[1::2])))
        code = main(["train", "merge", *[x for kv in argv.items() for x in kv]])
        err = capsys.readouterr().err
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, (change, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, the other folder untouched
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]
