"""Caption metrics through pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr (and SPICE on request).

Tokenisation is the COCO one: Stanford PTBTokenizer when Java is present, otherwise a Python
re-implementation of its behaviour for plain captions (lower-case, split punctuation, drop punctuation
tokens). METEOR and SPICE need Java; without it they are reported as unavailable with the reason
instead of failing the whole evaluation. Scores are fractions, as pycocoevalcap returns them
(CIDEr 1.3 = "130" in papers).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence

_PTB_PUNCT = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"}
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def java_available() -> bool:
    """Whether a ``java`` executable is on PATH (needed by PTBTokenizer, METEOR and SPICE)."""
    return shutil.which("java") is not None


def python_ptb_tokenize(text: str) -> str:
    """Lower-cases, splits punctuation off words and drops punctuation tokens, like COCO's PTB step."""
    tokens = _TOKEN.findall(text.lower().replace("\n", " "))
    return " ".join(t for t in tokens if t not in _PTB_PUNCT)


def _tokenize(captions: dict[int, list[str]], use_java: bool) -> dict[int, list[str]]:
    if use_java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
    return {k: [python_ptb_tokenize(c) for c in v] for k, v in captions.items()}


def caption_metrics(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    meteor: bool = True,
    spice: bool = False,
) -> dict[str, float | str]:
    """Scores generated captions against their references (one list of references per prediction).

    Returns ``bleu_1``…``bleu_4``, ``rouge_l``, ``cider`` and, when computable, ``meteor`` / ``spice``;
    a metric that cannot run here appears as ``<name>_unavailable`` with the reason.
    """
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} reference lists; pass one list per prediction")
    if not predictions:
        raise ValueError("caption_metrics needs at least one prediction")
    for i, refs in enumerate(references):
        if len(refs) == 0:
            raise ValueError(f"prediction {i} has no reference captions")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    use_java = java_available()
    gts = _tokenize({i: list(r) for i, r in enumerate(references)}, use_java)
    res = _tokenize({i: [p] for i, p in enumerate(predictions)}, use_java)
    out: dict[str, float | str] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out.update({f"bleu_{n + 1}": float(b) for n, b in enumerate(bleu)})
    out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    out["cider"] = float(Cider().compute_score(gts, res)[0])
    if meteor:
        if not use_java:
            out["meteor_unavailable"] = "METEOR needs Java (install a JRE, e.g. apt-get install default-jre)"
        else:
            from pycocoevalcap.meteor.meteor import Meteor

            scorer = Meteor()
            try:
                out["meteor"] = float(scorer.compute_score(gts, res)[0])
            finally:
                scorer.close() if hasattr(scorer, "close") else None
    if spice:
        try:
            from pycocoevalcap.spice.spice import Spice

            out["spice"] = float(Spice().compute_score(gts, res)[0])
        except Exception as err:  # SPICE downloads Stanford models on first use; offline it cannot
            out["spice_unavailable"] = f"SPICE could not run ({type(err).__name__}: {err}); it needs Java and a one-time model download"
    return out
