"""The model catalogue (LAVIS's model zoo): ``(name, model_type)`` -> architecture, head, hub repository.

Every family keeps its own catalogue in ``vl_hub/models/<family>/catalogue.py`` as a module-level dict whose name ends
in ``_CATALOGUE`` (``BLIP_CATALOGUE``, ``CLIP_CATALOGUE``, ...) mapping ``(name, model_type)`` to an entry object with
``as_dict()`` and ``config()`` (or to a plain dict). This module finds those modules by itself, so a new family's
catalogue appears here without editing this file.

Public functions (also ``vl_hub.list_models`` / ``vl_hub.load_model`` / ``vl_hub.load_model_and_processor``):

* :func:`list_models` -- every ``(name, model_type)`` with its family, task, head and hub repository;
* :func:`get_entry` -- one entry (an unknown name raises :class:`UnknownModelError` listing the valid ones);
* :func:`load_model` / :func:`load_model_and_processor` -- the head with converted weights, from the Hub or the local
  cache by repository id (``from_pretrained(repo_id)``); when they are not available (offline, not converted yet)
  :class:`ModelNotAvailableError` says which repository was looked for, where the original checkpoint is and the
  ``vl-hub convert`` command that builds the folder;
* :func:`render_model_card` / :func:`write_model_cards` -- the ``model_cards/<name>_<model_type>.md`` cards
  (``python -m vl_hub.zoo cards [--family blip]`` rewrites them); the layout is here, the family's text in its
  ``catalogue.py`` (see :func:`render_model_card`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

__all__ = [
    "ModelListing",
    "ModelNotAvailableError",
    "UnknownModelError",
    "ZooEntry",
    "get_catalogue",
    "get_entry",
    "list_models",
    "load_model",
    "load_model_and_processor",
    "render_model_card",
    "write_model_cards",
]

# head class name suffix -> task, for catalogue entries that do not name their task (longest suffixes first)
_HEAD_TASKS: tuple[tuple[str, str], ...] = (
    ("ForVideoQuestionAnswering", "video question answering"),
    ("ForVideoTextRetrieval", "video-text retrieval"),
    ("ForConditionalGeneration", "image captioning"),
    ("ForImageTextRetrieval", "image-text retrieval"),
    ("ForQuestionAnswering", "visual question answering"),
    ("ForNLVR", "visual reasoning (NLVR2)"),
    ("ForVisualEntailment", "visual entailment"),
    ("ForImageTextClassification", "image-text classification"),
    ("ForZeroShotClassification", "zero-shot classification"),
    ("ForPreTraining", "pretraining"),
    ("Model", "feature extraction"),
)


class UnknownModelError(KeyError):
    """An unknown ``(name, model_type)``; the message lists the valid ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelNotAvailableError(OSError):
    """The converted weights of a catalogue entry are neither in the local Hub cache nor downloadable; the message
    names the repository, the original checkpoint and the conversion command."""


@dataclass(frozen=True)
class ZooEntry:
    """One catalogue entry, family-neutral.

    Attributes:
        family: ``blip``, ``clip``, ``albef``, ...
        name: LAVIS model name (``blip_caption``).
        model_type: LAVIS model type (``base_coco``).
        head: the vl_hub head class name (``BlipForConditionalGeneration``).
        task: what the head does (``image captioning``).
        repo_id: hub repository where the converted checkpoint is expected (``vl-hub/blip-caption-base-coco``).
        source_url: the original checkpoint.
        convert_command: the ``vl-hub convert`` (or family script) command that builds the folder from it.
        image_size: processor resolution.
        details: the family entry's ``as_dict()`` (results, datasets, LAVIS config, tokenizer URL, ...).
    """

    family: str
    name: str
    model_type: str
    head: str
    task: str
    repo_id: str
    source_url: str
    convert_command: str
    image_size: int | None
    details: dict[str, Any] = field(hash=False, compare=False, repr=False)
    _entry: Any = field(hash=False, compare=False, repr=False, default=None)

    @property
    def key(self) -> tuple[str, str]:
        """``(name, model_type)``."""
        return self.name, self.model_type

    @property
    def spec(self) -> str:
        """``"name:model_type"``, the ``--model-type`` argument of ``vl-hub convert``."""
        return f"{self.name}:{self.model_type}"

    def config(self) -> Any:
        """A fresh config object of this entry's architecture (the family's config class)."""
        if self._entry is not None and hasattr(self._entry, "config"):
            return self._entry.config()
        raise TypeError(f"the {self.family} catalogue entry {self.spec} provides no config()")


class ModelListing(NamedTuple):
    """One row of :func:`list_models`."""

    name: str
    model_type: str
    task: str
    head: str
    family: str
    repo_id: str


def _task_of(head: str) -> str:
    for suffix, task in _HEAD_TASKS:
        if head.endswith(suffix):
            return task
    return "other"


def _adapt(family: str, key: Any, entry: Any, module: str) -> ZooEntry:
    details = entry.as_dict() if hasattr(entry, "as_dict") else dict(entry) if isinstance(entry, Mapping) else None
    if details is None:
        raise TypeError(f"{module}: catalogue entry {key!r} is a {type(entry).__name__}, not a dict or an entry object")
    missing = [k for k in ("name", "model_type", "head", "repo_id") if not details.get(k)]
    if missing:
        raise ValueError(f"{module}: catalogue entry {key!r} lacks {missing}")
    if tuple(key) != (details["name"], details["model_type"]):
        raise ValueError(f"{module}: catalogue key {key!r} differs from the entry's name/model_type")
    return ZooEntry(
        family=details.get("family") or family,
        name=details["name"],
        model_type=details["model_type"],
        head=details["head"],
        task=details.get("task") or _task_of(details["head"]),
        repo_id=details["repo_id"],
        source_url=details.get("source_url", ""),
        convert_command=details.get("convert_command", ""),
        image_size=details.get("image_size"),
        details=details,
        _entry=entry,
    )


def _catalogue_modules() -> list[tuple[str, str]]:
    """``(family, module name)`` of every ``vl_hub/models/<family>/catalogue.py``."""
    import vl_hub.models

    found = []
    for info in pkgutil.iter_modules(vl_hub.models.__path__):
        if not info.ispkg:
            continue
        module = f"vl_hub.models.{info.name}.catalogue"
        if importlib.util.find_spec(module) is not None:
            found.append((info.name, module))
    return sorted(found)


_CATALOGUE: dict[tuple[str, str], ZooEntry] | None = None


def get_catalogue(refresh: bool = False) -> dict[tuple[str, str], ZooEntry]:
    """Every family's catalogue merged: ``{(name, model_type): ZooEntry}`` (found once, then cached).

    Raises:
        ImportError: naming a family catalogue module that fails to import (a registry fails loudly).
        ValueError: two families claiming the same ``(name, model_type)``.
    """
    global _CATALOGUE
    if _CATALOGUE is not None and not refresh:
        return _CATALOGUE
    merged: dict[tuple[str, str], ZooEntry] = {}
    for family, module_name in _catalogue_modules():
        try:
            module = importlib.import_module(module_name)
        except Exception as err:
            raise ImportError(f"the {family} model catalogue {module_name} failed to import: {err}") from err
        for attr, value in vars(module).items():
            if not attr.endswith("_CATALOGUE") or not isinstance(value, Mapping):
                continue
            for key, entry in value.items():
                adapted = _adapt(family, key, entry, module_name)
                if adapted.key in merged and merged[adapted.key].family != adapted.family:
                    raise ValueError(
                        f"{adapted.spec} is in both the {merged[adapted.key].family} and the {adapted.family} catalogue"
                    )
                merged[adapted.key] = adapted
    _CATALOGUE = dict(sorted(merged.items()))
    return _CATALOGUE


def _valid(catalogue: Mapping[tuple[str, str], ZooEntry], name: str | None = None) -> str:
    if name is not None:
        types = [t for n, t in catalogue if n == name]
        if types:
            return f"model types of {name!r}: {', '.join(types)}"
    names: dict[str, list[str]] = {}
    for n, t in catalogue:
        names.setdefault(n, []).append(t)
    return "valid (name: model types): " + "; ".join(f"{n}: {', '.join(ts)}" for n, ts in names.items())


def get_entry(name: str, model_type: str | None = None) -> ZooEntry:
    """The entry ``(name, model_type)``; ``name`` may also be ``"name:model_type"``.

    Raises:
        UnknownModelError: listing the valid model types of ``name``, or every valid name when ``name`` is unknown.
    """
    if model_type is None:
        if ":" not in name:
            catalogue = get_catalogue()
            raise UnknownModelError(
                f"model {name!r} needs a model type: pass load_model({name!r}, model_type) or {name!r}:<type>; "
                + _valid(catalogue, name)
            )
        name, model_type = name.rsplit(":", 1)
    catalogue = get_catalogue()
    entry = catalogue.get((name, model_type))
    if entry is None:
        raise UnknownModelError(f"unknown model {name!r} with model_type {model_type!r}; " + _valid(catalogue, name))
    return entry


def list_models(family: str | None = None, task: str | None = None) -> list[ModelListing]:
    """Every catalogue entry as ``(name, model_type, task, head, family, repo_id)``, sorted by name and type.

    Args:
        family: only this family (``"blip"``).
        task: only this task (``"image captioning"``).
    """
    rows = [
        ModelListing(e.name, e.model_type, e.task, e.head, e.family, e.repo_id) for e in get_catalogue().values()
    ]
    if family is not None:
        rows = [r for r in rows if r.family == family]
    if task is not None:
        rows = [r for r in rows if r.task == task]
    return rows


# ---------------------------------------------------------------------------------------------- loading
def _head_class(entry: ZooEntry) -> type:
    from vl_hub.auto import AutoVlHubModel

    try:
        return AutoVlHubModel.head_class(SimpleNamespace(architectures=[entry.head]))
    except ValueError as err:
        raise ValueError(
            f"{entry.spec} needs the head {entry.head} of the {entry.family} family, which is not registered: {err}"
        ) from err


def _not_available(entry: ZooEntry, repo_id: str, err: BaseException) -> ModelNotAvailableError:
    from huggingface_hub import constants

    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    offline = " (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else ""
    source = entry.source_url or "the original checkpoint"
    tokenizer = entry.details.get("tokenizer_url")
    steps = [f"  1. download {source}" + (f" and the tokenizer {tokenizer}" if tokenizer else "")]
    if entry.convert_command:
        steps.append(f"  2. {entry.convert_command}")
    out = entry.convert_command.split()[-1] if entry.convert_command else "<out>"
    steps.append(f"  3. vl_hub.load_model({entry.name!r}, {entry.model_type!r}, repo_id={out!r})  # the converted folder")
    return ModelNotAvailableError(
        f"{entry.spec} ({entry.head}) loads converted weights from the Hub repository {repo_id!r}, which is neither in "
        f"the local cache ({constants.HF_HUB_CACHE}) nor downloadable here{offline}: {reason}\n"
        "Build it from the original checkpoint:\n" + "\n".join(steps)
    )


def load_model(
    name: str,
    model_type: str | None = None,
    *,
    repo_id: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **from_pretrained_kwargs: Any,
) -> Any:
    """The catalogue entry's head with its converted weights, in eval mode.

    Args:
        name: LAVIS model name (``"blip_caption"``) or ``"name:model_type"``.
        model_type: LAVIS model type (``"base_coco"``).
        repo_id: load from this repository id or local folder instead of the entry's ``repo_id`` (e.g. the output of
            ``vl-hub convert``).
        revision, cache_dir: as in ``from_pretrained``.
        from_pretrained_kwargs: passed to the head's ``from_pretrained`` (``dtype``, ``device_map``, ...).

    Raises:
        UnknownModelError: an unknown name / type (the valid ones are listed).
        ModelNotAvailableError: the weights are neither cached nor downloadable (the message says how to convert
            them).
    """
    entry = get_entry(name, model_type)
    head = _head_class(entry)
    source = str(repo_id) if repo_id is not None else entry.repo_id
    try:
        model = head.from_pretrained(source, revision=revision, cache_dir=cache_dir, **from_pretrained_kwargs)
    except OSError as err:
        raise _not_available(entry, source, err) from err
    return model.eval()


def load_model_and_processor(
    name: str,
    model_type: str | None = None,
    *,
    repo_id: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **from_pretrained_kwargs: Any,
) -> tuple[Any, Any]:
    """:func:`load_model` and the checkpoint's processor (``AutoProcessor.from_pretrained`` of the same repository).

    Returns:
        ``(model, processor)``.
    """
    from transformers import AutoProcessor

    model = load_model(
        name, model_type, repo_id=repo_id, revision=revision, cache_dir=cache_dir, **from_pretrained_kwargs
    )
    entry = get_entry(name, model_type)
    source = str(repo_id) if repo_id is not None else entry.repo_id
    try:
        processor = AutoProcessor.from_pretrained(source, revision=revision, cache_dir=cache_dir)
    except OSError as err:
        raise _not_available(entry, source, err) from err
    return model, processor


# ---------------------------------------------------------------------------------------------- model cards
#: the section headings of ``model_cards/TEMPLATE.md``, in order (a test keeps the two in step)
CARD_SECTIONS: tuple[str, ...] = (
    "Architecture",
    "Source checkpoint",
    "Conversion",
    "Reported results (original)",
    "Intended use",
    "Limitations",
    "Citation",
)

# LAVIS itself, cited after the family's own work on every card of a LAVIS model
_LAVIS_CITATION = (
    "@inproceedings{li-etal-2023-lavis,\n"
    "  title={LAVIS: A One-stop Library for Language-Vision Intelligence},\n"
    "  author={Dongxu Li and Junnan Li and Hung Le and Guangsen Wang and Silvio Savarese and Steven C.H. Hoi},\n"
    "  booktitle={ACL (System Demonstrations)},\n"
    "  year={2023}\n"
    "}"
)

_LICENSES = {"blip": "bsd-3-clause", "albef": "bsd-3-clause", "alpro": "bsd-3-clause", "clip": "mit"}

# task -> the "Intended use" sentence, family-neutral; a family's ``CARD_INTENDED_USE`` overrides it
_INTENDED_USE = {
    "image captioning": "Generating English captions for natural images (COCO-style descriptions).",
    "image-text retrieval": (
        "Ranking images for a text query and texts for an image (ITC similarity, re-scored by ITM on the top "
        "`k_test` candidates), zero-shot image-text matching and classification by caption scoring."
    ),
    "image-text matching": "Scoring whether an image and a text match (ITM head) and their ITC similarity.",
    "visual question answering": "Answering short English questions about an image (answer generation or ranking).",
    "visual reasoning (NLVR2)": "Deciding whether an English statement is true of a pair of images (NLVR2).",
    "feature extraction": "Unimodal and multimodal image/text features for retrieval, probing and downstream heads.",
}


def _yaml_block(mapping: Mapping[str, Any], indent: str = "") -> list[str]:
    """The card header's YAML, as the committed cards write it: top-level lists one item a line, nested lists inline,
    plain scalars unquoted."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            lines.append(f"{indent}{key}:")
            lines.extend(_yaml_block(value, indent + "  "))
        elif isinstance(value, (list, tuple)) and not indent:
            lines.append(f"{key}:")
            lines.extend(f"- {item}" for item in value)
        elif isinstance(value, (list, tuple)):
            lines.append(f"{indent}{key}: {_yaml_list([str(v) for v in value])}")
        elif isinstance(value, bool):
            lines.append(f"{indent}{key}: {str(value).lower()}")
        else:
            lines.append(f"{indent}{key}: {value}")
    return lines


def _render_document(entry: ZooEntry, document: Mapping[str, Any]) -> str:
    """A card in a family's own sections (``card_document``): the shared header fields, the family's YAML, the
    title, the introduction and each ``(heading, markdown)`` section."""
    header = [
        "---",
        "library_name: vl_hub",
        f"license: {entry.details.get('license') or _LICENSES.get(entry.family, 'other')}",
    ]
    if document.get("pipeline_tag"):
        header.append(f"pipeline_tag: {document['pipeline_tag']}")
    header.extend(_yaml_block(document.get("header") or {}))
    header.append("---")
    body = [f"# {document['title']}", "", document["intro"], ""]
    for heading, text in document["sections"]:
        body.extend([f"## {heading}", "", text.rstrip("\n"), ""])
    return "\n".join(header) + "\n\n" + "\n".join(body)


def _card_text(entry: ZooEntry) -> Any:
    """The family catalogue module of ``entry``: it holds the family's card text (see :func:`render_model_card`)."""
    try:
        return importlib.import_module(f"vl_hub.models.{entry.family}.catalogue")
    except ModuleNotFoundError:  # a plain-dict catalogue registered some other way: family-neutral text only
        return SimpleNamespace()


def _yaml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _base_model(entry: ZooEntry) -> str | None:
    """The repository of the catalogue entry whose checkpoint this one was fine-tuned from (pre-training preferred)."""
    pretrained = entry.details.get("pretrained_url")
    if not pretrained:
        return None
    candidates = [
        e for e in get_catalogue().values() if e.family == entry.family and e.source_url == pretrained and e != entry
    ]
    candidates.sort(key=lambda e: (not e.name.endswith("_pretrain"), e.spec))
    return candidates[0].repo_id if candidates else None


def _results_table(results: Mapping[str, Any] | None, reason: str | None) -> str:
    if not results:
        return (reason or "The original publication reports no result for this checkpoint.") + "\n"
    rows = list(results.get("rows") or [])
    metrics: list[str] = []
    for row in rows:
        metrics.extend(k for k in row if k != "dataset" and k not in metrics)
    lines = [
        (
            f"Reported by the original authors -- {results.get('source', 'the original publication')}; vl_hub "
            "converts the weights and does not re-run these evaluations."
        ),
        "",
        "| dataset | " + " | ".join(metrics) + " |",
        "| --- | " + " | ".join("---" for _ in metrics) + " |",
    ]
    for row in rows:
        lines.append(f"| {row['dataset']} | " + " | ".join(str(row.get(m, "")) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def _architecture(entry: ZooEntry) -> str:
    config = entry.details.get("config") or {}
    vision, text = config.get("vision_config") or {}, config.get("text_config") or {}
    lines = [f"- vl_hub head: `{entry.head}` (family `{entry.family}`), loaded by the Auto classes after `import vl_hub`."]
    if vision:
        lines.append(
            f"- Vision: ViT, patch {vision.get('patch_size')}, width {vision.get('hidden_size')}, "
            f"{vision.get('num_hidden_layers')} blocks, {vision.get('num_attention_heads')} heads, "
            f"{vision.get('image_size')} px input, stochastic depth {vision.get('drop_path_rate', 0.0)}."
        )
    family = _card_text(entry)
    if text and hasattr(family, "card_text_tower"):
        lines.append(f"- Text: {family.card_text_tower(entry)}")
    settings = [
        f"`{k}={config[k]!r}`"
        for k in ("embed_dim", "max_txt_len", "prompt", "k_test", "queue_size", "num_answer_candidates", "num_labels")
        if k in config and config[k] not in (None, "")
    ]
    if hasattr(family, "card_extra_settings"):
        settings.extend(family.card_extra_settings(entry))
    if settings:
        lines.append("- Settings: " + ", ".join(settings) + ".")
    training = entry.details.get("training") or {}
    if training:
        lines.append(
            "- LAVIS training settings: " + ", ".join(f"`{k}={v!r}`" for k, v in training.items())
            + " (kept in `vision_config.gradient_checkpointing_layers`; turn activation checkpointing on with "
            "`model.gradient_checkpointing_enable()`)."
        )
    generation = entry.details.get("generation") or {}
    if generation:
        lines.append("- LAVIS evaluation decoding: " + ", ".join(f"`{k}={v!r}`" for k, v in generation.items()) + ".")
    return "\n".join(lines) + "\n"


def render_model_card(name: str, model_type: str | None = None) -> str:
    """The model card (``model_cards/TEMPLATE.md`` filled in) of a catalogue entry, as Markdown with a YAML header
    (``library_name``, ``tags``, ``license``, ``datasets``, ``pipeline_tag``, ``base_model``).

    The layout (header, headings, source / conversion / results / limitations lines) is shared; what differs per
    family comes from the family's ``vl_hub/models/<family>/catalogue.py``, each piece optional:

    * ``card_text_tower(entry) -> str``: the ``- Text:`` architecture line;
    * ``card_extra_settings(entry) -> list[str]``: settings listed after the shared ``embed_dim``, ``max_txt_len``, ...;
    * ``CARD_TOKENIZER_NOTE``: what follows the tokenizer URL (added tokens);
    * ``CARD_CONVERSION_NOTE``: appended to the conversion paragraph (what the family's tests verify);
    * ``card_usage(entry) -> str``: the snippet lines after ``vl_hub.load_model_and_processor(...)``;
    * ``CARD_INTENDED_USE``: task -> sentence, overriding the family-neutral ones here;
    * ``CARD_CITATION``: the family's BibTeX (LAVIS's follows it).

    A family whose cards use sections of their own defines ``card_document(entry) -> dict`` instead (``pipeline_tag``,
    the rest of the YAML ``header``, ``title``, ``intro``, ``sections`` as ``(heading, markdown)`` pairs); the header's
    shared fields and the layout still come from here. CLIP and ALPRO do.

    Args:
        name, model_type: the entry (see :func:`get_entry`).
    """
    entry = get_entry(name, model_type)
    family = _card_text(entry)
    if hasattr(family, "card_document"):
        return _render_document(entry, family.card_document(entry))
    d = entry.details
    family_title = entry.family.upper()
    tags = ["vl_hub", entry.family, entry.task.split(" (")[0].replace(" ", "-"), "lavis", "vision-language"]
    header = [
        "---",
        "library_name: vl_hub",
        f"license: {d.get('license') or _LICENSES.get(entry.family, 'other')}",
        f"tags: {_yaml_list(tags)}",
    ]
    datasets = list(d.get("datasets") or [])
    if datasets:
        header.append(f"datasets: {_yaml_list(datasets)}")
    if d.get("pipeline_tag"):
        header.append(f"pipeline_tag: {d['pipeline_tag']}")
    base = _base_model(entry)
    if base:
        header.append(f"base_model: {base}")
    header.append("---")

    usage = family.card_usage(entry) if hasattr(family, "card_usage") else ""
    intended_use = {**_INTENDED_USE, **getattr(family, "CARD_INTENDED_USE", {})}
    intended = intended_use.get(entry.task, f"{entry.task.capitalize()}.")
    tokenizer_note = getattr(family, "CARD_TOKENIZER_NOTE", "")
    citation = getattr(family, "CARD_CITATION", None)
    sections = {
        "Architecture": _architecture(entry),
        "Source checkpoint": "\n".join(
            line
            for line in (
                f"- Original weights: {entry.source_url}",
                f"- Fine-tuned from: {d['pretrained_url']}" if d.get("pretrained_url") else "",
                f"- LAVIS configuration: `{d['lavis_config']}`" if d.get("lavis_config") else "",
                f"- Tokenizer: {d['tokenizer_url']} {tokenizer_note}".rstrip() if d.get("tokenizer_url") else "",
                f"- Converted weights are expected at the Hub repository `{entry.repo_id}`.",
            )
            if line
        )
        + "\n",
        "Conversion": (
            "```bash\n"
            f"{entry.convert_command}\n"
            "```\n\n"
            "The conversion maps the original parameter names onto the vl_hub head (LAVIS's own names), drops training "
            "state the head does not have (logged), checks tied weights and refuses missing or unexpected tensors."
            + getattr(family, "CARD_CONVERSION_NOTE", "")
            + "\n"
            if entry.convert_command
            else "See the family's conversion module.\n"
        ),
        "Reported results (original)": _results_table(d.get("reported_results"), d.get("no_results_reason")),
        "Intended use": (
            f"{intended}\n\n```python\nimport vl_hub\n\n"
            f"model, processor = vl_hub.load_model_and_processor({entry.name!r}, {entry.model_type!r})\n"
            + (usage + "\n" if usage else "")
            + "```\n"
        ),
        "Limitations": (
            f"- Converted from the original {family_title} release, not re-trained: its knowledge, vocabulary (English, "
            "uncased WordPiece) and biases are those of its training data (web image-text pairs and the fine-tuning "
            "datasets listed above); outputs can be wrong, stereotyped or offensive and should not be used for "
            "decisions about people.\n"
            f"- Images are resized to {entry.image_size} x {entry.image_size} (bicubic, no crop); other resolutions "
            "interpolate the position embeddings and may lose accuracy.\n"
            "- The results above are the original authors' numbers; vl_hub verifies the conversion numerically on "
            "LAVIS's outputs, not by re-running the benchmarks.\n"
        ),
        "Citation": (
            f"```bibtex\n{citation}\n{_LAVIS_CITATION}\n```\n" if citation else "See the original publication.\n"
        ),
    }
    title = f"# {entry.spec} -- {family_title} {entry.task} (`{entry.head}`)"
    summary = (
        f"LAVIS's `{entry.name}` model, type `{entry.model_type}`, converted to vl_hub: "
        f"`vl_hub.load_model({entry.name!r}, {entry.model_type!r})` loads it from `{entry.repo_id}`."
    )
    body = [title, "", summary, ""]
    for heading in CARD_SECTIONS:
        body.extend([f"## {heading}", "", sections[heading].rstrip("\n"), ""])
    return "\n".join(header) + "\n\n" + "\n".join(body)


def card_path(entry: ZooEntry, folder: str | os.PathLike[str] = "model_cards") -> Path:
    """``<folder>/<name>_<model_type>.md``, or the file the entry names as its ``model_card`` (several entries may
    share one card, e.g. ``clip`` and ``clip_feature_extractor`` of one OpenAI model)."""
    card = entry.details.get("model_card")
    return Path(folder) / (Path(card).name if card else f"{entry.name}_{entry.model_type}.md")


def write_model_cards(folder: str | os.PathLike[str] = "model_cards", family: str = "blip") -> list[Path]:
    """Writes :func:`render_model_card` of every entry of ``family`` to ``<folder>/<name>_<model_type>.md``.

    Returns:
        The written paths.
    """
    written = []
    entries = [e for e in get_catalogue().values() if e.family == family]
    if not entries:
        families = sorted({e.family for e in get_catalogue().values()})
        raise UnknownModelError(f"no catalogue entries of family {family!r}; families: {', '.join(families)}")
    for entry in entries:
        path = card_path(entry, folder)
        if path in written:  # a card shared by several entries renders the same text for each
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_model_card(entry.name, entry.model_type), encoding="utf-8")
        written.append(path)
    return written


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vl_hub.zoo", description="vl_hub model catalogue tools")
    sub = parser.add_subparsers(dest="command", required=True)
    cards = sub.add_parser("cards", help="(re)write model_cards/<name>_<model_type>.md from the catalogue")
    cards.add_argument("--family", default="blip")
    cards.add_argument("--folder", default="model_cards")
    sub.add_parser("list", help="print the catalogue")
    args = parser.parse_args(argv)
    if args.command == "cards":
        for path in write_model_cards(args.folder, args.family):
            print(path)
    else:
        for row in list_models():
            print(f"{row.name}:{row.model_type}\t{row.task}\t{row.head}\t{row.repo_id}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
