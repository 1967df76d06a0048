"""Line charts drawn with matplotlib (Agg, off-screen): one panel per quantity, side by side.

matplotlib is imported inside the functions (never at import) and always through its Agg canvas, so a
chart never opens a window or depends on a display. Tick labels are matplotlib's own formatter's, so they
always read as the positions of their gridlines; the title is wrapped to the figure's width and the layout
engine keeps every label, legend and the title inside the canvas.
"""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

from PIL import Image

Panel = tuple[str, Mapping[str, Sequence[float]], tuple[float, float] | None]  # (title, {label: ys}, y range or None)
DPI = 100


def chart_figure(
    xs: Sequence[float],
    panels: Sequence[Panel],
    *,
    x_label: str = "",
    title: str | None = None,
    panel_size: tuple[int, int] = (360, 260),
):
    """The matplotlib ``Figure`` of :func:`line_chart` (drawn, so text extents can be measured)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not xs or not panels:
        raise ValueError("a chart needs x values and at least one panel")
    pw, ph = panel_size
    legend_rows = max(len(series) for _, series, _ in panels)
    width_in = len(panels) * (pw + 90) / DPI
    height_in = (ph + 110 + 18 * legend_rows) / DPI
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    x_values = [float(x) for x in xs]
    for ax, (name, series, y_range) in zip(axes, panels):
        for label, ys in series.items():
            points = [(x, y) for x, y in zip(x_values, ys) if y is not None]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=4, linewidth=1.6, label=label)
        if y_range is not None:
            lo, hi = y_range
            pad = (hi - lo) * 0.03
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(x_values, [f"{x:g}" for x in x_values])
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.grid(True, color="#e6e6e6", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.set_title("\n".join(textwrap.wrap(name, max(16, int((pw / DPI) * DPI / (10 * 0.6))))), fontsize=10)
        if x_label:
            ax.set_xlabel(x_label, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18 if x_label else -0.1), frameon=False,
                  ncols=1)
    if title:
        _wrapped_title(fig, title)
    fig.canvas.draw()
    return fig


def _wrapped_title(fig, title: str) -> None:
    """The figure's title, wrapped at the longest line length whose widest line fits the canvas (measured)."""
    renderer = fig.canvas.get_renderer()
    width = fig.canvas.get_width_height()[0] - 16
    chars = len(title)
    text = fig.suptitle(title, fontsize=12)
    while chars > 10 and text.get_window_extent(renderer).width > width:
        chars = int(chars * 0.9)
        text.set_text("\n".join(textwrap.wrap(title, chars, break_long_words=True)))


def line_chart(
    xs: Sequence[float],
    panels: Sequence[Panel],
    *,
    x_label: str = "",
    title: str | None = None,
    panel_size: tuple[int, int] = (360, 260),
) -> Image.Image:
    """Panels side by side, each plotting its series (label -> y per x) against ``xs`` (x proportional).

    A panel's y range is the given (lo, hi) or the data's; x ticks sit at the x values. Points are marked;
    the legend sits under each panel. Returns an RGB image.
    """
    fig = chart_figure(xs, panels, x_label=x_label, title=title, panel_size=panel_size)
    rgba = fig.canvas.buffer_rgba()
    width, height = fig.canvas.get_width_height()
    return Image.frombuffer("RGBA", (width, height), bytes(rgba), "raw", "RGBA", 0, 1).convert("RGB")
