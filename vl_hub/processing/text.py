"""Caption and question normalisers, as LAVIS's ``BlipCaptionProcessor`` / ``BlipQuestionProcessor``.

Both keep the originals' exact behaviour so that tokenised training and evaluation text is the same
as LAVIS's (including its quirks: only runs of two or more whitespace characters are collapsed in
captions, and questions keep their internal whitespace untouched).
"""

from __future__ import annotations

import re

__all__ = ["CaptionProcessor", "QuestionProcessor", "pre_caption", "pre_question"]

# The punctuation LAVIS removes: . ! " ( ) * # : ; ~  (commas, apostrophes, '?', '-' and '/' stay).
_PUNCTUATION = re.compile(r"[.!\"()*#:;~]")
_WHITESPACE_RUN = re.compile(r"\s{2,}")


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string; got {type(value).__name__}: {value!r}")
    return value


def _check_max_words(max_words: int) -> None:
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1; got {max_words}")


def _truncate(text: str, max_words: int) -> str:
    words = text.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else text


def pre_caption(caption: str, max_words: int = 50) -> str:
    """Normalises a caption as ``BlipCaptionProcessor.pre_caption``.

    Lower-cases, replaces each of ``. ! " ( ) * # : ; ~`` with a space, replaces every run of two or
    more whitespace characters with one space, strips trailing newlines and surrounding spaces, and
    keeps the first ``max_words`` space-separated words.

    >>> pre_caption("A Dog (brown) runs!  On the beach.")
    'a dog brown runs on the beach'
    """
    _check_text("caption", caption)
    _check_max_words(max_words)
    caption = _PUNCTUATION.sub(" ", caption.lower())
    caption = _WHITESPACE_RUN.sub(" ", caption)
    caption = caption.rstrip("\n").strip(" ")
    return _truncate(caption, max_words)


def pre_question(question: str, max_words: int = 50) -> str:
    """Normalises a question as ``BlipQuestionProcessor.pre_question``.

    Lower-cases, deletes each of ``. ! " ( ) * # : ; ~`` (no space inserted; ``?`` is kept), strips
    trailing spaces and keeps the first ``max_words`` space-separated words.

    >>> pre_question("What color is the cat's (left) ear?")
    "what color is the cat's left ear?"
    """
    _check_text("question", question)
    _check_max_words(max_words)
    question = _PUNCTUATION.sub("", question.lower()).rstrip(" ")
    return _truncate(question, max_words)


class CaptionProcessor:
    """Callable caption normaliser: ``prompt + pre_caption(caption, max_words)`` (LAVIS ``blip_caption``).

    Args:
        prompt: text prepended after normalisation, e.g. ``"a picture of "`` for BLIP captioning.
        max_words: words kept (the prompt is not counted).
    """

    def __init__(self, prompt: str = "", max_words: int = 50) -> None:
        _check_text("prompt", prompt)
        _check_max_words(max_words)
        self.prompt = prompt
        self.max_words = max_words

    def __call__(self, caption: str) -> str:
        """Returns the normalised caption with the prompt in front."""
        return self.prompt + pre_caption(caption, self.max_words)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prompt={self.prompt!r}, max_words={self.max_words})"


class QuestionProcessor:
    """Callable question normaliser: ``pre_question(question, max_words)`` (LAVIS ``blip_question``)."""

    def __init__(self, max_words: int = 50) -> None:
        _check_max_words(max_words)
        self.max_words = max_words

    def __call__(self, question: str) -> str:
        """Returns the normalised question."""
        return pre_question(question, self.max_words)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_words={self.max_words})"
