"""Value schedules (Deforum / FizzNodes ``FRAME:(VALUE)``): parsing, linear evaluation, one-sentence refusals."""

from __future__ import annotations

import pytest

from latentscape.core.value_schedule import ValueSchedule, parse_schedule
from latentscape.errors import LatentscapeError


def test_deforum_string_is_linear_between_points_and_held_beyond_them():
    s = parse_schedule("0:(7), 24:(12), 48:(7)", "schedules.cfg")
    assert s.points == ((0, 7.0), (24, 12.0), (48, 7.0))
    assert [s.at(f) for f in (0, 12, 24, 36, 48)] == [7.0, 9.5, 12.0, 9.5, 7.0]
    assert s.at(6) == pytest.approx(7 + 5 * 6 / 24)
    assert s.at(30.5) == pytest.approx(12 - 5 * 6.5 / 24)  # fractional frames too
    assert s.at(100) == 7.0


def test_first_point_after_frame_0_holds_its_value_before_it():
    s = parse_schedule("10:(0.5), 20:(0.7)", "schedules.guidance_rescale")
    assert s.at(0) == 0.5 and s.at(15) == pytest.approx(0.6) and s.first_frame == 10 and s.last_frame == 20


@pytest.mark.parametrize("spec, points", [
    ("0: (7)", ((0, 7.0),)),
    ("0:7, 24:12", ((0, 7.0), (24, 12.0))),  # parentheses optional
    (" 0:(-1.5e0) ,\n 3:(.25), ", ((0, -1.5), (3, 0.25))),  # whitespace, signs, exponents, a trailing comma
    ({"0": 7, "24": "12"}, ((0, 7.0), (24, 12.0))),  # a JSON mapping
    ({0: 3.5}, ((0, 3.5),)),
    (7.5, ((0, 7.5),)),  # a constant
])  # fmt: skip
def test_accepted_forms(spec, points):
    assert parse_schedule(spec, "schedules.cfg").points == points


def test_text_form_parses_back_to_the_same_schedule():
    s = parse_schedule("0:(7), 24:(12.25), 48:(0.1)", "x")
    assert s.to_text() == "0:(7), 24:(12.25), 48:(0.1)"
    assert parse_schedule(s.to_text(), "x") == s
    assert ValueSchedule(((0, 1 / 3),)).to_text() == f"0:({1 / 3!r})"


@pytest.mark.parametrize("spec, needle", [
    ("", "is empty"),
    ("0:(7), 24", "cannot be read at '24'"),
    ("0:(7) 24:(9)", "separate FRAME:(VALUE) points with commas"),
    ("0:7 24:9", "cannot be read at '7 24:9'; separate FRAME:(VALUE) points with commas"),
    ("0:(7", "unclosed '('"),
    ("1.5:(7)", "frame '1.5', which is not a whole number"),
    ("-3:(7)", "frame -3"),
    ("x:(7)", "frame 'x'"),
    ("0:()", "no value at frame 0"),
    ("0:(7 + 2*sin(t))", "Deforum's math expressions"),
    ("0:(abc)", "not a plain number"),
    ("0:(nan)", "nan at frame 0; expected a finite number"),
    ("0:(inf)", "expected a finite number"),
    ("0:(1e999)", "expected a finite number"),
    ("0:(7), 0:(8)", "gives frame 0 twice"),
    ("0:(7), 24:(8), 12:(9)", "frame 12 after frame 24"),
    ({"0": float("nan")}, "expected a finite number"),
    ({"0": True}, "expected a number"),
    ({"0": [7]}, "a list at frame 0"),
    (True, "got True"),
    ([0, 7], "is a list"),
])  # fmt: skip
def test_bad_schedules_are_one_sentence_naming_the_field(spec, needle):
    with pytest.raises(LatentscapeError) as err:
        parse_schedule(spec, "schedules.cfg")
    message = str(err.value)
    assert message.startswith("schedules.cfg ") and needle in message and "\n" not in message
