"""Zero-shot classification data and the prompt-ensembled text classifier of CLIP.

Data files shipped beside this module: ``imagenet_classnames.txt`` (the 1,000 ImageNet class names OpenAI
curated for CLIP, label order) and ``openai_imagenet_templates.txt`` (the 80 prompt templates of CLIP's
zero-shot ImageNet evaluation).

The classifier of ``C`` class names and ``T`` templates is, per class, the mean of the ``T`` L2-normalised
text embeddings of ``template.format(name)``, renormalised (CLIP's prompt ensembling): ``(C, E)``.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = [
    "check_class_names",
    "check_templates",
    "ensemble_text_classifier",
    "imagenet_classnames",
    "openai_imagenet_templates",
]

_HERE = Path(__file__).resolve().parent


def _read_lines(name: str) -> tuple[str, ...]:
    lines = (_HERE / name).read_text(encoding="utf-8").splitlines()
    return tuple(line for line in lines if line and not line.startswith("#"))


@lru_cache(maxsize=None)
def imagenet_classnames() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in label order (OpenAI's curated CLIP names; 0 = ``"tench"``)."""
    return _read_lines("imagenet_classnames.txt")


@lru_cache(maxsize=None)
def openai_imagenet_templates() -> tuple[str, ...]:
    """The 80 OpenAI prompt templates (``"a bad photo of a {}."``, ...), ``{}`` standing for the class name."""
    return _read_lines("openai_imagenet_templates.txt")


def check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """Returns the class names as a tuple; raises on a bare string, an empty list or a non-string/empty name."""
    if isinstance(class_names, str):
        raise TypeError(
            f"class_names must be a list of names, got the single string {class_names!r}; wrap it: [{class_names!r}]"
        )
    names = tuple(class_names)
    if not names:
        raise ValueError("class_names is empty; zero-shot classification needs at least one class name")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class_names[{i}]={name!r}: every class name must be a non-empty string")
    return names


def check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """Returns the templates as a tuple; each must hold exactly one ``{}`` where the class name goes.

    Raises on a bare string, an empty list, or a template with no ``{}``, several fields, named fields
    (``{c}``), format specs or unbalanced braces (write literal braces as ``{{``/``}}``).
    """
    if isinstance(templates, str):
        raise TypeError(f"templates must be a list of strings, got the single string {templates!r}; wrap it")
    items = tuple(templates)
    if not items:
        raise ValueError("templates is empty; pass at least one template such as 'a photo of a {}.'")
    formatter = string.Formatter()
    for template in items:
        if not isinstance(template, str):
            raise TypeError(f"template {template!r} is a {type(template).__name__}; templates must be strings")
        try:
            fields = [(name, spec, conv) for _, name, spec, conv in formatter.parse(template) if name is not None]
        except ValueError as err:
            raise ValueError(
                f"template {template!r} is not a valid format string ({err}); write literal braces as '{{{{' / '}}}}'"
            ) from err
        if fields != [("", "", None)]:
            raise ValueError(
                f"template {template!r} must contain exactly one '{{}}' where the class name goes (e.g. "
                f"'a photo of a {{}}.'); found {len(fields)} replacement field(s)"
                + (f": {['{' + n + (':' + s if s else '') + '}' for n, s, _ in fields]}" if fields else "")
            )
    return items


@torch.no_grad()
def ensemble_text_classifier(
    encode_texts: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str],
    batch_size: int = 256,
) -> torch.Tensor:
    """CLIP's prompt-ensembled zero-shot classifier.

    Args:
        encode_texts: ``list of N strings -> (N, E)`` text embeddings (normalised or not).
        class_names: ``C`` class names.
        templates: ``T`` templates with one ``{}`` each.
        batch_size: at most about this many texts per ``encode_texts`` call (whole classes per call, at least one).

    Returns:
        ``(C, E)`` float32: per class, the mean of the ``T`` normalised embeddings, renormalised.
    """
    names = check_class_names(class_names)
    temps = check_templates(templates)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    per_call = max(1, batch_size // len(temps))
    chunks = []
    for start in range(0, len(names), per_call):
        group = names[start : start + per_call]
        texts = [template.format(name) for name in group for template in temps]
        embeds = F.normalize(encode_texts(texts).float(), dim=-1)  # (k*T, E)
        chunks.append(F.normalize(embeds.view(len(group), len(temps), -1).mean(dim=1), dim=-1))
    return torch.cat(chunks, dim=0)
