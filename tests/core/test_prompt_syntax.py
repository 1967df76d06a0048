"""A1111 prompt syntax: weights, BREAK, escapes, prompt editing, chunking, weights along paths, bad input."""

import pytest

from latentscape.core.prompt_syntax import (
    Chunk, PromptSyntaxError, Segment, check_prompt, chunk_tokens, has_editing, interpolate_weighted, is_plain,
    parse_weights, plain_text, prompt_schedule, text_at,
)


def weights(prompt):
    return [[(s.text, round(s.weight, 6)) for s in part] for part in parse_weights(prompt)]


def test_emphasis_weights_as_a1111_documents():
    assert weights("a (cat:1.5) b") == [[("a ", 1.0), ("cat", 1.5), (" b", 1.0)]]
    assert weights("(cat)") == [[("cat", 1.1)]]
    assert weights("[cat]") == [[("cat", round(1 / 1.1, 6))]]
    assert weights("((cat))") == [[("cat", 1.21)]]
    assert weights("((cat:1.5) dog)") == [[("cat", 1.65), (" dog", 1.1)]]
    assert weights("[(cat)]") == [[("cat", 1.0)]]
    assert weights("(cat face:1.0)") == [[("cat face", 1.0)]]
    assert weights("(cat: 0.5 )") == [[("cat", 0.5)]]
    assert weights("(a:b:1.2)") == [[("a:b", 1.2)]]  # only the last colon sets the weight
    assert weights("style: photo") == [[("style: photo", 1.0)]]  # colons outside brackets are text


def test_escapes_are_literal_characters():
    assert weights(r"\(cat\) \[dog\] a\\b") == [[("(cat) [dog] a\\b", 1.0)]]
    assert weights(r"(smile \(happy\):1.3)") == [[("smile (happy)", 1.3)]]
    assert not is_plain(r"\(cat\)") and is_plain("cat, dog: photo")


def test_break_splits_parts_and_merges_equal_weights():
    assert weights("a cat BREAK (a dog:1.2)") == [[("a cat", 1.0)], [("a dog", 1.2)]]
    assert weights("(a BREAK b)") == [[("a", 1.1)], [("b", 1.1)]]
    assert weights("BREAKFAST") == [[("BREAKFAST", 1.0)]]  # a word of its own only
    assert weights("(a:1.0) b") == [[("a b", 1.0)]]
    assert not is_plain("a BREAK b")


@pytest.mark.parametrize("prompt, what", [
    ("(cat", "never closed"),
    ("cat)", "closes nothing"),
    ("[cat", "never closed"),
    ("(cat]", "does not match"),
    ("(cat:abc)", "not a finite number"),
    ("(cat:inf)", "not a finite number"),
    ("(cat:nan)", "not a finite number"),
    ("(cat:)", "not a finite number"),
    ("(cat:1e400)", "not a finite number"),
    ("[a:b:c:3]", "3 colons"),
    ("[a:b:2.5]", "whole step number"),
    ("[a:b:-1]", "whole step number"),
])
def test_bad_syntax_is_one_sentence_naming_the_field(prompt, what):
    with pytest.raises(PromptSyntaxError, match=what) as info:
        check_prompt(prompt, field="negative")
    message = str(info.value)
    assert message.startswith(f"negative {prompt!r}:") and message.endswith(".") and "\n" not in message


def test_editing_schedule_counts_steps_as_a1111():
    # step i (from 0) uses "from" while i <= when
    assert prompt_schedule("a [cat:dog:3] x", 8) == [(3, "a cat x"), (7, "a dog x")]
    assert prompt_schedule("a [cat:dog:0.5]", 10) == [(5, "a cat"), (9, "a dog")]  # fraction: int(0.5 * 10)
    assert prompt_schedule("a [dog:2]", 5) == [(2, "a "), (4, "a dog")]  # [to:when] adds
    assert prompt_schedule("a [dog::2]", 5) == [(2, "a dog"), (4, "a ")]  # [from::when] removes
    assert prompt_schedule("a [:dog:2]", 5) == [(2, "a "), (4, "a dog")]
    assert prompt_schedule("a [cat:dog:0]", 5) == [(4, "a dog")]  # before step 1: "to" from the start
    assert prompt_schedule("[a:b:5]", 5) == [(4, "a")]  # the last step index is 4
    nested = prompt_schedule("[(cat:1.3):[dog:fox:4]:2]", 6)
    assert nested == [(2, "(cat:1.3)"), (4, "dog"), (5, "fox")]
    assert [text_at(nested, i) for i in range(6)] == ["(cat:1.3)"] * 3 + ["dog"] * 2 + ["fox"]
    assert prompt_schedule("plain (cat:1.2)", 5) == [(4, "plain (cat:1.2)")]
    assert has_editing("a [b:c:3]") and not has_editing("a [b] (c:1.2)")


def test_editing_beyond_steps_is_refused():
    with pytest.raises(PromptSyntaxError, match="after step 30, but steps is 20"):
        prompt_schedule("[a:b:30]", 20)
    check_prompt("[a:b:30]")  # without steps only the syntax is checked
    with pytest.raises(PromptSyntaxError, match="needs the step"):
        parse_weights("[a:b:3]")


def test_plain_text_drops_the_syntax():
    assert plain_text("a (cat:1.3) [dog] BREAK ((fox))") == "a cat dog fox"


def _tok(text):
    return [ord(c) for c in text.replace(" ", "")]


def test_chunks_of_size_with_break_and_weights():
    parts = parse_weights("abc (de:2) BREAK f")
    chunks = chunk_tokens(parts, _tok, size=3)
    assert chunks == [Chunk((97, 98, 99), (1.0,) * 3), Chunk((100, 101), (2.0, 2.0)), Chunk((102,), (1.0,))]
    assert chunk_tokens([[]], _tok) == [Chunk((), ())]  # an empty prompt is one empty chunk
    assert len(chunk_tokens(parse_weights("a BREAK"), _tok)) == 1  # a trailing BREAK adds nothing
    assert len(chunk_tokens(parse_weights("BREAK a"), _tok)) == 2  # a leading one starts with an empty chunk


def test_full_chunk_is_cut_after_its_last_comma():
    comma = ord(",")
    parts = [[Segment("abcd,efg", 1.0)]]
    cut = chunk_tokens(parts, _tok, size=6, comma=comma, backtrack=3)
    assert [c.tokens for c in cut] == [tuple(map(ord, "abcd,")), tuple(map(ord, "efg"))]
    far = chunk_tokens(parts, _tok, size=6, comma=comma, backtrack=1)  # the comma is too far back: a hard cut
    assert [c.tokens for c in far] == [tuple(map(ord, "abcd,e")), tuple(map(ord, "fg"))]


def test_interpolate_weighted_along_a_path():
    assert interpolate_weighted("(cat:1.0)", "(cat:0.0)", 0.5) == "(cat:0.5)"
    assert interpolate_weighted("a (cat:1.0) face", "a (cat:0.0) face", 0.25) == "a (cat:0.75) face"
    assert interpolate_weighted("a cat", "a (cat:2)", 0.5) == "a (cat:1.5)"
    assert interpolate_weighted("((cat))", "cat", 0.5) == "(cat:1.105)"
    assert interpolate_weighted("(cat:1.0)", "(cat:0.0)", 0) == "(cat:1.0)"  # exact endpoints
    assert interpolate_weighted("(cat:1.0)", "(cat:0.0)", 1) == "(cat:0.0)"
    assert interpolate_weighted(r"(\(x\):1) BREAK b", r"(\(x\):3) BREAK b", 0.5) == r"(\(x\):2) BREAK b"
    assert interpolate_weighted("a cat", "a dog", 0.5) is None
    assert interpolate_weighted("[a:b:3]", "[a:b:3]", 0.5) is None
    assert interpolate_weighted("(cat", "cat", 0.5) is None
    mid = interpolate_weighted("(cat:1.2) (dog:0.5)", "(cat:0.2) (dog:1.5)", 0.5)
    assert weights(mid) == [[("cat", 0.7), (" dog", 1.0)]]
