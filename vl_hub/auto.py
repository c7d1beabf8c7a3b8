"""Auto classes for the vision-language heads transformers has no Auto class for.

They behave like transformers' own (``from_pretrained``/``from_config``/``register``); every family
registers its heads here and with the fitting transformers Auto classes (``AutoModel``,
``AutoModelForPreTraining``, ``AutoModelForVisualQuestionAnswering``, ``AutoModelForImageTextToText``,
``AutoModelForZeroShotImageClassification``) in ``vl_hub/_registration.py``.

:class:`AutoVlHubModel` loads whichever head a checkpoint's ``config.json`` names in
``architectures`` (e.g. ``BlipForNLVR``), for code that does not know the head in advance.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

from transformers import AutoConfig, PreTrainedModel
from transformers.models.auto.auto_factory import _BaseAutoModelClass, _LazyAutoMapping


def _empty_mapping() -> _LazyAutoMapping:
    return _LazyAutoMapping(OrderedDict(), OrderedDict())


class AutoModelForImageTextRetrieval(_BaseAutoModelClass):
    """Image-text retrieval heads (ITC + ITM): ``BlipForImageTextRetrieval``, ``AlbefForImageTextRetrieval``."""

    _model_mapping = _empty_mapping()


class AutoModelForVideoTextRetrieval(_BaseAutoModelClass):
    """Video-text retrieval heads: ``AlproForVideoTextRetrieval``."""

    _model_mapping = _empty_mapping()


class AutoModelForImagePairClassification(_BaseAutoModelClass):
    """Two images + text classification (NLVR2): ``BlipForNLVR``, ``AlbefForNLVR``."""

    _model_mapping = _empty_mapping()


class AutoModelForImageTextClassification(_BaseAutoModelClass):
    """Image + text classification (visual entailment): ``BlipForImageTextClassification``, ``AlbefForVisualEntailment``."""

    _model_mapping = _empty_mapping()


class AutoModelForVideoQuestionAnswering(_BaseAutoModelClass):
    """Video question answering heads: ``AlproForVideoQuestionAnswering``."""

    _model_mapping = _empty_mapping()


_REGISTERED_HEADS: dict[str, type[PreTrainedModel]] = {}


def register_head(model_class: type[PreTrainedModel]) -> None:
    """Makes ``model_class`` loadable by name through :class:`AutoVlHubModel`."""
    _REGISTERED_HEADS[model_class.__name__] = model_class


class AutoVlHubModel:
    """Loads the head named by a checkpoint's ``architectures`` (any vl_hub family)."""

    @classmethod
    def head_class(cls, config: Any) -> type[PreTrainedModel]:
        """The registered head class named first in ``config.architectures``."""
        from vl_hub._registration import register_all

        register_all()
        names = list(getattr(config, "architectures", None) or [])
        for name in names:
            if name in _REGISTERED_HEADS:
                return _REGISTERED_HEADS[name]
        known = ", ".join(sorted(_REGISTERED_HEADS)) or "(none)"
        raise ValueError(
            f"config.architectures={names} names no vl_hub head; known heads: {known}. "
            "Load it with the head class directly, e.g. BlipForImageTextRetrieval.from_pretrained(path)"
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> PreTrainedModel:
        """``from_pretrained`` of the head named in the checkpoint's config."""
        config = kwargs.pop("config", None) or AutoConfig.from_pretrained(
            pretrained_model_name_or_path, **{k: v for k, v in kwargs.items() if k in _CONFIG_KWARGS}
        )
        return cls.head_class(config).from_pretrained(pretrained_model_name_or_path, config=config, **kwargs)


_CONFIG_KWARGS = {"revision", "cache_dir", "local_files_only", "token", "subfolder"}

#: name -> Auto class, for ``AUTO_CLASSES`` declarations in the family modules
VLHUB_AUTO_CLASSES: dict[str, type[_BaseAutoModelClass]] = {
    c.__name__: c
    for c in (
        AutoModelForImageTextRetrieval,
        AutoModelForVideoTextRetrieval,
        AutoModelForImagePairClassification,
        AutoModelForImageTextClassification,
        AutoModelForVideoQuestionAnswering,
    )
}


def get_auto_class(name: str) -> type[_BaseAutoModelClass]:
    """A vl_hub or transformers Auto class by name (``"AutoModel"``, ``"AutoModelForImageTextRetrieval"``)."""
    if name in VLHUB_AUTO_CLASSES:
        return VLHUB_AUTO_CLASSES[name]
    import transformers

    cls = getattr(transformers, name, None)
    if cls is None:
        raise KeyError(f"unknown Auto class {name!r}; vl_hub ones: {', '.join(VLHUB_AUTO_CLASSES)}")
    return cls
