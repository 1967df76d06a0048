"""The sweep chart reads right: tick labels are their gridlines' positions, and every text (the title
above all) lies inside the rendered canvas."""

from __future__ import annotations

import pytest

from latentscape.io.chart import chart_figure, line_chart

XS = [1.0, 3.0, 5.0, 7.5, 10.0, 15.0]
PANELS = [
    ("adherence (fraction of images)", {"caption retrieval": [0.1, 0.4, 0.6, 0.8, 0.85, 0.9],
                                        "name only": [0.2, 0.5, 0.7, 0.8, 0.9, 0.95]}, (0.0, 1.0)),
    ("diversity (mean pairwise RMS pixel distance)", {"diversity": [0.31, 0.27, 0.22, 0.2, 0.19, 0.18]}, None),
]
LONG_TITLE = ("sweep: grinning face, google style / cat face, twitter style / rocket, google style / "
              "a very long prompt that used to run off the right edge of the chart (4 seeds per prompt)")


def _number(text: str) -> float:
    return float(text.replace("\u2212", "-"))


def test_tick_labels_equal_tick_positions():
    fig = chart_figure(XS, PANELS, x_label="CFG scale", title="sweep")
    for ax in fig.axes:
        lo, hi = ax.get_ylim()
        ticks = [(t, lab.get_text()) for t, lab in zip(ax.get_yticks(), ax.get_yticklabels()) if lo <= t <= hi]
        assert len(ticks) >= 3
        for position, label in ticks:
            assert _number(label) == pytest.approx(position, abs=1e-9), (label, position)
        assert [_number(lab.get_text()) for lab in ax.get_xticklabels()] == XS


def test_every_text_and_the_long_title_fit_the_canvas():
    fig = chart_figure(XS, PANELS, x_label="CFG scale", title=LONG_TITLE)
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()

    def inside(box, what):
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, (what, box, (width, height))

    inside(fig._suptitle.get_window_extent(renderer), "title")
    for ax in fig.axes:  # each panel with its drawn tick labels, axis label, panel title and legend
        inside(ax.get_tightbbox(renderer), ax.get_title())
        inside(ax.title.get_window_extent(renderer), ax.get_title())
        inside(ax.get_legend().get_window_extent(renderer), "legend")
        inside(ax.xaxis.label.get_window_extent(renderer), "x label")
    # the title is wrapped, not cut: every word is in it
    assert fig._suptitle.get_text().split() == LONG_TITLE.split()


def test_line_chart_is_an_rgb_image_of_the_figure():
    image = line_chart(XS, PANELS, x_label="CFG scale", title="sweep")
    assert image.mode == "RGB" and image.width > 500 and image.height > 200
    assert image.getpixel((1, 1)) == (255, 255, 255)
    assert len(set(image.getdata())) > 20  # lines, markers, text were drawn
    with pytest.raises(ValueError):
        line_chart([], PANELS)
