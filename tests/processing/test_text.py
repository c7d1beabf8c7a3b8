"""Caption and question normalisers reproduce LAVIS's pre_caption / pre_question on hand-written cases."""

from __future__ import annotations

import pytest

from vl_hub.processing.text import CaptionProcessor, QuestionProcessor, pre_caption, pre_question


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A Dog runs.", "a dog runs"),
        ("A man (left) and a woman!", "a man left and a woman"),
        ('He said: "hi"; then #left~*', "he said hi then left"),
        # commas, apostrophes, question marks, hyphens and slashes are kept
        ("a well-known man's car, red/blue?", "a well-known man's car, red/blue?"),
        ("  two   spaces\tand\n\nnewlines  ", "two spaces\tand newlines"),
        ("ends with newline\n", "ends with newline"),
        ("...", ""),
        ("MiXeD CaSe", "mixed case"),
    ],
)
def test_pre_caption(raw: str, expected: str) -> None:
    assert pre_caption(raw) == expected


def test_pre_caption_truncates_words() -> None:
    assert pre_caption("one two three four five", max_words=3) == "one two three"
    assert pre_caption("one two three", max_words=3) == "one two three"


def test_caption_processor_prompt() -> None:
    processor = CaptionProcessor(prompt="a picture of ", max_words=2)
    assert processor("A Black Cat sleeping.") == "a picture of a black"
    assert CaptionProcessor()("Hello!") == "hello"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("What color is the cat's (left) ear?", "what color is the cat's left ear?"),
        ("Is it raining...?", "is it raining?"),
        ("How many: dogs; cats~", "how many dogs cats"),
        # punctuation is deleted without inserting a space; internal whitespace is left as it is
        ("Where.is  it ", "whereis  it"),
        ("  leading spaces stay", "  leading spaces stay"),
    ],
)
def test_pre_question(raw: str, expected: str) -> None:
    assert pre_question(raw) == expected


def test_pre_question_truncates_and_processor() -> None:
    assert pre_question("a b c d", max_words=2) == "a b"
    assert QuestionProcessor(max_words=3)("Why Is The Sky Blue?") == "why is the"


def test_bad_inputs() -> None:
    with pytest.raises(TypeError, match="caption must be a string"):
        pre_caption(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="question must be a string"):
        pre_question(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_words"):
        CaptionProcessor(max_words=0)
