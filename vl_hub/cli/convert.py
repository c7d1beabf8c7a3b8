"""``vl-hub convert``: one command for every family's checkpoint conversion.

    vl-hub convert --from {lavis,transformers,openai} [--model-type NAME:TYPE] [--tokenizer PATH] [--config JSON]
                   [--no-strict] SRC OUT

writes a vl_hub checkpoint folder (``config.json`` whose ``architectures`` names the vl_hub head, ``model.safetensors``,
the processor files) that ``AutoModel…from_pretrained(OUT)`` loads after ``import vl_hub``.

* ``--from lavis``: SRC is a LAVIS ``.pth``/``.safetensors`` file; ``--model-type`` (a catalogue entry of
  :mod:`vl_hub.zoo`, e.g. ``blip_caption:base_coco``) gives the family, the head and the architecture (``--config``
  replaces the architecture with a config JSON, e.g. a smaller model).
* ``--from transformers``: SRC is a transformers checkpoint folder; its ``config.json`` ``model_type`` (``blip``,
  ``clip``) picks the family, and the folder holds everything else.
* ``--from openai``: SRC is an OpenAI / open_clip CLIP file (the CLIP family).

Converters register themselves: a family's ``vl_hub/models/<family>/convert_<family>_checkpoint.py`` declares
``VLHUB_CONVERTERS = {source: converter}`` (and ``TRANSFORMERS_MODEL_TYPES`` for ``--from transformers``), where a
converter is ``converter(src, out_dir, *, model_type, config_file, tokenizer, strict) -> Path``; they are found
when a conversion runs. Code can also call :func:`register_converter`. Families whose conversion module predates this
protocol are adapted here (CLIP's ``convert(...)``, ALBEF's ``convert_albef_checkpoint(...)``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "SOURCES",
    "Converter",
    "ConverterNotFoundError",
    "add_parser",
    "convert_checkpoint",
    "get_converter",
    "register_converter",
    "registered_converters",
]

#: the ``--from`` choices
SOURCES: tuple[str, ...] = ("lavis", "transformers", "openai")
# sources whose family is fixed (no catalogue entry / config.json to read it from), and the module that serves them
_SOURCE_FAMILY = {"openai": "clip"}


class Converter(Protocol):
    """``converter(src, out_dir, *, model_type, config_file, tokenizer, strict) -> Path`` (the written folder)."""

    def __call__(
        self,
        src: Path,
        out_dir: Path,
        *,
        model_type: str | None,
        config_file: Path | None,
        tokenizer: Path | None,
        strict: bool,
    ) -> Path: ...


class ConverterNotFoundError(LookupError):
    """No converter serves a (family, source) pair; the message names the module that should provide it."""


@dataclass
class _Registry:
    converters: dict[tuple[str, str], Converter] = field(default_factory=dict)
    transformers_types: dict[str, str] = field(default_factory=dict)  # config.json model_type -> family
    import_errors: dict[str, str] = field(default_factory=dict)  # family -> why its module did not load
    discovered: bool = False


_REGISTRY = _Registry()


def register_converter(
    family: str,
    source: str,
    converter: Converter,
    transformers_model_types: tuple[str, ...] = (),
    exist_ok: bool = False,
) -> None:
    """Registers ``converter`` for ``vl-hub convert --from <source>`` checkpoints of ``family``.

    Args:
        family: the vl_hub family (``blip``).
        source: one of :data:`SOURCES`.
        converter: see :class:`Converter`.
        transformers_model_types: ``config.json`` ``model_type`` values that mean this family (``--from transformers``).
        exist_ok: replace an existing registration instead of raising.
    """
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not one of {', '.join(SOURCES)}")
    key = (family, source)
    if key in _REGISTRY.converters and not exist_ok and _REGISTRY.converters[key] is not converter:
        raise ValueError(f"a converter for family {family!r} from {source!r} is already registered")
    _REGISTRY.converters[key] = converter
    for model_type in transformers_model_types:
        _REGISTRY.transformers_types[model_type] = family


def _conversion_module(family: str) -> str:
    return f"vl_hub.models.{family}.convert_{family}_checkpoint"


def _families() -> list[str]:
    import vl_hub.models

    return sorted(info.name for info in pkgutil.iter_modules(vl_hub.models.__path__) if info.ispkg)


# --------------------------------------------------------------------------------------- adapters for older modules
def _clip_adapter(module: Any, source: str) -> Converter:
    def convert(
        src: Path, out_dir: Path, *, model_type: str | None, config_file: Path | None, tokenizer: Path | None, strict: bool
    ) -> Path:
        config = None
        if config_file is not None:
            from vl_hub.models.clip.configuration_clip import ClipConfig

            config = ClipConfig.from_json_file(str(config_file))
        if not strict:
            raise ValueError("the CLIP converter is always strict; --no-strict does not apply")
        return Path(module.convert(source, src, out_dir, model_type, config=config, tokenizer=tokenizer))

    return convert


def _albef_adapter(module: Any) -> Converter:
    def convert(
        src: Path, out_dir: Path, *, model_type: str | None, config_file: Path | None, tokenizer: Path | None, strict: bool
    ) -> Path:
        if model_type is None:
            raise ValueError("--from lavis needs --model-type NAME:TYPE (e.g. albef_retrieval:coco)")
        config = None
        if config_file is not None:  # a custom (e.g. smaller) architecture of the entry's head
            from vl_hub.models.albef.configuration_albef import AlbefConfig

            config = AlbefConfig.from_json_file(str(config_file))
        module.convert_albef_checkpoint(src, out_dir, model_type, vocab_file=tokenizer, strict=strict, config=config)
        return out_dir

    return convert


def _register_module(family: str, module: Any) -> None:
    declared = getattr(module, "VLHUB_CONVERTERS", None)
    types = tuple(getattr(module, "TRANSFORMERS_MODEL_TYPES", ()))
    if declared:
        for source, fn in declared.items():
            register_converter(family, source, fn, transformers_model_types=types, exist_ok=True)
    elif family == "clip" and hasattr(module, "convert"):
        for source in ("openai", "lavis", "transformers"):
            register_converter(family, source, _clip_adapter(module, source), ("clip",), exist_ok=True)
    elif family == "albef" and hasattr(module, "convert_albef_checkpoint"):
        register_converter(family, "lavis", _albef_adapter(module), exist_ok=True)


def _discover() -> None:
    """Imports every family's conversion module once; a module that fails to import is remembered, not fatal
    (it only matters when that family is asked for)."""
    if _REGISTRY.discovered:
        return
    for family in _families():
        name = _conversion_module(family)
        if importlib.util.find_spec(name) is None:
            continue
        try:
            module = importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 -- a broken family must not hide the others
            _REGISTRY.import_errors[family] = f"{name} failed to import: {type(err).__name__}: {err}"
            continue
        _register_module(family, module)
    _REGISTRY.discovered = True


def registered_converters() -> dict[tuple[str, str], Converter]:
    """``{(family, source): converter}`` after discovery."""
    _discover()
    return dict(_REGISTRY.converters)


def get_converter(family: str, source: str) -> Converter:
    """The converter of ``family`` for ``source``.

    Raises:
        ConverterNotFoundError: naming the family module that should provide it and what is registered.
    """
    _discover()
    converter = _REGISTRY.converters.get((family, source))
    if converter is not None:
        return converter
    module = _conversion_module(family)
    path = module.replace(".", "/") + ".py"
    if family in _REGISTRY.import_errors:
        why = _REGISTRY.import_errors[family]
    elif importlib.util.find_spec(module) is None:
        why = f"{path} does not exist"
    elif family == "clip":
        why = f"{path} has no public convert(...) function (nor VLHUB_CONVERTERS)"
    else:
        why = f"{path} declares no {source!r} converter in VLHUB_CONVERTERS"
    known = ", ".join(f"{f} from {s}" for f, s in sorted(_REGISTRY.converters)) or "none"
    raise ConverterNotFoundError(
        f"no {family.upper()} converter for --from {source}: {why}. Registered converters: {known}"
    )


# --------------------------------------------------------------------------------------- dispatch
def _family_of(source: str, src: Path, model_type: str | None) -> str:
    if model_type is not None:
        from vl_hub.zoo import get_entry

        family = get_entry(model_type).family
        if source == "transformers" or source in _SOURCE_FAMILY:
            fixed = _SOURCE_FAMILY.get(source) or _transformers_family(src)
            if fixed != family:
                raise ValueError(f"--model-type {model_type} is a {family} model, but {src} is a {fixed} checkpoint")
        return family
    if source == "lavis":
        raise ValueError(
            "--from lavis needs --model-type NAME:TYPE (e.g. blip_caption:base_coco); vl_hub.list_models() "
            "(or `python -m vl_hub.zoo list`) shows the catalogue"
        )
    if source == "transformers":
        return _transformers_family(src)
    return _SOURCE_FAMILY[source]


def _transformers_family(src: Path) -> str:
    config_file = src / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{src} has no config.json: --from transformers takes a folder written by a transformers model's "
            "save_pretrained (or a downloaded Hub snapshot)"
        )
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    _discover()
    family = _REGISTRY.transformers_types.get(str(model_type))
    if family is None:
        if str(model_type).startswith("vlhub_"):
            raise ValueError(f"{src} is already a vl_hub checkpoint (model_type {model_type!r}); load it directly")
        known = ", ".join(f"{t} ({f})" for t, f in sorted(_REGISTRY.transformers_types.items())) or "none"
        broken = "; ".join(_REGISTRY.import_errors.values())
        raise ValueError(
            f"{config_file} has model_type {model_type!r}, which no vl_hub family converts from transformers; "
            f"supported: {known}" + (f" (modules that failed to import: {broken})" if broken else "")
        )
    return family


def convert_checkpoint(
    source: str,
    src: str | Path,
    out_dir: str | Path,
    model_type: str | None = None,
    config_file: str | Path | None = None,
    tokenizer: str | Path | None = None,
    strict: bool = True,
) -> Path:
    """What ``vl-hub convert`` runs: picks the family (catalogue entry, ``config.json`` or source) and its converter.

    Args:
        source: ``"lavis"``, ``"transformers"`` or ``"openai"``.
        src: the original checkpoint file / folder.
        out_dir: the folder to write.
        model_type: catalogue entry ``"name:type"`` (required for lavis).
        config_file: a config JSON replacing the catalogue architecture (lavis).
        tokenizer: vocabulary / tokenizer folder the processor is built from.
        strict: raise on missing / unexpected keys.

    Returns:
        ``out_dir``.
    """
    if source not in SOURCES:
        raise ValueError(f"--from {source!r} is not one of {', '.join(SOURCES)}")
    src, out = Path(src), Path(out_dir)
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist")
    family = _family_of(source, src, model_type)
    converter = get_converter(family, source)
    return converter(
        src,
        out,
        model_type=model_type,
        config_file=Path(config_file) if config_file is not None else None,
        tokenizer=Path(tokenizer) if tokenizer is not None else None,
        strict=strict,
    )


# --------------------------------------------------------------------------------------- CLI
def _cmd_convert(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        out = convert_checkpoint(
            args.source, args.src, args.out, model_type=args.model_type, config_file=args.config,
            tokenizer=args.tokenizer, strict=not args.no_strict,
        )
    except (ValueError, KeyError, LookupError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"vl-hub convert: error: {message}", file=sys.stderr)
        return 2
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    head = ", ".join(config.get("architectures") or ["?"])
    print(f"wrote {out} ({head}); load it after `import vl_hub` with {head}.from_pretrained({str(out)!r}) or the Auto classes")
    return 0


def add_parser(sub: Any) -> None:
    """Adds ``convert`` to the ``vl-hub`` sub-commands."""
    p = sub.add_parser(
        "convert",
        help="convert an original (LAVIS / transformers / OpenAI) checkpoint into a vl_hub checkpoint folder",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="where the checkpoint comes from")
    p.add_argument("--model-type", default=None, metavar="NAME:TYPE", help="catalogue entry, e.g. blip_caption:base_coco")
    p.add_argument(
        "--tokenizer", default=None, metavar="PATH",
        help="vocabulary / tokenizer folder for the processor (BLIP/ALBEF: bert-base-uncased vocab.txt; CLIP: "
        "bpe_simple_vocab_16e6.txt.gz); transformers folders bring their own",
    )
    p.add_argument("--config", default=None, metavar="JSON", help="config file replacing the catalogue architecture")
    p.add_argument("--no-strict", action="store_true", help="log missing/unexpected keys instead of failing")
    p.add_argument("src", help="checkpoint file (.pth/.pt/.safetensors) or transformers folder")
    p.add_argument("out", help="output folder")
    p.set_defaults(func=_cmd_convert)

