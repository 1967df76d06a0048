"""Grid layouts checked by exact size arithmetic and by where the cells' pixels and the text's ink land."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from latentscape.errors import LatentscapeError
from latentscape.io.grid import TEXT_GAP, contact_sheet, labelled_grid

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (10, 8)) -> Image.Image:
    return Image.new("RGB", size, colour)


def ink(region: np.ndarray, background: int = 255) -> int:
    """Number of pixels in an (H, W, 3) region that differ from a grey-level background."""
    return int((region != background).any(axis=-1).sum())


def bbox(array: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the pixels of exactly ``colour``."""
    ys, xs = np.nonzero((array == colour).all(axis=-1))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_contact_sheet_size_arithmetic():
    images = [solid(c) for c in COLOURS[:5]]  # 10x8 each
    assert contact_sheet(images, cols=3, pad=4).size == (3 * (10 + 4) + 4, 2 * (8 + 4) + 4)
    assert contact_sheet(images, cols=3, pad=4, cell_scale=3).size == (3 * (30 + 4) + 4, 2 * (24 + 4) + 4)
    assert contact_sheet(images, pad=0).size == (3 * 10, 2 * 8)  # default cols = ceil(sqrt(5)) = 3
    assert contact_sheet(images, cols=9, pad=0).size == (5 * 10, 8)  # never more columns than images


def test_contact_sheet_places_cells_row_major_and_scales_with_nearest_neighbour():
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (8, 10, 3), dtype=np.uint8) for _ in range(5)]
    sheet = np.asarray(contact_sheet([Image.fromarray(a) for a in arrays], cols=2, pad=3, cell_scale=2))
    for index, array in enumerate(arrays):
        row, col = divmod(index, 2)
        x, y = 3 + col * (20 + 3), 3 + row * (16 + 3)
        np.testing.assert_array_equal(sheet[y : y + 16, x : x + 20], array.repeat(2, axis=0).repeat(2, axis=1))


def test_labels_add_a_caption_band_under_each_row_with_text_in_it():
    images = [solid(c, (40, 30)) for c in COLOURS[:4]]
    plain = np.asarray(contact_sheet(images, cols=2, pad=4))
    blank = np.asarray(contact_sheet(images, cols=2, pad=4, labels=[""] * 4))
    named = np.asarray(contact_sheet(images, cols=2, pad=4, labels=["cfg 1", "cfg 2", "cfg 3", "cfg 4"]))
    assert blank.shape == named.shape and blank.shape[1] == plain.shape[1]
    band = (blank.shape[0] - plain.shape[0]) // 2
    assert band > 0 and blank.shape[0] == plain.shape[0] + 2 * band  # one equal band per row
    for row in range(2):
        top = 4 + row * (30 + band + 4) + 30  # the band starts right under the row's cells
        assert ink(blank[top : top + band]) == 0
        for col in range(2):
            left = 4 + col * (40 + 4)
            assert ink(named[top : top + band, left : left + 40]) > 10  # each caption under its own cell
        np.testing.assert_array_equal(named[top - 30 : top], blank[top - 30 : top])  # cells untouched


def test_title_adds_a_band_with_text_on_top_and_keeps_the_width():
    images = [solid(c, (40, 30)) for c in COLOURS[:2]]
    plain = np.asarray(contact_sheet(images, pad=4))
    titled = np.asarray(contact_sheet(images, pad=4, title="Morph"))
    extra = titled.shape[0] - plain.shape[0]
    assert extra > 0 and titled.shape[1] == plain.shape[1]
    assert ink(titled[:extra]) > 10
    np.testing.assert_array_equal(titled[extra:], plain)  # everything else shifted down unchanged


def test_captions_are_light_on_a_dark_background():
    sheet = np.asarray(contact_sheet([solid((0, 0, 0))], pad=0, labels=["seed 42"], background=(0, 0, 0)))
    assert sheet[8:].max() > 200  # the caption band holds light text


def test_long_labels_wrap_to_at_most_three_lines_within_the_cell_width():
    image = solid(COLOURS[0], (60, 20))
    short = contact_sheet([image], pad=20, labels=["short"])
    long = contact_sheet([image], pad=20, labels=["a cat astronaut riding a horse on the moon at dusk, oil on canvas"])
    line = short.height - 2 * 20 - 20 - TEXT_GAP  # one line: the height minus pads, cell and gap
    assert long.height - 2 * 20 - 20 - TEXT_GAP == 3 * line
    band = np.asarray(long)[20 + 20 : -20]
    assert ink(band[:, 20:80]) > 0 and ink(band[:, :19]) == 0 and ink(band[:, 81:]) == 0


def test_contact_sheet_rejects_bad_inputs_with_a_sentence():
    with pytest.raises(LatentscapeError, match="got 1 labels for 2 images; accepted: one label per image."):
        contact_sheet([solid(COLOURS[0])] * 2, labels=["a"])
    with pytest.raises(LatentscapeError, match="grid image 1 is 5x5 but image 0 is 10x8"):
        contact_sheet([solid(COLOURS[0]), solid(COLOURS[1], (5, 5))])
    with pytest.raises(LatentscapeError, match="cell_scale got 1.5"):
        contact_sheet([solid(COLOURS[0])], cell_scale=1.5)
    with pytest.raises(LatentscapeError, match="at least one image"):
        contact_sheet([])


def test_labelled_grid_puts_column_headers_on_top_and_row_headers_at_left():
    rows = [[solid(c, (20, 16)) for c in COLOURS[:3]], [solid(c, (20, 16)) for c in COLOURS[3:]]]
    pad, scale = 4, 2
    grid = labelled_grid(rows, ["seed 1", "seed 2"], ["cfg 1", "cfg 5", "cfg 9"], pad=pad, cell_scale=scale)
    grid = np.asarray(grid)
    boxes = [[bbox(grid, c) for c in row] for row in (COLOURS[:3], COLOURS[3:])]
    for r in range(2):
        for c in range(3):
            left, top, right, bottom = boxes[r][c]
            assert (right - left, bottom - top) == (40, 32)
            assert left == boxes[0][c][0] and top == boxes[r][0][1]  # columns and rows aligned
            if c:
                assert left == boxes[r][c - 1][2] + pad
            if r:
                assert top == boxes[r - 1][c][3] + pad
    height, width = grid.shape[:2]
    assert (boxes[-1][-1][2], boxes[-1][-1][3]) == (width - pad, height - pad)
    first_left, first_top = boxes[0][0][:2]
    assert first_left > pad and first_top > pad  # room was made for the headers
    for left, _, right, _ in boxes[0]:
        assert ink(grid[:first_top, left:right]) > 10  # each column's header sits above it
    for _, top, _, bottom in (row[0] for row in boxes):
        assert ink(grid[top:bottom, :first_left]) > 10  # each row's header sits at its left


def test_labelled_grid_title_and_validation():
    rows = [[solid(COLOURS[0])]]
    plain = labelled_grid(rows, ["r"], ["c"])
    titled = labelled_grid(rows, ["r"], ["c"], title="CFG sweep")
    assert titled.width == plain.width and titled.height > plain.height
    with pytest.raises(LatentscapeError, match="row 1 has 1 images for 2 column labels"):
        labelled_grid([[solid(COLOURS[0])] * 2, [solid(COLOURS[0])]], ["a", "b"], ["x", "y"])
    with pytest.raises(LatentscapeError, match="got 1 rows of images and 2 row labels"):
        labelled_grid(rows, ["a", "b"], ["c"])
