"""Small line charts drawn with Pillow (no plotting dependency): one panel per quantity, side by side."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from PIL import Image, ImageDraw

from latentscape.io.grid import _font, _line_height  # the grid's font, so sheets and charts match

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
Panel = tuple[str, Mapping[str, Sequence[float]], tuple[float, float] | None]  # (title, {label: ys}, y range or None)


def _decimals(span: float) -> int:
    """Enough decimals for ticks a quarter of ``span`` apart to differ."""
    step = span / 4
    return 0 if step >= 1 else min(6, math.ceil(-math.log10(step)))


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def line_chart(
    xs: Sequence[float],
    panels: Sequence[Panel],
    *,
    x_label: str = "",
    title: str | None = None,
    panel_size: tuple[int, int] = (360, 260),
) -> Image.Image:
    """Panels side by side, each plotting its series (label -> y per x) against ``xs`` (x proportional).

    A panel's y range is the given (lo, hi) or the data's (padded by 5 %). Points are marked; the legend
    sits under each panel.
    """
    if not xs or not panels:
        raise ValueError("a chart needs x values and at least one panel")
    font, small = _font(14), _font(12)
    lh = _line_height(font)
    pw, ph = panel_size
    left, right, top, bottom = 56, 16, 8 + lh, 36
    legend_h = max(len(series) for _, series, _ in panels) * (_line_height(small) + 2) + 4
    title_h = lh + 8 if title else 0
    width = len(panels) * (pw + left + right) + 8
    height = title_h + top + ph + bottom + legend_h
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((8, 4), title, font=font, fill=(0, 0, 0))
    x_lo, x_hi = min(xs), max(xs)
    x_span = (x_hi - x_lo) or 1.0
    for p, (name, series, y_range) in enumerate(panels):
        ox, oy = 8 + p * (pw + left + right) + left, title_h + top
        values = [v for ys in series.values() for v in ys if v is not None]
        if y_range is not None:
            y_lo, y_hi = y_range
        else:
            lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
            pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1e-3)
            y_lo, y_hi = lo - pad, hi + pad
        y_span = (y_hi - y_lo) or 1.0

        def px(x: float) -> float:
            return ox + (x - x_lo) / x_span * pw

        def py(y: float) -> float:
            return oy + ph - (y - y_lo) / y_span * ph

        draw.text((ox, oy - lh - 2), name, font=font, fill=(0, 0, 0))
        draw.rectangle([ox, oy, ox + pw, oy + ph], outline=(120, 120, 120))
        for y in _ticks(y_lo, y_hi):
            draw.line([ox - 4, py(y), ox, py(y)], fill=(120, 120, 120))
            draw.line([ox + 1, py(y), ox + pw - 1, py(y)], fill=(235, 235, 235))
            label = f"{y:.{_decimals(y_span)}f}"
            draw.text((ox - 6 - small.getlength(label), py(y) - 7), label, font=small, fill=(60, 60, 60))
        for x in xs:
            label = f"{x:g}"
            draw.line([px(x), oy + ph, px(x), oy + ph + 4], fill=(120, 120, 120))
            draw.text((px(x) - small.getlength(label) / 2, oy + ph + 6), label, font=small, fill=(60, 60, 60))
        if x_label:
            draw.text((ox + pw / 2 - small.getlength(x_label) / 2, oy + ph + 20), x_label, font=small, fill=(0, 0, 0))
        for k, (label, ys) in enumerate(series.items()):
            colour = COLOURS[k % len(COLOURS)]
            points = [(px(x), py(y)) for x, y in zip(xs, ys) if y is not None]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
            ly = oy + ph + bottom + k * (_line_height(small) + 2)
            draw.line([ox, ly + 7, ox + 18, ly + 7], fill=colour, width=2)
            draw.text((ox + 24, ly), label, font=small, fill=(0, 0, 0))
    return image
