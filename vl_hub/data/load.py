"""Run the dataset builders in ``dataset_scripts/`` on any ``datasets`` version (>= 3.6).

``datasets`` 4+ refuses to execute loading scripts, so instead of ``datasets.load_dataset(script)``
we import the builder module ourselves, instantiate its ``GeneratorBasedBuilder`` and run
``download_and_prepare()`` / ``as_dataset()`` (or ``as_streaming_dataset()``), which caches exactly
as ``datasets`` does.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import datasets


def dataset_scripts_dir() -> Path:
    """The folder holding one ``<name>/<name>.py`` builder per dataset.

    ``VLHUB_DATASET_SCRIPTS`` overrides it; otherwise it is the ``dataset_scripts`` folder installed
    beside the ``vl_hub`` package (the repository root in an editable install).
    """
    override = os.environ.get("VLHUB_DATASET_SCRIPTS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "dataset_scripts"


def list_datasets() -> list[str]:
    """Names of every dataset builder shipped with vl_hub, sorted."""
    root = dataset_scripts_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}.py").is_file())


def _import_builder_module(name: str) -> ModuleType:
    path = dataset_scripts_dir() / name / f"{name}.py"
    if not path.is_file():
        known = ", ".join(list_datasets()) or "(none)"
        raise KeyError(f"unknown dataset {name!r}; valid names: {known}")
    module_name = f"vl_hub_dataset_scripts.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has a loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def builder_class(name: str) -> type[datasets.DatasetBuilder]:
    """The ``datasets.DatasetBuilder`` subclass defined in ``dataset_scripts/<name>/<name>.py``."""
    module = _import_builder_module(name)
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, datasets.DatasetBuilder)
        and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise TypeError(f"dataset_scripts/{name}/{name}.py must define exactly one builder class, found {found}")
    return found[0]


def load_builder(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    config_name: str | None = None,
    **config_kwargs: Any,
) -> datasets.DatasetBuilder:
    """Instantiates the builder ``name`` for ``data_dir`` (the folder holding the official files)."""
    cls = builder_class(name)
    return cls(
        cache_dir=None if cache_dir is None else str(cache_dir),
        config_name=config_name,
        data_dir=None if data_dir is None else str(data_dir),
        **config_kwargs,
    )


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    split: str | None = None,
    streaming: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    config_name: str | None = None,
    **config: Any,
) -> datasets.Dataset | datasets.DatasetDict | datasets.IterableDataset | datasets.IterableDatasetDict:
    """Loads a vl_hub dataset by name, like ``datasets.load_dataset`` does for a loading script.

    Args:
        name: a builder name from :func:`list_datasets` (e.g. ``"coco_caption"``).
        data_dir: the folder where the official archives were unpacked, unchanged.
        split: one split (``"train"``) or ``None`` for all of them.
        streaming: yield examples lazily instead of preparing Arrow files.
        cache_dir: where prepared Arrow files go (``datasets``' default cache otherwise).
        config_name: a BuilderConfig name for datasets with variants.
        **config: BuilderConfig attributes to override.
    """
    builder = load_builder(name, data_dir=data_dir, cache_dir=cache_dir, config_name=config_name, **config)
    if streaming:
        return builder.as_streaming_dataset(split=split)
    builder.download_and_prepare()
    return builder.as_dataset(split=split)
