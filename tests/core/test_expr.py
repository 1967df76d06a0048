import pytest

from latentscape.core.expr import Operand, Term, format_terms, parse
from latentscape.errors import LatentscapeError


def P(text):
    return Operand("prompt", text)


def test_king_minus_man_plus_woman():
    assert parse('"king face" - "man" + "woman"') == [Term(1.0, P("king face")), Term(-1.0, P("man")), Term(1.0, P("woman"))]


def test_scaling_division_parentheses_and_merging():
    terms = parse("0.5*'cat' + seed:3*2 - (image:\"a b.png\" - seed:3)/2 + 'cat' * 1e-1")
    assert terms == [Term(0.6, P("cat")), Term(2.5, Operand("seed", 3)), Term(-0.5, Operand("image", "a b.png"))]


def test_unary_minus_escapes_and_bare_image_paths():
    assert parse('-"say \\"hi\\""') == [Term(-1.0, P('say "hi"'))]
    assert parse("image:dir/x-1.png + seed:0") == [Term(1.0, Operand("image", "dir/x-1.png")), Term(1.0, Operand("seed", 0))]


@pytest.mark.parametrize("expr", ['"king face" - "man" + "woman"', '0.25*"a" - 3*seed:7 + image:"x y.png"', '-"x"'])
def test_format_round_trips(expr):
    terms = parse(expr)
    assert parse(format_terms(terms)) == terms


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ('"a" + ', "at the end"),
        ("king - man", "'king' at position 1 is not quoted"),
        ('"a" * "b"', "cannot be multiplied"),
        ('2 + "a"', "position 3"),
        ('"a', "never closed"),
        ("3 * 4", "only a number"),
        ('("a"', "expected ')'"),
        ('"a" / 0', "division by zero"),
        ('"a" / "b"', "divisor must be a number"),
        ("seed:x", "seed: needs a whole number"),
        ('"a" seed:1', "position 5"),
        ('"a" & "b"', "unexpected character '&'"),
        ("", "empty"),
        ('""', "prompt is empty"),
    ],
)
def test_malformed_expressions_name_the_problem(expr, fragment):
    with pytest.raises(LatentscapeError) as err:
        parse(expr)
    message = str(err.value)
    assert fragment in message
    assert message.count("\n") == 0
