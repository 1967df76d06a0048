"""The invert workflow: the inversion cache is hit on the second use (memory, then disk), entries from outside
are validated, and an inversion file replays to the image's VAE round trip on the embedded model."""

import numpy as np
import pytest
import torch
from PIL import Image

import latentscape
from latentscape.errors import LatentscapeError
from latentscape.workflows import invert as invert_workflow
from latentscape.workflows.invert import InvertConfig, invert_image, measure, reconstruct_file
from latentscape.workflows.inversion_file import InversionCache, load_inversion, save_inversion


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return latentscape.load(str(tiny_sd))


def picture(path, size=32, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_second_use_hits_the_cache_and_never_inverts_again(sd, tmp_path, monkeypatch):
    image = picture(tmp_path / "a.png")
    cache = InversionCache(tmp_path / "cache")
    first = invert_image(sd, image, prompt="a cat", steps=3, cache=cache)
    assert not first.cached and len(list((tmp_path / "cache").glob("*.safetensors"))) == 1

    def no_inversion(*args, **kwargs):
        raise AssertionError("inverted again")

    monkeypatch.setattr(invert_workflow, "invert_latents", no_inversion)
    again = invert_image(sd, image, prompt="a cat", steps=3, cache=cache)  # same process: memory
    fresh = invert_image(sd, image, prompt="a cat", steps=3, cache=InversionCache(tmp_path / "cache"))  # new process: disk
    assert again.cached and fresh.cached and cache.hits["memory"] == 1
    for hit in (again, fresh):
        assert torch.equal(hit.inversion.noise, first.inversion.noise)
        assert torch.equal(hit.inversion.step_noise.noise, first.inversion.step_noise.noise)
    with pytest.raises(AssertionError, match="inverted again"):  # another prompt is another key
        invert_image(sd, image, prompt="a dog", steps=3, cache=cache)


def test_a_tampered_cache_entry_is_ignored_and_rewritten(sd, tmp_path):
    image = picture(tmp_path / "a.png", seed=1)
    first = invert_image(sd, image, steps=2, cache=InversionCache(tmp_path / "cache"))
    (entry,) = (tmp_path / "cache").glob("*.safetensors")
    bad = first.inversion.step_noise.noise.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    from dataclasses import replace

    from latentscape.sampling import StepNoise

    broken = replace(first.inversion, step_noise=StepNoise(bad, first.inversion.step_noise.scales))
    save_inversion(entry, broken, first.image_latents, first.meta, first.info)
    with pytest.raises(LatentscapeError, match="finite"):
        load_inversion(entry)
    again = invert_image(sd, image, steps=2, cache=InversionCache(tmp_path / "cache"))
    assert not again.cached and bool(torch.isfinite(load_inversion(entry)[0].step_noise.noise).all())


def test_cache_folder_comes_from_the_environment(sd, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSCAPE_INVERSION_CACHE", str(tmp_path / "env-cache"))
    invert_image(sd, picture(tmp_path / "a.png", seed=2), steps=2)
    assert len(list((tmp_path / "env-cache").glob("*.safetensors"))) == 1


def test_image_off_the_grid_is_refused_unless_resized(sd, tmp_path):
    image = picture(tmp_path / "odd.png", size=30)
    with pytest.raises(LatentscapeError, match="--resize stretch"):
        invert_image(sd, image, steps=2, cache=False)
    assert invert_image(sd, image, steps=2, resize="crop", cache=False).pixels.shape[-2:] == (24, 24)


def test_invert_file_replays_to_the_vae_round_trip_on_the_embedded_model(embedded, tmp_path):
    from latentscape.train import data

    path = tmp_path / "emoji.png"
    test = data.load().test
    Image.fromarray(test.images[0]).save(path)
    result = invert_image(embedded, path, InvertConfig(image=str(path), prompt=str(test.captions[0]), steps=10), cache=False)
    stats = measure(embedded, result)
    assert stats["latent_max_error"] < 1e-4 and abs(stats["psnr_db"] - stats["ceiling_psnr_db"]) < 0.05
    save_inversion(tmp_path / "z.safetensors", result.inversion, result.image_latents, result.meta, result.info)
    replayed = np.asarray(reconstruct_file(embedded, tmp_path / "z.safetensors")[0]).astype(int)
    vae = np.asarray(invert_workflow.decode_images(embedded, result.image_latents)[0]).astype(int)
    assert np.abs(replayed - vae).max() <= 1

    # ddim within 3 dB of the ceiling at the target's own 25 steps (at 10, v3's sharper decoder turns plain DDIM's
    # latent error into 3.6 dB on average: bench/bench_inversion.py)
    ddim = invert_image(embedded, path, InvertConfig(image=str(path), prompt=str(test.captions[0]), method="ddim", steps=25), cache=False)
    gap = measure(embedded, ddim)
    assert gap["ceiling_psnr_db"] - 3 < gap["psnr_db"] < gap["ceiling_psnr_db"] + 0.5


def test_a_path_between_two_exact_inversions_starts_and_ends_on_the_images(embedded, tmp_path):
    from latentscape.inversion import interpolate_inversions
    from latentscape.train import data

    test = data.load().test
    results = []
    for k in (0, 1):
        Image.fromarray(test.images[k]).save(tmp_path / f"{k}.png")
        results.append(invert_image(embedded, tmp_path / f"{k}.png", steps=8, cache=False))
    path = interpolate_inversions(results[0].inversion, results[1].inversion, [0.0, 0.5, 1.0])
    frames = invert_workflow.decode_images(embedded, invert_workflow.reconstruct(embedded, path))
    for frame, result in ((frames[0], results[0]), (frames[2], results[1])):
        vae = invert_workflow.decode_images(embedded, result.image_latents)[0]
        assert np.abs(np.asarray(frame).astype(int) - np.asarray(vae).astype(int)).max() <= 1
    middle = np.asarray(frames[1]).astype(int)
    assert all(np.abs(middle - np.asarray(f).astype(int)).mean() > 2 for f in (frames[0], frames[2]))


@pytest.mark.parametrize("sampler", ["heun", "euler_a"])
def test_an_inversion_over_another_sampler_saves_loads_and_replays(sd, tmp_path, sampler):
    """A second-order sampler's 2·steps − 1 maps and a stochastic sampler's step seed survive the file."""
    from latentscape.inversion import replay

    result = invert_image(sd, picture(tmp_path / "a.png"), steps=3, sampler=sampler, step_seed=9, cache=False)
    path = save_inversion(tmp_path / "z.safetensors", result.inversion, result.image_latents, result.meta, result.info)
    loaded, image, _, record = load_inversion(path)
    assert loaded.sampler == sampler and record["sampler"] == sampler
    assert loaded.step_seed == (9 if sampler == "euler_a" else None)
    cond = sd.encode_prompts([""])
    assert float((replay(sd, loaded, cond) - image).abs().max()) <= 1e-4
    other = invert_image(sd, picture(tmp_path / "a.png"), steps=3, sampler=sampler, step_seed=10, cache=False)
    assert (other.info["key"] != result.info["key"]) == (sampler == "euler_a")  # the step seed keys stochastic samplers only
