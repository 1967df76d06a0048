"""map: the four corner cells are the four corners' own images; PCA maps of folders; the HTML page."""

from __future__ import annotations

import re

import pytest
import torch
from creative_helpers import FAMILIES, FAST, assert_same, load_family, max_diff, standalone

from latentscape.errors import LatentscapeError
from latentscape.io.html_map import Cell, page
from latentscape.io.images import pil_to_tensor
from latentscape.workflows.common import decode_images
from latentscape.workflows.grids import parse_grid
from latentscape.workflows.latent_map import MapConfig, check_corners, latent_map, pca_2d
from latentscape.workflows.replay import replay

CORNERS = ("a red cat@3", "a dog@9", "a red cat@7", "seed:4")  # seed:4 takes the nearest prompt ("a red cat")


@pytest.mark.parametrize("fixture", FAMILIES)
def test_corner_cells_are_the_corners_images(request, fixture):
    model = load_family(request, fixture)
    out = latent_map(model, MapConfig(corners=CORNERS, grid="3x3", cfg=5.0, **FAST))
    refs = [standalone(model, "a red cat", 3), standalone(model, "a dog", 9), standalone(model, "a red cat", 7),
            standalone(model, "a red cat", 4)]
    for cell, ref in zip((0, 2, 6, 8), refs):
        assert_same(out.images[cell], ref)
    assert all(max_diff(out.images[4], ref) > 1 for ref in refs)


def test_image_corners_blend_latents(request, tmp_path):
    model = load_family(request, "tiny_sd")
    photo = standalone(model, "mountain landscape", 1)
    photo.save(tmp_path / "photo.png")
    corners = ("a red cat@3", "a dog@9", str(tmp_path / "photo.png"), "seed:4")
    out = latent_map(model, MapConfig(corners=corners, grid="2x2", strength=0.0, image_mode="noise", cfg=5.0, **FAST))
    assert out.info["mode"] == "latent"
    assert_same(out.images[0], standalone(model, "a red cat", 3))
    assert_same(out.images[2], decode_images(model, model.encode_images(pil_to_tensor([photo])))[0])
    repainted = latent_map(model, MapConfig(corners=corners, grid="2x2", strength=0.5, image_mode="noise", cfg=5.0, **FAST))
    assert max_diff(replay(model, repainted.recipes[3]).images[3], repainted.images[3]) == 0


def test_pca_of_a_folder(request, tmp_path):
    model = load_family(request, "tiny_sd")
    for i in range(5):
        standalone(model, "a photo of a cat", i).save(tmp_path / f"im{i}.png")
    out = latent_map(model, MapConfig(images_dir=str(tmp_path), **FAST))
    coords, explained = out.info["coords"], out.info["explained_variance"]
    assert coords.shape == (5, 2) and 0 < explained[1] <= explained[0] <= 1
    again = replay(model, out.recipes[0])
    assert max_diff(again.images[0], out.images[0]) == 0
    recorded = out.recipes[0].inputs["images"]
    assert [e["path"] for e in recorded] == [str(tmp_path / f"im{i}.png") for i in range(5)] and all(e["sha256"] for e in recorded)
    # a new file in the folder does not change the replayed map: it maps the files the recipe lists
    standalone(model, "a dog", 9).save(tmp_path / "new.png")
    again = replay(model, out.recipes[0])
    assert again.info["files"] == out.info["files"] and max_diff(again.images[0], out.images[0]) == 0
    # a changed or missing file is refused with one sentence
    standalone(model, "a dog", 10).save(tmp_path / "im2.png")
    with pytest.raises(LatentscapeError, match=r"'.*im2.png' has changed since the output was made"):
        replay(model, out.recipes[0])
    (tmp_path / "im2.png").unlink()
    with pytest.raises(LatentscapeError, match=r"'.*im2.png' no longer exists"):
        replay(model, out.recipes[0])


def test_pca_recovers_a_plane():
    g = torch.Generator().manual_seed(0)
    xy = torch.randn(20, 2, generator=g) * torch.tensor([5.0, 2.0])
    basis = torch.linalg.qr(torch.randn(30, 2, generator=g))[0]  # (30, 2) orthonormal
    coords, explained = pca_2d((xy @ basis.T).reshape(20, 5, 6))
    assert sum(explained) == pytest.approx(1.0, abs=1e-6)
    # the 2-D coordinates are the original ones up to a rotation: pairwise distances are kept
    assert torch.allclose(torch.cdist(coords, coords), torch.cdist(xy, xy), atol=1e-3)


def test_html_page_is_self_contained(request):
    from PIL import Image

    cells = [Cell(Image.new("RGB", (8, 8), (i * 40, 0, 0)), f"cell {i}", {"u": i / 3}, '{"seed": %d}' % i, row=0, col=i) for i in range(4)]
    text = page("map </script>", cells, cols=4)
    assert text.count("data:image/png;base64,") == 4
    assert not re.search(r"(src|href)=\"https?:", text)
    assert "</script>" not in text.split('id="cells">')[1].split("</script>")[0]


@pytest.mark.parametrize("grid", ["0x0", "1x1", "7", "20x2"])
def test_bad_grids(grid):
    with pytest.raises(LatentscapeError, match="--grid got"):
        parse_grid(grid, minimum=2)


def test_corner_count_and_kinds():
    with pytest.raises(LatentscapeError, match="got 3 corners"):
        check_corners(("a", "b", "c"))
    with pytest.raises(LatentscapeError, match="unknown kind 'latent:'"):
        check_corners(("a", "b", "c", "latent:x.pt"))
