import numpy as np
import pytest
import torch
from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io.images import (
    check_size, fit_size, load_image, nearest_multiple, parse_size, pil_to_tensor, tensor_to_pil, tensor_to_uint8, to_rgb,
)


def test_modes_become_rgb_on_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    out = to_rgb(rgba)
    assert out.mode == "RGB" and out.getpixel((1, 1)) == (255, 255, 255) and out.getpixel((0, 0)) == (255, 0, 0)
    assert to_rgb(Image.new("LA", (2, 2), (0, 0))).getpixel((0, 0)) == (255, 255, 255)
    p = Image.new("P", (2, 2))
    p.putpalette([0, 255, 0] * 256)
    assert to_rgb(p).getpixel((0, 0)) == (0, 255, 0)
    assert to_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    i16 = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))
    assert i16.mode.startswith("I")
    assert to_rgb(i16).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.fromarray(np.full((2, 2), 32896, dtype=np.uint16))).getpixel((0, 0)) == (128, 128, 128)


def test_16_bit_png_file(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(path)
    assert load_image(path).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (16, 8), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif)
    assert load_image(path).size == (8, 16)


def test_not_an_image_and_missing(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    with pytest.raises(LatentscapeError, match="is not an image that can be read"):
        load_image(bad)
    with pytest.raises(LatentscapeError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_size_errors_name_the_nearest_valid_size():
    im = Image.new("RGB", (500, 333))
    with pytest.raises(LatentscapeError, match=r"500x333.*multiple of 8.*nearest valid size is 504x336.*--resize"):
        fit_size(im, 8)
    assert fit_size(im, 8, "stretch").size == (504, 336)
    assert fit_size(im, 16, "crop").size == (496, 320)
    assert fit_size(Image.new("RGB", (64, 64)), 8).size == (64, 64)
    assert fit_size(im, 8, size=(64, 32)).size == (64, 32)
    with pytest.raises(LatentscapeError, match="--resize got 'zoom'"):
        fit_size(im, 8, "zoom")
    with pytest.raises(LatentscapeError, match="nearest valid size is 64x48"):
        check_size(60, 50, 16)
    assert nearest_multiple(3, 8) == 8


def test_parse_size():
    assert parse_size("512x768") == (512, 768)
    with pytest.raises(LatentscapeError, match="WIDTHxHEIGHT"):
        parse_size("512")


def test_tensor_round_trip_matches_diffusers_processor():
    from diffusers.image_processor import VaeImageProcessor

    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    t = pil_to_tensor([im])
    proc = VaeImageProcessor(do_resize=False)
    assert torch.allclose(t, proc.preprocess(im), atol=1e-7)
    assert np.array_equal(np.asarray(tensor_to_pil(t)[0]), np.asarray(im))
    x = torch.randn(1, 3, 4, 4)
    assert np.array_equal(tensor_to_uint8(x)[0], np.asarray(proc.postprocess(x, output_type="pil")[0]))
