"""Metrics: pure functions plus `evaluate` modules that load offline.

``evaluate.load(vl_hub.metrics.module_path("vqa_accuracy"))`` loads a module from the installed
package, with no network (``evaluate.load("bleu")`` needs the Hub).
"""

from __future__ import annotations

from pathlib import Path

from vl_hub.metrics.classification import topk_accuracy
from vl_hub.metrics.retrieval import recall_at_k, retrieval_metrics
from vl_hub.metrics.visdial import visdial_metrics
from vl_hub.metrics.vqa import normalize_answer, vqa_accuracy, vqa_score

_MODULES_DIR = Path(__file__).parent / "evaluate_modules"


def list_evaluate_modules() -> list[str]:
    """Names of the shipped `evaluate` modules."""
    return sorted(p.name for p in _MODULES_DIR.iterdir() if (p / f"{p.name}.py").is_file())


def module_path(name: str) -> str:
    """Local path of a shipped `evaluate` module, for ``evaluate.load(path)`` (offline)."""
    path = _MODULES_DIR / name
    if not (path / f"{name}.py").is_file():
        raise KeyError(f"unknown evaluate module {name!r}; valid names: {', '.join(list_evaluate_modules())}")
    return str(path)


def caption_metrics(*args, **kwargs):  # noqa: ANN002, ANN003 - re-export without importing pycocoevalcap eagerly
    """See :func:`vl_hub.metrics.caption.caption_metrics`."""
    from vl_hub.metrics.caption import caption_metrics as _impl

    return _impl(*args, **kwargs)


__all__ = [
    "caption_metrics",
    "list_evaluate_modules",
    "module_path",
    "normalize_answer",
    "recall_at_k",
    "retrieval_metrics",
    "topk_accuracy",
    "visdial_metrics",
    "vqa_accuracy",
    "vqa_score",
]
