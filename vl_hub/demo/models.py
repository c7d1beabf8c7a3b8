"""Model loading for the demo: a *bundle* is one or more heads (each with its processor) served under one name.

A bundle comes from

* a checkpoint folder (``config.json`` naming a vl_hub head, weights, processor files), or a folder of such folders
  (``caption/``, ``vqa/``, ``retrieval/`` ...: one head each), optionally with a ``vl_hub_demo.json`` marker
  (``{"name": ..., "untrained": true, "description": ...}``);
* a catalogue entry ``name:model_type`` (``blip_caption:base_coco``, through
  :func:`vl_hub.zoo.load_model_and_processor`);
* a Hub repository id (``from_pretrained``; offline that fails with a readable message);
* heads built in memory (:meth:`ModelBundle.from_heads`, what the tests do).

What a bundle can do follows from its heads (:data:`CAPABILITIES`); a tab asking for something the bundle lacks gets a
:class:`~vl_hub.demo.inputs.DemoInputError` naming the heads it has and what to load instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vl_hub.demo.default_model import BUNDLE_MARKER
from vl_hub.demo.inputs import DemoInputError

logger = logging.getLogger(__name__)

__all__ = [
    "CAPABILITIES",
    "LoadedHead",
    "ModelBundle",
    "ModelManager",
    "capabilities_of",
    "load_model_bundle",
]

#: capability -> what it lets the page do
CAPABILITIES: dict[str, str] = {
    "caption": "image captioning",
    "vqa": "visual question answering",
    "itm": "image-text matching, Grad-CAM, text localisation, ITM re-ranking and ITM zero-shot scores",
    "features": "multimodal search and zero-shot classification by cosine similarity",
}

#: capability -> catalogue entries that provide it (suggested in the messages)
_SUGGESTIONS: dict[str, str] = {
    "caption": "a captioning head (BlipForConditionalGeneration, e.g. blip_caption:base_coco)",
    "vqa": "a VQA head (BlipForQuestionAnswering / AlbefForQuestionAnswering, e.g. blip_vqa:vqav2)",
    "itm": "an image-text retrieval head (BlipForImageTextRetrieval / AlbefForImageTextRetrieval, e.g. "
    "blip_image_text_matching:base)",
    "features": "a retrieval or feature-extraction head (BLIP, ALBEF) or a CLIP model",
}

# head class name -> capabilities, by suffix (first match)
_HEAD_CAPABILITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ForConditionalGeneration", ("caption",)),
    ("ForQuestionAnswering", ("vqa",)),
    ("ForImageTextRetrieval", ("itm", "features")),
    ("ForZeroShotClassification", ("features",)),
)
_FEATURE_MODELS = ("BlipModel", "AlbefModel", "ClipModel")


def capabilities_of(head_class_name: str) -> tuple[str, ...]:
    """The capabilities (keys of :data:`CAPABILITIES`) of a head class, by its name."""
    if head_class_name in _FEATURE_MODELS:
        return ("features",)
    for suffix, caps in _HEAD_CAPABILITIES:
        if head_class_name.endswith(suffix):
            return caps
    return ()


def _family_of(model: Any) -> str:
    model_type = str(getattr(getattr(model, "config", None), "model_type", ""))
    return model_type.removeprefix("vlhub_") or type(model).__name__.lower()


@dataclass
class LoadedHead:
    """One model head and its processor.

    Attributes:
        model: the head, in eval mode.
        processor: its processor (BLIP/ALBEF: ``VlHubBlipProcessor``; CLIP: ``ClipProcessor``).
        source: folder, repository or catalogue entry it came from (``""`` when built in memory).
        family: ``blip``, ``albef``, ``clip``, ...
    """

    model: Any
    processor: Any
    source: str = ""
    family: str = ""
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.family:
            self.family = _family_of(self.model)

    @property
    def head(self) -> str:
        """The head class name."""
        return type(self.model).__name__

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What this head can do (keys of :data:`CAPABILITIES`)."""
        return capabilities_of(self.head)

    def fingerprint(self) -> str:
        """A key of the weights: the files of a loaded folder (path, sizes, times), otherwise a hash of the parameters.
        Cached features (the search gallery) are stored under it."""
        if self._fingerprint is None:
            digest = hashlib.sha256(self.head.encode())
            folder = Path(self.source) if self.source else None
            if folder is not None and folder.is_dir():
                digest.update(str(folder.resolve()).encode())
                for file in sorted(folder.iterdir()):
                    if file.is_file():
                        stat = file.stat()
                        digest.update(f"{file.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
            else:
                digest.update(self.source.encode())
                for name, tensor in self.model.state_dict().items():
                    digest.update(name.encode())
                    digest.update(tensor.detach().cpu().contiguous().view(-1).float().numpy().tobytes())
            self._fingerprint = digest.hexdigest()[:24]
        return self._fingerprint


# feature head preference: a retrieval head also does ITM, then feature extractors, then CLIP
_FEATURE_ORDER = ("ForImageTextRetrieval", "Model", "ForZeroShotClassification")


@dataclass
class ModelBundle:
    """Heads served under one name.

    Attributes:
        name: shown in the model picker.
        heads: the heads (at most one per capability is used: the first that has it).
        untrained: random weights: the page says that outputs are meaningless.
        description: one paragraph shown under the picker.
        source: where it was loaded from.
    """

    name: str
    heads: list[LoadedHead]
    untrained: bool = False
    description: str = ""
    source: str = ""

    @classmethod
    def from_heads(
        cls, name: str, heads: Iterable[tuple[Any, Any]], untrained: bool = False, description: str = ""
    ) -> ModelBundle:
        """A bundle of in-memory ``(model, processor)`` pairs."""
        loaded = [LoadedHead(model.eval(), processor) for model, processor in heads]
        if not loaded:
            raise ValueError(f"bundle {name!r} needs at least one (model, processor) pair")
        return cls(name=name, heads=loaded, untrained=untrained, description=description)

    @property
    def capabilities(self) -> list[str]:
        """The capabilities of all heads, in :data:`CAPABILITIES` order."""
        have = {c for h in self.heads for c in h.capabilities}
        return [c for c in CAPABILITIES if c in have]

    def has(self, capability: str) -> bool:
        """Whether some head provides ``capability``."""
        return capability in self.capabilities

    def head_for(self, capability: str) -> LoadedHead:
        """The head serving ``capability``.

        Raises:
            DemoInputError: no head of this bundle provides it (the message lists the heads and what to load).
        """
        if capability not in CAPABILITIES:
            raise KeyError(f"unknown capability {capability!r}; valid: {', '.join(CAPABILITIES)}")
        candidates = [h for h in self.heads if capability in h.capabilities]
        if not candidates:
            heads = ", ".join(h.head for h in self.heads) or "none"
            raise DemoInputError(
                f"The model '{self.name}' cannot do {CAPABILITIES[capability].split(',')[0]}: its heads are {heads}. "
                f"Pick or load a model with {_SUGGESTIONS[capability]}."
            )
        if capability == "features":
            candidates.sort(key=lambda h: next((i for i, s in enumerate(_FEATURE_ORDER) if h.head.endswith(s)), 9))
        return candidates[0]

    def summary_markdown(self) -> str:
        """What the page shows under the model picker: heads, capabilities and the untrained warning."""
        lines = []
        if self.untrained:
            lines.append(
                "> ⚠ **Untrained model (random weights): its outputs are meaningless.** Run `vl-hub quickstart` to "
                "train a small model on the synthetic data, or start the demo with "
                "`--model <folder or catalogue name>`."
            )
        heads = ", ".join(f"`{h.head}`" for h in self.heads)
        can = ", ".join(CAPABILITIES[c].split(",")[0] for c in self.capabilities) or "nothing this demo serves"
        lines.append(f"**{self.name}** — heads: {heads}. Serves: {can}.")
        if self.description and not self.untrained:
            lines.append(self.description)
        if self.source:
            lines.append(f"Loaded from `{self.source}`.")
        return "\n\n".join(lines)


# --------------------------------------------------------------------------------------------- loading
def _read_marker(folder: Path) -> dict[str, Any]:
    path = folder / BUNDLE_MARKER
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DemoInputError(f"{path} is not valid JSON ({err}); fix or delete it") from None
    return data if isinstance(data, dict) else {}


def _load_head_folder(folder: Path, device: str) -> LoadedHead:
    from transformers import AutoProcessor

    import vl_hub  # noqa: F401  (registers the families with the Auto classes)
    from vl_hub.auto import AutoVlHubModel

    try:
        model = AutoVlHubModel.from_pretrained(str(folder))
    except (OSError, ValueError) as err:
        raise DemoInputError(f"Could not load the model in {folder}: {err}") from None
    try:
        processor = AutoProcessor.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as err:
        raise DemoInputError(
            f"Loaded the model in {folder} but not its processor ({err}); save the processor into the same folder "
            "(processor.save_pretrained(folder))"
        ) from None
    return LoadedHead(model.to(device).eval(), processor, source=str(folder))


def _checkpoint_folders(folder: Path) -> list[Path]:
    if (folder / "config.json").is_file():
        return [folder]
    return sorted(sub for sub in folder.iterdir() if sub.is_dir() and (sub / "config.json").is_file())


def load_model_bundle(source: str | os.PathLike[str], name: str | None = None, device: str = "cpu") -> ModelBundle:
    """Loads a bundle from a folder, a catalogue entry ``name:model_type`` or a Hub repository id.

    Raises:
        DemoInputError: the folder holds no checkpoint, or the model or its processor cannot be loaded.
        vl_hub.zoo.ModelNotAvailableError / UnknownModelError: a catalogue entry that is not converted / unknown
            (their messages say how to get it).
    """
    text = str(source).strip()
    if not text:
        raise DemoInputError("No model given: pick one in the list or type a folder, catalogue name or repository id.")
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DemoInputError(f"{path} is a file; pass the checkpoint folder that holds config.json")
        folders = _checkpoint_folders(path)
        if not folders:
            raise DemoInputError(
                f"{path} holds no checkpoint: expected config.json there or in its sub-folders (a folder written by "
                "save_pretrained / vl-hub convert / vl-hub quickstart)"
            )
        marker = _read_marker(path)
        heads = [_load_head_folder(f, device) for f in folders]
        return ModelBundle(
            name=name or str(marker.get("name") or path.name),
            heads=heads,
            untrained=bool(marker.get("untrained", False)),
            description=str(marker.get("description", "")),
            source=str(path),
        )
    if ":" in text and "/" not in text:
        from vl_hub.zoo import get_entry, load_model_and_processor

        entry = get_entry(text)
        model, processor = load_model_and_processor(entry.name, entry.model_type)
        head = LoadedHead(model.to(device).eval(), processor, source=entry.repo_id)
        return ModelBundle(name=name or entry.spec, heads=[head], description=entry.task, source=entry.repo_id)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        try:
            head = _load_head_folder_or_repo(text, device)
        except DemoInputError as err:
            raise DemoInputError(
                f"{text!r} is neither a local folder nor a loadable Hub repository: {err}. Pass a checkpoint folder, "
                "a catalogue entry (name:model_type) or a repository you have in the local Hub cache."
            ) from None
        return ModelBundle(name=name or text, heads=[head], source=text)
    raise DemoInputError(
        f"Model {text!r} not found: it is not an existing folder, a catalogue entry (name:model_type, e.g. "
        "blip_caption:base_coco) or a Hub repository id (owner/name)."
    )


def _load_head_folder_or_repo(repo_id: str, device: str) -> LoadedHead:
    return _load_head_folder(Path(repo_id), device) if Path(repo_id).is_dir() else _load_repo(repo_id, device)


def _load_repo(repo_id: str, device: str) -> LoadedHead:
    from transformers import AutoProcessor

    import vl_hub  # noqa: F401
    from vl_hub.auto import AutoVlHubModel

    try:
        model = AutoVlHubModel.from_pretrained(repo_id)
        processor = AutoProcessor.from_pretrained(repo_id)
    except (OSError, ValueError) as err:
        raise DemoInputError(str(err).strip().splitlines()[0]) from None
    return LoadedHead(model.to(device).eval(), processor, source=repo_id)


# --------------------------------------------------------------------------------------------- manager
class ModelManager:
    """The bundles a running demo serves: those given at start-up (loaded eagerly, the first is the default) and any
    picked later in the page (catalogue entries, folders, repositories; loaded on first use and kept).

    Args:
        bundles: bundles or sources (see :func:`load_model_bundle`); at least one.
        device: where loaded models go.
        catalogue: list the model catalogue's entries in the picker.
    """

    def __init__(self, bundles: Sequence[ModelBundle | str | os.PathLike[str]], device: str = "cpu",
                 catalogue: bool = True) -> None:
        if not bundles:
            raise ValueError("ModelManager needs at least one model (a bundle or a source to load)")
        self.device = device
        self._lock = threading.Lock()
        self._loaded: dict[str, ModelBundle] = {}
        for item in bundles:
            bundle = item if isinstance(item, ModelBundle) else load_model_bundle(item, device=device)
            name = bundle.name
            suffix = 2
            while name in self._loaded:  # two folders with the same name: keep both
                name = f"{bundle.name} ({suffix})"
                suffix += 1
            bundle.name = name
            self._loaded[name] = bundle
        self._catalogue = catalogue

    @property
    def default(self) -> str:
        """The name of the default bundle (the first one given)."""
        return next(iter(self._loaded))

    def loaded_names(self) -> list[str]:
        """Names of the bundles loaded so far."""
        return list(self._loaded)

    def choices(self) -> list[str]:
        """The picker's entries: loaded bundles, then the catalogue's ``name:model_type`` entries."""
        names = self.loaded_names()
        if self._catalogue:
            try:
                from vl_hub.zoo import list_models

                names += [f"{m.name}:{m.model_type}" for m in list_models() if f"{m.name}:{m.model_type}" not in names]
            except Exception as err:  # a broken family catalogue must not take the demo down
                logger.warning("the model catalogue could not be listed: %s", err)
        return names

    def get(self, name: str | None) -> ModelBundle:
        """The bundle ``name`` (the default when empty), loading it on first use.

        Raises:
            DemoInputError (or the catalogue's errors): it cannot be loaded; the message says why.
        """
        key = (name or "").strip() or self.default
        bundle = self._loaded.get(key)
        if bundle is not None:
            return bundle
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = load_model_bundle(key, name=key, device=self.device)
            return self._loaded[key]
