"""Run the dataset builders in ``dataset_scripts/`` on any ``datasets`` version (>= 3.6).

``datasets`` 4+ refuses to execute loading scripts, so instead of ``datasets.load_dataset(script)``
we import the builder module ourselves, instantiate its ``GeneratorBasedBuilder`` and run
``download_and_prepare()`` / ``as_dataset()`` (or ``as_streaming_dataset()``), which caches exactly
as ``datasets`` does: ``<cache_dir>/<name>/<config_id>/<version>/<hash of the builder files>``.

On top of ``datasets`` this module adds:

* ``name="custom"``: a folder of the user's own images/videos with ``metadata.jsonl``/``.csv``
  (see :mod:`vl_hub.data.custom`);
* a failed prepare leaves nothing in the cache (no partial dataset, no lock files);
* a missing file names the path and prints the builder's ``manual_download_instructions``;
* ``skip_invalid=True`` counts what was skipped per split; :func:`skip_reports` reads it back,
  also for a dataset later reloaded from the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import datasets

from vl_hub.data import builder_utils
from vl_hub.data.builder_utils import InvalidExampleError, SkipReport

logger = logging.getLogger(__name__)

#: file written next to the prepared Arrow files: split -> list of skip reports.
SKIP_REPORT_FILENAME = "vl_hub_skipped.json"

#: the name that routes ``load_dataset`` to the user-folder loader of :mod:`vl_hub.data.custom`.
CUSTOM_NAME = "custom"


#: builder files imported by this module (and custom.py): datasets < 4 must not lock beside them.
_BUILDER_FILES: set[str] = {str(Path(__file__).with_name("custom.py").resolve())}


def _skip_script_lock_for_vl_hub_builders() -> None:
    """datasets < 4 takes a file lock named ``<grandparent of the builder file>.lock`` every time a
    builder is instantiated (meant for its own script cache): for our builders that would write
    ``dataset_scripts.lock`` / ``vl_hub.lock`` beside the installed package, and fail where that is
    read-only. Our builder files are never rewritten while loading, so no lock is needed for them."""
    streaming = sys.modules.get("datasets.streaming")
    original = getattr(streaming, "lock_importable_file", None)
    if original is None or getattr(original, "_vl_hub_wrapped", False):
        return

    def lock_importable_file(importable_local_file: str) -> Any:
        if str(Path(importable_local_file).resolve()) in _BUILDER_FILES:
            return contextlib.nullcontext()
        return original(importable_local_file)

    lock_importable_file._vl_hub_wrapped = True  # type: ignore[attr-defined]
    streaming.lock_importable_file = lock_importable_file  # type: ignore[union-attr]


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


def _builder_path(name: str) -> Path:
    """``dataset_scripts/<name>/<name>.py``, or ``name`` itself when it is a path to a builder file/folder."""
    candidate = Path(name).expanduser()
    if candidate.suffix == ".py" and candidate.is_file():
        return candidate.resolve()
    if os.sep in name or "/" in name:
        if candidate.is_dir() and (candidate / f"{candidate.name}.py").is_file():
            return (candidate / f"{candidate.name}.py").resolve()
        raise FileNotFoundError(
            f"no dataset builder at {name!r}: pass a builder name ({', '.join(list_datasets()) or 'none installed'}), "
            "a path to a builder .py file, or a folder <name>/ holding <name>.py"
        )
    path = dataset_scripts_dir() / name / f"{name}.py"
    if not path.is_file():
        known = ", ".join([*list_datasets(), CUSTOM_NAME]) or "(none)"
        raise KeyError(f"unknown dataset {name!r}; valid names: {known}")
    return path


def _import_builder_module(name: str) -> ModuleType:
    path = _builder_path(name)
    if path.resolve() == (dataset_scripts_dir() / path.stem / f"{path.stem}.py").resolve():
        module_name = f"vl_hub_dataset_scripts.{path.stem}"
    else:  # a builder outside dataset_scripts: key the module by its path so two such files never clash
        module_name = f"vl_hub_dataset_scripts.{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    _BUILDER_FILES.add(str(path.resolve()))
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has a loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def builder_class(name: str) -> type[datasets.DatasetBuilder]:
    """The ``datasets.DatasetBuilder`` subclass defined in ``dataset_scripts/<name>/<name>.py``.

    ``name`` may also be a path to a builder ``.py`` file (or to a folder ``<stem>/<stem>.py``), or
    ``"custom"`` for the user-folder builder of :mod:`vl_hub.data.custom`.
    """
    if name == CUSTOM_NAME:
        from vl_hub.data.custom import CustomFolder

        return CustomFolder
    module = _import_builder_module(name)
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, datasets.DatasetBuilder)
        and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise TypeError(f"{_builder_path(name)} must define exactly one builder class, found {found}")
    return found[0]


def builder_files_hash(name: str) -> str:
    """Hash of the builder's source files (every ``.py`` in its folder); part of the cache path, like
    ``datasets`` does for scripts, so that editing a builder re-prepares instead of reusing stale data."""
    if name == CUSTOM_NAME:
        files = [Path(__file__).with_name("custom.py")]
    else:
        path = _builder_path(name)
        files = sorted(path.parent.glob("*.py"))
        # A builder may subclass another dataset's builder (coco_retrieval -> coco_caption): their
        # sources are part of what it generates, so they invalidate its cache too.
        root = dataset_scripts_dir().resolve()
        for base in builder_class(name).__mro__[1:]:
            source = inspect.getsourcefile(base) if base.__module__ != "builtins" else None
            if source and Path(source).resolve().is_relative_to(root) and Path(source) not in files:
                files.append(Path(source))
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _dataset_name(name: str) -> str:
    return CUSTOM_NAME if name == CUSTOM_NAME else _builder_path(name).stem


def load_builder(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    config_name: str | None = None,
    **config_kwargs: Any,
) -> datasets.DatasetBuilder:
    """Instantiates the builder ``name`` for ``data_dir`` (the folder holding the official files).

    Raises:
        KeyError: unknown dataset name (the message lists the valid ones).
        ValueError: unknown config name or option (the message lists the valid ones).
    """
    cls = builder_class(name)
    extra: dict[str, Any] = {}
    if name == CUSTOM_NAME:
        from vl_hub.data.custom import custom_folder_hash

        extra["hash"] = custom_folder_hash(data_dir, builder_files_hash(name))
    else:
        extra["hash"] = builder_files_hash(name)
    try:
        return cls(
            cache_dir=None if cache_dir is None else str(cache_dir),
            dataset_name=_dataset_name(name),
            config_name=config_name,
            data_dir=None if data_dir is None else str(data_dir),
            **extra,
            **config_kwargs,
        )
    except ValueError as err:
        if "doesn't have a" in str(err) and "key" in str(err):
            raise ValueError(_unknown_option_message(cls, name, config_kwargs)) from None
        raise


def _unknown_option_message(cls: type[datasets.DatasetBuilder], name: str, config_kwargs: dict[str, Any]) -> str:
    config = cls.BUILDER_CONFIGS[0] if cls.BUILDER_CONFIGS else cls.BUILDER_CONFIG_CLASS()
    known = sorted(k for k in vars(config) if not k.startswith("_"))
    unknown = sorted(k for k in config_kwargs if not hasattr(config, k))
    hint = ""
    if "skip_invalid" in unknown:
        hint = (
            f"\n{name}'s config class {type(config).__name__} does not derive from "
            "vl_hub.data.builder_utils.VlHubBuilderConfig, so it cannot skip invalid examples."
        )
    return f"dataset {name!r} has no option(s) {unknown}; valid options: {', '.join(known)}{hint}"


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    split: str | None = None,
    streaming: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    config_name: str | None = None,
    download_mode: str | datasets.DownloadMode | None = None,
    **config: Any,
) -> datasets.Dataset | datasets.DatasetDict | datasets.IterableDataset | datasets.IterableDatasetDict:
    """Loads a vl_hub dataset by name, like ``datasets.load_dataset`` does for a loading script.

    Args:
        name: a builder name from :func:`list_datasets` (e.g. ``"coco_caption"``), ``"custom"`` for a
            folder of your own files (then pass ``task=...``, see :mod:`vl_hub.data.custom`), or a
            path to a builder ``.py`` file.
        data_dir: the folder where the official archives were unpacked, unchanged.
        split: one split (``"train"``) or ``None`` for all of them.
        streaming: yield examples lazily instead of preparing Arrow files.
        cache_dir: where prepared Arrow files go (``datasets``' default cache otherwise).
        config_name: a BuilderConfig name for datasets with variants.
        download_mode: ``"force_redownload"`` re-prepares even if a cached copy exists.
        **config: BuilderConfig attributes to override (``skip_invalid=True``, ``task="vqa"``, ...).

    Raises:
        FileNotFoundError: a file or folder the builder needs is missing; the message names it and
            gives the builder's download instructions. Nothing is left in the cache.
        KeyError / ValueError: unknown dataset, config, option or split.
    """
    root = Path(os.path.expanduser(str(cache_dir or datasets.config.HF_DATASETS_CACHE)))
    before = _snapshot(root)
    # Constructing a builder writes nothing but a lock file in the cache root (named after its output dir).
    builder = load_builder(name, data_dir=data_dir, cache_dir=cache_dir, config_name=config_name, **config)
    root_lock = root / (Path(builder._cache_dir).as_posix().replace("/", "_") + ".lock")
    try:
        if streaming:
            try:
                return builder.as_streaming_dataset(split=split)
            except BaseException as err:
                missing = _with_download_instructions(builder, err)
                if missing is not None:
                    raise missing from err
                raise
        prepare(builder, download_mode=download_mode)
    except BaseException:
        if root_lock.name not in before and not (Path(builder._cache_dir) / datasets.config.DATASET_INFO_FILENAME).exists():
            root_lock.unlink(missing_ok=True)
        raise
    ds = builder.as_dataset(split=split)
    _warn_skipped(builder.dataset_name, skip_reports(ds))
    return ds


def prepare(
    builder: datasets.DatasetBuilder,
    download_mode: str | datasets.DownloadMode | None = None,
) -> None:
    """``builder.download_and_prepare()`` with vl_hub's guarantees.

    * Per-split skip reports (``skip_invalid``) are saved beside the Arrow files, atomically with them.
    * On any error nothing stays in the cache: ``datasets`` already drops its ``.incomplete`` folder;
      here the lock files and the (now empty) folders created for this prepare are removed too.
    * A missing file (``FileNotFoundError``, or an invalid example that names a missing file) is
      re-raised with the builder's ``manual_download_instructions`` appended.
    """
    root = Path(builder._cache_dir_root)
    output_dir = Path(builder._cache_dir)
    existed = {p for p in [output_dir, *output_dir.parents] if p.exists()}
    siblings_before = _snapshot(output_dir.parent)
    _record_skip_reports(builder)
    try:
        builder.download_and_prepare(download_mode=download_mode)
    except BaseException as err:
        if not (output_dir / datasets.config.DATASET_INFO_FILENAME).exists():
            # what this prepare created beside its output: the output folder, ``.incomplete``, lock files
            for entry in _snapshot(output_dir.parent) - siblings_before:
                if entry.startswith(output_dir.name):
                    path = output_dir.parent / entry
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
            for parent in output_dir.parents:
                if parent in existed or parent == root or root not in parent.parents:
                    break
                try:
                    parent.rmdir()  # only succeeds when empty: never removes another config's data
                except OSError:
                    break
        missing = _with_download_instructions(builder, err)
        if missing is not None:
            raise missing from err
        generation_error = getattr(datasets.exceptions, "DatasetGenerationError", ())
        if isinstance(err, generation_error) and err.__cause__ is not None:
            # datasets hides the builder's own message ("line 5 is not valid JSON") behind a generic one
            raise err.__cause__.with_traceback(err.__cause__.__traceback__) from None
        raise


def _snapshot(root: Path) -> set[str]:
    return set(os.listdir(root)) if root.is_dir() else set()


def _exception_chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _with_download_instructions(builder: datasets.DatasetBuilder, err: BaseException) -> BaseException | None:
    """A ``FileNotFoundError`` naming the missing path plus the builder's download instructions, or
    ``None`` when ``err`` is not about a missing file."""
    missing: BaseException | None = None
    for e in _exception_chain(err):
        if isinstance(e, FileNotFoundError) or (isinstance(e, InvalidExampleError) and "does not exist" in str(e)):
            missing = e
            break
    if missing is None:
        return None
    message = str(missing)
    if isinstance(missing, FileNotFoundError) and missing.filename and str(missing.filename) not in message:
        message = f"{message}: {missing.filename}"
    instructions = getattr(builder, "manual_download_instructions", None)
    if instructions and instructions.strip() not in message:
        message = f"{builder.dataset_name}: {message}\nHow to get the files:\n{instructions.strip()}"
    elif not instructions and not message.startswith(builder.dataset_name):
        message = f"{builder.dataset_name}: {message}"
    return builder_utils.MissingDataError(message)


def _record_skip_reports(builder: datasets.DatasetBuilder) -> None:
    """Wraps the builder's split preparation so that each split's skip reports are collected and
    written into the output folder before ``datasets`` renames it into place."""
    per_split: dict[str, list[dict[str, Any]]] = {}
    prepare_split = builder._prepare_split
    download_and_prepare = builder._download_and_prepare

    def _prepare_split(split_generator: datasets.SplitGenerator, *args: Any, **kwargs: Any) -> Any:
        before = dict(builder_utils.SKIP_REPORTS)
        result = prepare_split(split_generator, *args, **kwargs)
        new = [r for key, r in builder_utils.SKIP_REPORTS.items() if before.get(key) is not r]
        per_split[str(split_generator.name)] = [
            {"where": r.where, "count": r.count, "reasons": list(r.reasons)} for r in new
        ]
        return result

    def _download_and_prepare(*args: Any, **kwargs: Any) -> Any:
        result = download_and_prepare(*args, **kwargs)
        # builder._output_dir is the ``.incomplete`` folder here: the report is renamed with the data.
        with open(os.path.join(builder._output_dir, SKIP_REPORT_FILENAME), "w", encoding="utf-8") as f:
            json.dump(per_split, f, indent=1)
        return result

    builder._prepare_split = _prepare_split  # type: ignore[method-assign]
    builder._download_and_prepare = _download_and_prepare  # type: ignore[method-assign]


def skip_reports(dataset: datasets.Dataset | datasets.DatasetDict) -> dict[str, list[SkipReport]]:
    """What ``skip_invalid=True`` skipped while preparing ``dataset``: split -> reports (count and first
    reasons per annotation source). Empty lists when nothing was skipped; works for a dataset
    reloaded from the cache too, since the report is saved beside its Arrow files."""
    splits = dataset.values() if isinstance(dataset, datasets.DatasetDict) else [dataset]
    reports: dict[str, list[SkipReport]] = {}
    for ds in splits:
        if not ds.cache_files:
            continue
        path = Path(ds.cache_files[0]["filename"]).parent / SKIP_REPORT_FILENAME
        if not path.is_file():
            continue
        saved = json.loads(path.read_text(encoding="utf-8"))
        for split, items in saved.items():
            if isinstance(dataset, datasets.Dataset) and ds.split is not None and split != str(ds.split):
                continue
            reports[split] = [SkipReport(i["where"], i["count"], list(i["reasons"])) for i in items]
    return reports


def skipped_counts(dataset: datasets.Dataset | datasets.DatasetDict) -> dict[str, int]:
    """split -> number of examples that ``skip_invalid=True`` skipped while preparing ``dataset``."""
    return {split: sum(r.count for r in reports) for split, reports in skip_reports(dataset).items()}


def _warn_skipped(name: str, reports: dict[str, list[SkipReport]]) -> None:
    counts = {split: sum(r.count for r in items) for split, items in reports.items()}
    if any(counts.values()):
        first = next(r.reasons[0] for items in reports.values() for r in items if r.reasons)
        detail = ", ".join(f"{split}: {n}" for split, n in counts.items() if n)
        logger.warning(
            "%s: skip_invalid skipped %d invalid example(s) (%s); first: %s. "
            "See vl_hub.data.load.skip_reports(dataset) for the reasons.",
            name,
            sum(counts.values()),
            detail,
            first,
        )


# --------------------------------------------------------------------------------------------------
# dataset -> task(s)


@dataclass
class DatasetSummary:
    """What ``vl-hub datasets info`` shows about one builder.

    Attributes:
        name: the builder name.
        configs: config name -> task schema name (a key of :data:`vl_hub.data.schemas.SCHEMAS`, or
            ``"?"`` when the config's features match none).
        tasks: the distinct task schemas, in config order.
        description, homepage, license, citation: the builder's ``_DESCRIPTION`` etc.
        manual_download_instructions: what to download and where (``None`` when nothing is needed).
        path: the builder file.
    """

    name: str
    configs: dict[str, str]
    tasks: list[str]
    description: str = ""
    homepage: str = ""
    license: str = ""
    citation: str = ""
    manual_download_instructions: str | None = None
    path: str = ""
    features: dict[str, datasets.Features] = field(default_factory=dict)


def task_of_features(features: datasets.Features) -> str | None:
    """The task schema name whose features equal ``features`` (classification: any class names)."""
    from vl_hub.data import schemas

    for task, factory in schemas.SCHEMAS.items():
        if task == "classification":
            label = features.get("label")
            reference = schemas.classification_features(["_"])
            if set(features) == set(reference) and isinstance(label, datasets.ClassLabel):
                if all(features[k] == reference[k] for k in reference if k != "label"):
                    return task
        elif features == factory():
            return task
    return None


def dataset_info(name: str) -> DatasetSummary:
    """Describes builder ``name``: its configs and the task schema each one yields, card metadata and
    download instructions. Reads ``_TASKS`` (list, or dict config -> task) from the builder module
    when present, otherwise matches each config's features against :mod:`vl_hub.data.schemas`."""
    if name == CUSTOM_NAME:
        return _custom_summary()
    cls = builder_class(name)
    module = sys.modules[cls.__module__]
    declared = getattr(module, "_TASKS", None)
    instructions: Any = None
    config_names = [c.name for c in cls.BUILDER_CONFIGS] or ["default"]
    configs: dict[str, str] = {}
    features: dict[str, datasets.Features] = {}
    # A throwaway cache root: instantiating a builder writes a lock file there.
    with tempfile.TemporaryDirectory(prefix="vl_hub_info_") as tmp:
        for config_name in config_names:
            task: str | None = None
            try:
                builder = cls(cache_dir=tmp, config_name=config_name if cls.BUILDER_CONFIGS else None)
                if instructions is None:
                    instructions = getattr(builder, "manual_download_instructions", None)
                if builder.info.features is not None:
                    features[config_name] = builder.info.features
                    task = task_of_features(builder.info.features)
            except Exception as err:  # a builder whose _info needs data files may still declare _TASKS
                logger.debug("%s/%s: features unavailable without data (%s)", name, config_name, err)
            configs[config_name] = task or ""
    for config_name, task in configs.items():
        if isinstance(declared, dict):
            task = declared.get(config_name, task)
        elif not task and isinstance(declared, (list, tuple)) and len(declared) == 1:
            task = declared[0]
        configs[config_name] = task or "?"
    tasks = list(dict.fromkeys(configs.values()))
    if isinstance(declared, (list, tuple)):
        tasks = list(dict.fromkeys([*[t for t in tasks if t != "?"], *declared]))
    if not isinstance(instructions, str):
        instructions = getattr(module, "_MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    return DatasetSummary(
        name=name,
        configs=configs,
        tasks=tasks,
        description=str(getattr(module, "_DESCRIPTION", "")).strip(),
        homepage=str(getattr(module, "_HOMEPAGE", "")).strip(),
        license=str(getattr(module, "_LICENSE", "")).strip(),
        citation=str(getattr(module, "_CITATION", "")).strip(),
        manual_download_instructions=instructions.strip() if isinstance(instructions, str) else None,
        path=str(_builder_path(name)),
        features=features,
    )


def _custom_summary() -> DatasetSummary:
    from vl_hub.data import custom, schemas

    return DatasetSummary(
        name=CUSTOM_NAME,
        configs={task: task for task in schemas.SCHEMAS},
        tasks=list(schemas.SCHEMAS),
        description=(custom.__doc__ or "").strip(),
        path=str(Path(custom.__file__)),
    )


def list_dataset_tasks() -> dict[str, list[str]]:
    """dataset name -> task schemas it provides, for every builder (``["?"]`` when it cannot be told)."""
    result: dict[str, list[str]] = {}
    for name in list_datasets():
        try:
            result[name] = dataset_info(name).tasks
        except Exception as err:  # one broken builder must not hide the others in `vl-hub list`
            logger.warning("dataset %s cannot be inspected: %s", name, err)
            result[name] = ["?"]
    return result


_skip_script_lock_for_vl_hub_builders()
