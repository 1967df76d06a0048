"""Bounds on sizes and on untrusted image files (issue 12): refused before anything is allocated, in one sentence."""

import logging

import numpy as np
import pytest
from PIL import Image
from untrusted_files import animated_gif_bytes, png_claiming_size, png_with_text

from latentscape import limits
from latentscape.errors import LatentscapeError
from latentscape.io.images import check_size, fit_size, load_image, parse_size
from latentscape.io.recipe import read_recipe


def test_parse_size_refuses_zero_negative_and_absurd_sizes():
    assert parse_size("512x768") == (512, 768)
    for text in ("0x0", "0x512", "512x0"):
        with pytest.raises(LatentscapeError, match="at least 1 pixel"):
            parse_size(text)
    with pytest.raises(LatentscapeError, match="expected WIDTHxHEIGHT"):
        parse_size("-64x64")
    with pytest.raises(LatentscapeError, match="--size 100000x100000 is 10,000 Mpx, above the 4.19 Mpx limit"):
        parse_size("100000x100000")
    with pytest.raises(LatentscapeError, match="expected WIDTHxHEIGHT"):
        parse_size("9" * 5000 + "x1")  # int() would refuse the digits with a traceback


def test_pixel_limit_per_family_env_and_keyword(monkeypatch):
    assert limits.pixel_limit("sd") == limits.FAMILY_MAX_PIXELS["sd"] == 4 * 2**20
    limits.check_pixels(2048, 2048, family="sd")
    with pytest.raises(LatentscapeError, match="above the 4.19 Mpx limit for sdxl models.*LATENTSCAPE_MAX_PIXELS"):
        limits.check_pixels(2048, 2056, family="sdxl")
    limits.check_pixels(4096, 4096, family="sd", max_pixels=16 * 2**20)  # the keyword raises it
    monkeypatch.setenv("LATENTSCAPE_MAX_PIXELS", str(64 * 64))
    limits.check_pixels(64, 64, family="sd")
    with pytest.raises(LatentscapeError, match="72x64 is 0.00461 Mpx, above the 0.0041 Mpx limit"):
        limits.check_pixels(72, 64, family="sd")
    with pytest.raises(LatentscapeError, match="size 16x16 is 0.000256 Mpx, above the 0.000255 Mpx limit"):
        limits.check_pixels(16, 16, max_pixels=255)
    monkeypatch.setenv("LATENTSCAPE_MAX_PIXELS", "lots")
    with pytest.raises(LatentscapeError, match=r"environment variable LATENTSCAPE_MAX_PIXELS \('lots'\) must be a whole number of pixels > 0"):
        limits.pixel_limit("sd")


def test_check_size_bounds_a_recipe_size():
    with pytest.raises(LatentscapeError, match="size 4096x4096 is 16.8 Mpx, above the 4.19 Mpx limit for any model"):
        check_size(4096, 4096, multiple=8)


def test_untrained_size_warns_with_the_models_own_size(caplog):
    with caplog.at_level(logging.WARNING, logger="latentscape.limits"):
        assert not limits.warn_untrained_size(96, 64, trained=(64, 64), model="warn-test")
        assert limits.warn_untrained_size(512, 512, trained=(64, 64), model="warn-test")
        assert not limits.warn_untrained_size(512, 512, trained=(64, 64), model="warn-test")  # once per process
        assert limits.warn_untrained_size(16, 64, trained=(64, 64), model="warn-test")
    assert len(caplog.records) == 2
    assert "512x512 is far from the 64x64 that model 'warn-test' was trained for" in caplog.text


def test_decompression_bomb_refused_from_the_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming_size(100_000, 100_000))  # 10 Gpx: 30 GB if decoded
    with pytest.raises(LatentscapeError, match="100000x100000 = 10,000 Mpx, above the 67.1 Mpx limit on input images"):
        load_image(bomb)
    with pytest.raises(LatentscapeError, match="limit on input images"):
        read_recipe(bomb)


def test_image_file_limit_env(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    Image.new("RGB", (16, 16)).save(path)
    monkeypatch.setenv("LATENTSCAPE_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(LatentscapeError, match="16x16 = 0.000256 Mpx, above the 0.0001 Mpx limit.*LATENTSCAPE_MAX_IMAGE_PIXELS"):
        load_image(path)
    monkeypatch.setenv("LATENTSCAPE_MAX_IMAGE_PIXELS", "256")
    assert load_image(path).size == (16, 16)


def test_large_image_refused_before_encoding():
    big = Image.new("RGB", (2056, 2048))
    with pytest.raises(LatentscapeError, match="image at 2056x2048 is 4.21 Mpx, above the 4.19 Mpx limit"):
        fit_size(big, 8, name="image")


def test_text_chunk_bomb_refused(tmp_path, monkeypatch):
    bomb = png_with_text(tmp_path / "t.png", {"latentscape": "a" * (2 << 20)}, compressed=True)  # 2 MiB -> a few KB
    assert bomb.stat().st_size < 20_000
    with pytest.raises(LatentscapeError, match="text chunks above the limit of 1,048,576 bytes each.*text-chunk bomb"):
        read_recipe(bomb)
    with pytest.raises(LatentscapeError, match="text-chunk bomb"):
        load_image(bomb)
    monkeypatch.setenv("LATENTSCAPE_MAX_TEXT_CHUNK", str(4 << 20))
    with pytest.raises(LatentscapeError, match="the recipe in .* is not valid JSON"):  # now read, and judged by the schema
        read_recipe(bomb)
    from PIL import PngImagePlugin

    assert PngImagePlugin.MAX_TEXT_CHUNK == 1 << 20 and Image.MAX_IMAGE_PIXELS == 89478485  # restored after reading


def test_animated_images_are_refused_and_multipage_tiff_gives_page_one(tmp_path):
    gif = tmp_path / "anim.gif"
    gif.write_bytes(animated_gif_bytes(3))
    with pytest.raises(LatentscapeError, match="'.*anim.gif' is an animated GIF with 3 frames; latentscape reads still images only"):
        load_image(gif)
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    webp, apng = tmp_path / "anim.webp", tmp_path / "anim.png"
    frames[0].save(webp, save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(apng, save_all=True, append_images=frames[1:], duration=100)
    for path, kind in ((webp, "WEBP"), (apng, "PNG")):
        with pytest.raises(LatentscapeError, match=f"is an animated {kind} with 2 frames"):
            load_image(path)
    tiff = tmp_path / "pages.tiff"
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    assert load_image(tiff).getpixel((0, 0)) == (255, 0, 0)


def test_float_tiff_in_unit_range_is_not_black(tmp_path):
    path = tmp_path / "float.tiff"
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), mode="F").save(path)
    assert load_image(path).getpixel((0, 0)) == (128, 128, 128)
    bright = tmp_path / "bright.tiff"
    Image.fromarray(np.full((4, 4), 200.0, dtype=np.float32), mode="F").save(bright)
    assert load_image(bright).getpixel((0, 0)) == (200, 200, 200)  # 0-255 float data keeps its scale


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a" + b"\xff" * 30, b"II*\x00" + b"\x01" * 50,
                                  b"\xff\xd8\xff\xe0" + b"\x00" * 30, b"RIFF\x10\x00\x00\x00WEBPVP8 "])
def test_damaged_image_bytes_are_one_sentence(tmp_path, data):
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    with pytest.raises(LatentscapeError, match="is not an image that can be read"):
        load_image(path)
