"""Contact sheets and A1111-style X/Y grids of same-size images, captioned with Pillow's built-in font."""

from __future__ import annotations

import functools
import itertools
import math
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from latentscape.errors import LatentscapeError
from latentscape.io.images import WHITE, to_rgb

Color = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

FONT_SIZE = 14
TITLE_SCALE = 1.5  # title font size relative to the label font
MAX_LINES = 3  # a longer label or title is cut, its last line ending in "…"
TEXT_GAP = 2  # pixels between an image and its caption


def contact_sheet(
    images: Sequence[Image.Image],
    cols: int | None = None,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    pad: int = 4,
    background: Color = WHITE,
    cell_scale: int = 1,
    font_size: int = FONT_SIZE,
) -> Image.Image:
    """Lay same-size ``images`` out row-major in ``cols`` columns (default ⌈√n⌉), ``pad`` pixels apart.

    Each cell is the image enlarged ``cell_scale`` times with nearest-neighbour (so 64x64 previews stay
    crisp). ``labels`` (one per image) adds a caption band under every cell, as tall as the longest
    caption (word-wrapped to the cell width, at most 3 lines); ``title`` adds a band across the top. Size:
    width ``cols·(w·s + pad) + pad``, height ``title band + rows·(h·s + caption band + pad) + pad``.

    ``images`` is read once, in order, one image at a time (frames read lazily from disk stay there).
    """
    n = len(images)
    if n == 0:
        raise LatentscapeError("no images were given for the grid; accepted: at least one image.")
    stream = iter(images)
    head = next(stream)
    first = _cell(head, 0, None, cell_scale)
    if cols is None:
        cols = math.ceil(math.sqrt(n))
    elif cols < 1:
        raise LatentscapeError(f"cols got {cols}; accepted: a number of columns of 1 or more.")
    if labels is not None and len(labels) != n:
        raise LatentscapeError(f"got {len(labels)} labels for {n} images; accepted: one label per image.")
    _check_pad(pad)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    cw, ch = first.size
    font = _font(font_size)
    captions = [_wrap(label, font, cw) for label in labels] if labels is not None else []
    caption_h = TEXT_GAP + max(1, *map(len, captions)) * _line_height(font) if captions else 0

    width = pad + cols * (cw + pad)
    title_font = _font(round(font_size * TITLE_SCALE))
    title_lines = _wrap(title or "", title_font, width - 2 * pad)
    top = pad + (len(title_lines) * _line_height(title_font) + pad if title_lines else 0)
    sheet = Image.new("RGB", (width, top + rows * (ch + caption_h + pad)), background)
    draw, ink = ImageDraw.Draw(sheet), _ink(background)
    _draw_lines(draw, title_lines, title_font, (pad, pad), width - 2 * pad, ink)
    for index, image in enumerate(itertools.chain([head], stream)):
        cell = first if index == 0 else _cell(image, index, head.size, cell_scale)
        row, col = divmod(index, cols)
        x, y = pad + col * (cw + pad), top + row * (ch + caption_h + pad)
        sheet.paste(cell, (x, y))
        if captions:
            _draw_lines(draw, captions[index], font, (x, y + ch + TEXT_GAP), cw, ink)
    return sheet


def labelled_grid(
    images_by_row: Sequence[Sequence[Image.Image]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    title: str | None = None,
    cell_scale: int = 1,
    pad: int = 4,
    background: Color = WHITE,
    font_size: int = FONT_SIZE,
) -> Image.Image:
    """An X/Y plot as in A1111: a header of ``col_labels`` above the columns, ``row_labels`` at the left.

    ``images_by_row[r][c]`` is the image for row value r (e.g. a seed) and column value c (e.g. a CFG
    scale). Labels are word-wrapped to the cell width (at most 3 lines); the header is as tall as the
    tallest column label, the left band as wide as the widest row-label line. An optional ``title`` spans
    the top. Cells are enlarged ``cell_scale`` times with nearest-neighbour.
    """
    if len(images_by_row) == 0 or len(images_by_row) != len(row_labels):
        raise LatentscapeError(
            f"got {len(images_by_row)} rows of images and {len(row_labels)} row labels; "
            "accepted: one label per row and at least one row."
        )
    if len(col_labels) == 0:
        raise LatentscapeError("no column labels were given; accepted: one label per column, at least one.")
    for index, row in enumerate(images_by_row):
        if len(row) != len(col_labels):
            raise LatentscapeError(
                f"row {index} has {len(row)} images for {len(col_labels)} column labels; "
                "accepted: every row with one image per column."
            )
    _check_pad(pad)
    cells = _cells([image for row in images_by_row for image in row], cell_scale)
    cw, ch = cells[0].size
    font = _font(font_size)
    line_h = _line_height(font)
    headers = [_wrap(label, font, cw) for label in col_labels]
    sides = [_wrap(label, font, cw) for label in row_labels]
    header_h = max(map(len, headers)) * line_h
    side_w = math.ceil(max((font.getlength(line) for lines in sides for line in lines), default=0))

    left = pad + (side_w + pad if side_w else 0)
    width = left + len(col_labels) * (cw + pad)
    title_font = _font(round(font_size * TITLE_SCALE))
    title_lines = _wrap(title or "", title_font, width - 2 * pad)
    title_h = len(title_lines) * _line_height(title_font) + pad if title_lines else 0
    top = pad + title_h + (header_h + pad if header_h else 0)
    grid = Image.new("RGB", (width, top + len(row_labels) * (ch + pad)), background)
    draw, ink = ImageDraw.Draw(grid), _ink(background)
    _draw_lines(draw, title_lines, title_font, (pad, pad), width - 2 * pad, ink)
    for col, lines in enumerate(headers):  # bottom-aligned, just above the first row
        _draw_lines(draw, lines, font, (left + col * (cw + pad), top - pad - len(lines) * line_h), cw, ink)
    for row, lines in enumerate(sides):  # centred on the row
        y = top + row * (ch + pad) + (ch - len(lines) * line_h) // 2
        _draw_lines(draw, lines, font, (pad, y), side_w, ink)
    for index, cell in enumerate(cells):
        row, col = divmod(index, len(col_labels))
        grid.paste(cell, (left + col * (cw + pad), top + row * (ch + pad)))
    return grid


def _cells(images: Sequence[Image.Image], scale: int) -> list[Image.Image]:
    """Validate same-size PIL images and return them as RGB, enlarged ``scale`` times (nearest-neighbour)."""
    if len(images) == 0:
        raise LatentscapeError("no images were given for the grid; accepted: at least one image.")
    size = images[0].size if isinstance(images[0], Image.Image) else None
    return [_cell(image, index, size, scale) for index, image in enumerate(images)]


def _cell(image: Image.Image, index: int, size: tuple[int, int] | None, scale: int) -> Image.Image:
    """One validated grid image (``size``: image 0's, which every image must have) as RGB, enlarged ``scale`` times."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise LatentscapeError(f"cell_scale got {scale!r}; accepted: a whole number of 1 or more.")
    if not isinstance(image, Image.Image):
        raise LatentscapeError(f"grid image {index} is a {type(image).__name__}; accepted: PIL images.")
    if size is not None and image.size != size:
        (w, h), (w0, h0) = image.size, size
        raise LatentscapeError(f"grid image {index} is {w}x{h} but image 0 is {w0}x{h0}; accepted: images of one size.")
    rgb = to_rgb(image)
    w, h = image.size
    return rgb if scale == 1 else rgb.resize((w * scale, h * scale), Image.Resampling.NEAREST)


def _check_pad(pad: int) -> None:
    if pad < 0:
        raise LatentscapeError(f"pad got {pad}; accepted: a number of pixels of 0 or more.")


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Font:
    """Pillow's bundled Aileron at ``size`` px; its fixed bitmap font if Pillow was built without FreeType."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def _line_height(font: Font) -> int:
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return ascent + descent
    return int(font.getbbox("Ag")[3]) + 1


def _ink(background: Color) -> Color:
    """Black text on a light background, white on a dark one (Rec. 601 luma)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b >= 128 else (255, 255, 255)


def _wrap(text: str, font: Font, width: int, max_lines: int = MAX_LINES) -> list[str]:
    """Greedy word-wrap to ``width`` px (breaking over-long words); cut to ``max_lines`` ending in "…"."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and font.getlength(word) > width:
                cut = max(1, max(k for k in range(len(word) + 1) if font.getlength(word[:k]) <= width))
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            lines.append(line)
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    while last and font.getlength(last + "…") > width:
        last = last[:-1]
    return lines[: max_lines - 1] + [last.rstrip() + "…"]


def _draw_lines(
    draw: ImageDraw.ImageDraw, lines: list[str], font: Font, origin: tuple[int, int], width: int, ink: Color
) -> None:
    """Draw ``lines`` one under another from ``origin`` (top-left), each centred in ``width`` px."""
    x, y = origin
    for line in lines:
        draw.text((x + (width - font.getlength(line)) / 2, y), line, font=font, fill=ink)
        y += _line_height(font)
