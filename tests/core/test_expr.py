import pytest

from latentscape.core.expr import MAX_DEPTH, Operand, Term, format_terms, parse
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


@pytest.mark.parametrize("expr", ["(" * 65 + '"a"' + ")" * 65, "-" * 65 + '"a"', "-(" * 40 + '"a"' + ")" * 40, "(" * 1400 + '"a"'])
def test_nesting_is_limited_with_a_sentence_not_a_recursion_error(expr):
    with pytest.raises(LatentscapeError) as err:
        parse(expr)
    assert f"nest more than {MAX_DEPTH} deep at position {MAX_DEPTH + 1}" in str(err.value) and "\n" not in str(err.value)


def test_nesting_up_to_the_limit_parses():
    assert parse("(" * MAX_DEPTH + '"a"' + ")" * MAX_DEPTH) == [Term(1.0, P("a"))]
    assert parse("-" * MAX_DEPTH + '"a"') == [Term(1.0, P("a"))]


@pytest.mark.parametrize("digits", ["18446744073709551616", "9" * 25, "9" * 3000])
def test_seeds_beyond_what_torch_takes_are_refused(digits):
    with pytest.raises(LatentscapeError, match="seed .* at position 7 is out of range; expected 0 to 18446744073709551615") as err:
        parse('"a" + seed:' + digits)
    assert len(str(err.value)) < 200
    assert parse("seed:18446744073709551615") == [Term(1.0, Operand("seed", 2**64 - 1))]


@pytest.mark.parametrize("expr, where", [
    ('1e309*"x"', "the number 1e309 is too large to be finite"),
    ('1e308*1e308*"x"', "this operation overflows (the result is not a finite number) at position 6"),
    ('1e308*"x" + 1e308*"x"', "this operation overflows (the result is not a finite number) at position 11"),
    ('"x"/(1e200*1e200)', "this operation overflows"),
])
def test_non_finite_numbers_and_results_are_refused(expr, where):
    with pytest.raises(LatentscapeError) as err:
        parse(expr)
    assert where in str(err.value) and "\n" not in str(err.value)


def test_coefficients_are_bounded_so_the_model_cannot_overflow():
    from latentscape.core.expr import MAX_COEFFICIENT

    with pytest.raises(LatentscapeError, match=r'"x" gets the coefficient 1e\+308; accepted: coefficients from -1000 to 1000'):
        parse('1e308*"x"')
    with pytest.raises(LatentscapeError, match="seed:3 gets the coefficient -2000"):
        parse('"a" - 2000*seed:3')
    assert parse(f'{MAX_COEFFICIENT:g}*"x" - 0.5*"y"') == [Term(MAX_COEFFICIENT, P("x")), Term(-0.5, P("y"))]
