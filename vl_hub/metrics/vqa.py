"""VQA accuracy with the official VQAv2 answer normalisation.

Accuracy of one prediction against the 10 human answers is ``min(#matches / 3, 1)`` averaged over the
ten leave-one-annotator-out subsets of 9 answers, as the official evaluation script does. As there, the
prediction is normalised (punctuation, number words, articles, contractions) and the human answers lose
their punctuation when they disagree; ``always_normalize=True`` fully normalises the human answers too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# The official script's tables (data, reproduced for identical numbers).
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}  # fmt: skip
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def _process_punctuation(text: str) -> str:
    out = text
    for p in _PUNCT:
        # A punctuation mark next to a space, or a digit group comma, is removed; else it splits words.
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out)


def _process_digit_article(text: str) -> str:
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def normalize_answer(answer: str) -> str:
    """The official VQA answer normalisation: whitespace, punctuation, number words, articles, contractions.

    >>> normalize_answer("Two dogs!")
    '2 dogs'
    """
    answer = answer.replace("\n", " ").replace("\t", " ").strip()
    return _process_digit_article(_process_punctuation(answer))


def vqa_accuracy(prediction: str, answers: Sequence[str], always_normalize: bool = False) -> float:
    """Accuracy of one predicted answer against the human ``answers`` (10 for VQAv2).

    ``min(1, #matches among the other answers / 3)`` averaged over leaving each answer out. Returns a
    value in [0, 1]. Raises ``ValueError`` for an empty answer list (an unlabelled question).
    """
    if not answers:
        raise ValueError("vqa_accuracy needs at least one ground-truth answer; got an empty list (unlabelled split?)")
    # As the official script: the prediction is always fully normalised; the human answers (already
    # normalised when the dataset was built) only lose punctuation, and only when they disagree.
    pred = _process_digit_article(_process_punctuation(prediction.replace("\n", " ").replace("\t", " ").strip()))
    gts = [a.replace("\n", " ").replace("\t", " ").strip() for a in answers]
    if always_normalize:
        gts = [_process_digit_article(_process_punctuation(a)) for a in gts]
    elif len(set(gts)) > 1:
        gts = [_process_punctuation(a) for a in gts]
    matches = sum(g == pred for g in gts)
    # Leaving out annotator i removes one match exactly when that annotator agreed with the prediction.
    per_subset = [min(1.0, (matches - (g == pred)) / 3.0) for g in gts]
    return sum(per_subset) / len(per_subset)


def vqa_score(predictions: Sequence[str], answers: Sequence[Sequence[str]], always_normalize: bool = False) -> dict[str, float]:
    """Mean VQA accuracy (in percent, as reported) over questions; ``{"vqa_accuracy": ...}``."""
    if len(predictions) != len(answers):
        raise ValueError(f"got {len(predictions)} predictions for {len(answers)} questions; pass one answer per question")
    if not predictions:
        raise ValueError("vqa_score needs at least one question")
    accs = [vqa_accuracy(p, a, always_normalize) for p, a in zip(predictions, answers)]
    return {"vqa_accuracy": 100.0 * sum(accs) / len(accs)}
