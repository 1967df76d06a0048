"""Latent files are untrusted (issue 12): the header is checked before the tensor is read; NaN/inf, zero
sizes, non-numeric scales and oversized tensors are refused in one sentence; files get normal permissions."""

import os
import stat

import numpy as np
import pytest
import torch
from untrusted_files import good_latent_meta, latent_file_bytes, safetensors_bytes

from latentscape.errors import LatentscapeError
from latentscape.io.latents import LatentMeta, load_latents, save_latents
from latentscape.safetensors_header import read_header


def _write(tmp_path, data: bytes, name="z.safetensors"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_round_trip_and_normal_permissions(tmp_path):
    meta = LatentMeta(family="sd", model="m", channels=4, scale=0.5, shift=0.0, width=32, height=32)
    old = os.umask(0o022)
    try:
        path = save_latents(tmp_path / "z.safetensors", torch.ones(1, 4, 4, 4), meta)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # 0666 & ~umask, like every other output (was 0600)
    latents, back = load_latents(path)
    assert back == meta and torch.equal(latents, torch.ones(1, 4, 4, 4))
    assert [p.name for p in tmp_path.iterdir()] == ["z.safetensors"]


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_latents_are_refused(tmp_path, value):
    arr = np.zeros((1, 4, 4, 4), np.float32)
    arr[0, 1, 2, 3] = value
    path = _write(tmp_path, latent_file_bytes(arr, good_latent_meta()))
    with pytest.raises(LatentscapeError, match=r"latent file '.*' holds 1 NaN or infinite values; accepted: finite latents"):
        load_latents(path)


@pytest.mark.parametrize("shape", [(1, 4, 0, 4), (0, 4, 4, 4), (4, 4, 4)])
def test_zero_size_or_wrong_rank_is_refused(tmp_path, shape):
    path = _write(tmp_path, latent_file_bytes(np.zeros(shape, np.float32), good_latent_meta()))
    with pytest.raises(LatentscapeError, match=r"holds latents of shape .*; accepted: \(batch, channels, height, width\), none of them 0"):
        load_latents(path)


@pytest.mark.parametrize("field, raw, message", [
    ("scale", '"abc"', "metadata field scale is 'abc'; accepted: a finite number."),
    ("scale", "NaN", "metadata field scale is NaN; accepted: a finite number."),
    ("scale", "0", "metadata field scale is 0; accepted: a number > 0."),
    ("shift", "[1]", "metadata field shift is [1]; accepted: a finite number."),
    ("width", "0", "metadata field width is 0; accepted: a number >= 1."),
    ("channels", '"4"', "metadata field channels is '4'; accepted: a whole number."),
    ("family", "5", "metadata field family is 5; accepted: a string."),
    ("scale", "{not json", "metadata field scale is '{not json', which is not JSON."),
])
def test_metadata_is_typed(tmp_path, field, raw, message):
    path = _write(tmp_path, latent_file_bytes(np.zeros((1, 4, 4, 4), np.float32), good_latent_meta(), raw_metadata={field: raw}))
    with pytest.raises(LatentscapeError) as info:
        load_latents(path)
    assert str(info.value).endswith(message) and str(info.value).startswith("latent file '")


def test_other_refusals(tmp_path):
    z = np.zeros((1, 4, 4, 4), np.float32)
    no_meta = _write(tmp_path, latent_file_bytes(z), "a.safetensors")
    with pytest.raises(LatentscapeError, match="lacks latentscape metadata"):
        load_latents(no_meta)
    ints = _write(tmp_path, latent_file_bytes(z, good_latent_meta(), dtype="I32"), "b.safetensors")
    with pytest.raises(LatentscapeError, match="holds I32 latents; accepted: a float tensor"):
        load_latents(ints)
    channels = _write(tmp_path, latent_file_bytes(z, good_latent_meta(channels=16)), "c.safetensors")
    with pytest.raises(LatentscapeError, match="says 16 channels but its latents have 4"):
        load_latents(channels)
    huge = _write(tmp_path, latent_file_bytes(z, good_latent_meta(width=100_000, height=100_000)), "d.safetensors")
    with pytest.raises(LatentscapeError, match="decodes to 100000x100000 is 10,000 Mpx, above the 4.19 Mpx limit for sd models"):
        load_latents(huge)


def test_latent_value_bound_is_checked_from_the_header(tmp_path, monkeypatch):
    path = _write(tmp_path, latent_file_bytes(np.zeros((1, 4, 8, 8), np.float32), good_latent_meta(64, 64)))
    monkeypatch.setenv("LATENTSCAPE_MAX_LATENT_VALUES", "255")
    with pytest.raises(LatentscapeError, match="holds 256 latent values, above the limit of 255.*LATENTSCAPE_MAX_LATENT_VALUES"):
        load_latents(path)


def _tensor(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize("data, message", [
    (b"\x01\x02", "it is 2 bytes long, shorter than the 8-byte header length"),
    (safetensors_bytes({"latents": _tensor()}, b"\x00" * 8, length=10**12), "announce a 1,000,000,000,000-byte header but only"),
    (safetensors_bytes(b"\xff\xfe not json"), "its header is not JSON text"),
    (safetensors_bytes([1, 2]), "its header is JSON but not an object of tensors"),
    (safetensors_bytes({"latents": 5}), "tensor 'latents' is described by int, not an object"),
    (safetensors_bytes({"latents": _tensor(shape=(-1,))}, b"\x00" * 8), "has shape [-1]; expected a list"),
    (safetensors_bytes({"latents": _tensor(offsets=(0, 80))}, b"\x00" * 8), "lies at bytes 0..80, outside the file's 8 data bytes"),
    (safetensors_bytes({"latents": _tensor(offsets=(0, 4))}, b"\x00" * 4), "is F32 of shape (2,) (8 bytes) but spans 4 bytes"),
    (safetensors_bytes({"a": _tensor(), "b": _tensor(offsets=(4, 12))}, b"\x00" * 12), "overlaps the tensor before it"),
    (safetensors_bytes({"a": _tensor(offsets=(4, 12))}, b"\x00" * 12), "bytes 0..4 before tensor 'a' belong to no tensor"),
    (safetensors_bytes({"a": _tensor()}, b"\x00" * 12), "its last 4 bytes belong to no tensor"),
    (safetensors_bytes({"__metadata__": {"k": 1}}), "its __metadata__ is not an object of strings"),
    (safetensors_bytes({"a": _tensor(offsets=(0, True))}, b"\x00" * 8), "has data_offsets [0, true]; expected [begin, end]"),
])
def test_damaged_headers_are_one_sentence(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(LatentscapeError) as info:
        load_latents(path)
    assert message in str(info.value) and "is not a readable .safetensors latent file" in str(info.value)


def test_header_length_bound(tmp_path, monkeypatch):
    padded = safetensors_bytes(b'{"latents": ' + b" " * 2_000_000 + b'{"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}')
    path = _write(tmp_path, padded)
    with pytest.raises(LatentscapeError, match="declares a 2,000,067-byte header, above the limit of 1,048,576 bytes.*LATENTSCAPE_MAX_LATENT_HEADER"):
        load_latents(path)
    assert read_header(path, name="x", bound="max_model_header").tensors["latents"].shape == (0,)  # a model's bound is larger
