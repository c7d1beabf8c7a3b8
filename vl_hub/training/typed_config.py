"""Typed dataclasses from YAML/CLI data: unknown keys and wrong types fail with the key, value and
what is allowed.

:func:`build_dataclass` turns a mapping (a parsed recipe) into a dataclass instance, recursing into
nested dataclass fields and lists of them; :func:`coerce` checks one value against a type hint;
:func:`set_dotted` applies a ``--model.name_or_path X`` style override to the raw mapping before it is
built, so overrides get exactly the same validation as the recipe itself.

Numbers written the LAVIS way (``init_lr: 1e-5``, ``max_iters: 1e6``) are strings to YAML 1.1; they
are accepted for ``float`` fields and, when integral, for ``int`` fields.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, Literal, Union

import yaml


class ArgumentsError(ValueError):
    """A recipe or override is invalid; ``key`` is the dotted key that is wrong (``""`` for the whole)."""

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        self.detail = detail
        super().__init__(f"{key}: {detail}" if key else detail)

    def under(self, prefix: str) -> ArgumentsError:
        """The same error with its key placed under ``prefix`` (``"model."``)."""
        return ArgumentsError(f"{prefix}{self.key}" if self.key else prefix.rstrip("."), self.detail)


def type_name(annotation: Any) -> str:
    """Human-readable name of a type hint (``"int or null"``, ``"one of 'no', 'fp16'"``)."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return "any value"
    if annotation is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (list, Sequence, tuple):
        args = typing.get_args(annotation)
        return f"list of {type_name(args[0]) if args else 'values'}"
    if origin in (dict, Mapping):
        args = typing.get_args(annotation)
        return f"mapping of str to {type_name(args[1]) if len(args) == 2 else 'values'}"
    if dataclasses.is_dataclass(annotation):
        return f"mapping with keys {', '.join(f.name for f in dataclasses.fields(annotation))}"
    return getattr(annotation, "__name__", str(annotation))


def _parse_number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _wrong(key: str, value: Any, annotation: Any) -> ArgumentsError:
    return ArgumentsError(key, f"got {value!r} ({type(value).__name__}), expected {type_name(annotation)}")


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` converted to ``annotation`` (a type hint), or :class:`ArgumentsError` naming ``key``.

    Accepted conversions: int -> float; integral float or numeric string -> int; numeric string -> float;
    a single string -> ``list[str]``; a mapping -> nested dataclass. Nothing else is converted.
    """
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        members = typing.get_args(annotation)
        if value is None:
            if type(None) in members:
                return None
            raise _wrong(key, value, annotation)
        for member in members:
            if member is type(None):
                continue
            try:
                return coerce(value, member, key)
            except ArgumentsError as err:
                if err.key != key:  # the value has the member's shape but a nested entry is wrong
                    raise
        raise _wrong(key, value, annotation)
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if any(type(value) is type(a) and value == a for a in allowed):
            return value
        raise ArgumentsError(key, f"got {value!r}, expected {type_name(annotation)}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _wrong(key, value, annotation)
    if annotation is int:
        if isinstance(value, bool):
            raise _wrong(key, value, annotation)
        if isinstance(value, int):
            return value
        number = _parse_number(value) if isinstance(value, str) else value if isinstance(value, float) else None
        if number is not None and float(number).is_integer():
            return int(number)
        raise _wrong(key, value, annotation)
    if annotation is float:
        if isinstance(value, bool):
            raise _wrong(key, value, annotation)
        if isinstance(value, (int, float)):
            return float(value)
        number = _parse_number(value) if isinstance(value, str) else None
        if number is not None:
            return number
        raise _wrong(key, value, annotation)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _wrong(key, value, annotation)
    if origin in (list, Sequence, tuple):
        (item_type,) = typing.get_args(annotation)[:1] or (Any,)
        if isinstance(value, str) and item_type is str:
            return [value]
        if not isinstance(value, (list, tuple)):
            raise _wrong(key, value, annotation)
        return [coerce(item, item_type, f"{key}.{i}") for i, item in enumerate(value)]
    if origin in (dict, Mapping):
        args = typing.get_args(annotation)
        value_type = args[1] if len(args) == 2 else Any
        if not isinstance(value, Mapping):
            raise _wrong(key, value, annotation)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ArgumentsError(f"{key}.{k}", f"keys must be strings, got {k!r} ({type(k).__name__})")
            out[k] = coerce(v, value_type, f"{key}.{k}")
        return out
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        if isinstance(value, Mapping):
            return build_dataclass(annotation, value, prefix=f"{key}.")
        raise _wrong(key, value, annotation)
    if isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        raise _wrong(key, value, annotation)
    raise TypeError(f"unsupported type hint {annotation!r} for {key}")  # a bug in the dataclass, not user input


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of the fields of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """Every key a mapping for ``cls`` may hold, nested dataclass fields as dotted keys."""
    keys = []
    for name, hint in field_types(cls).items():
        keys.append(f"{prefix}{name}")
        if dataclasses.is_dataclass(hint):
            keys.extend(valid_keys(hint, prefix=f"{prefix}{name}."))
    return keys


def build_dataclass(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """An instance of dataclass ``cls`` from ``data``; every key and value is checked.

    Raises:
        ArgumentsError: an unknown key (the message lists the valid ones with their types), a missing
            required key, or a value of the wrong type (key, value and expected type).
    """
    if not isinstance(data, Mapping):
        raise ArgumentsError(prefix.rstrip("."), f"expected a mapping of keys to values, got {data!r}")
    types_ = field_types(cls)
    unknown = [k for k in data if k not in types_]
    if unknown:
        listing = ", ".join(f"{prefix}{n} ({type_name(t)})" for n, t in types_.items())
        raise ArgumentsError(
            f"{prefix}{unknown[0]}",
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(prefix + str(k)) for k in unknown)}; "
            f"valid keys: {listing}",
        )
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise ArgumentsError(f"{prefix}{missing[0]}", f"required key missing ({type_name(types_[missing[0]])})")
    values = {name: coerce(value, types_[name], f"{prefix}{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except ArgumentsError as err:
        raise err.under(prefix) from None


def coerce_fields(instance: Any) -> None:
    """Checks (and converts in place) every field of a dataclass instance; for ``__post_init__``."""
    for name, hint in field_types(type(instance)).items():
        object.__setattr__(instance, name, coerce(getattr(instance, name), hint, name))


def to_dict(instance: Any) -> dict[str, Any]:
    """A dataclass instance as plain data (what a recipe YAML holds)."""
    return dataclasses.asdict(instance)


def normalise_key(key: str) -> str:
    """``--push-to-hub`` / ``push-to-hub`` -> ``push_to_hub`` (each dotted part)."""
    return ".".join(part.strip().replace("-", "_") for part in key.lstrip("-").split("."))


def set_dotted(data: MutableMapping[str, Any], key: str, value: Any) -> None:
    """Sets ``data[a][b][0][c] = value`` for ``key="a.b.0.c"``, creating missing mappings.

    A numeric part indexes a list (``datasets.0.data_dir``); an index past the end raises.
    """
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit():
                raise ArgumentsError(where, f"{'.'.join(parts[:depth])} is a list; index it with a number (e.g. .0)")
            index = int(part)
            if index >= len(node):
                raise ArgumentsError(
                    where, f"index {index} is out of range: {'.'.join(parts[:depth])} has {len(node)} entries"
                )
            if last:
                node[index] = value
            else:
                if node[index] is None:
                    node[index] = {}
                node = node[index]
        elif isinstance(node, MutableMapping):
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), (MutableMapping, list)):
                    node[part] = {}
                node = node[part]
        else:
            raise ArgumentsError(where, f"cannot set a key inside {'.'.join(parts[:depth])}={node!r}")


def _parse_value(raw: str) -> Any:
    """A CLI value parsed as YAML; plain text stays exactly as typed (YAML would strip the trailing
    space of a prompt like ``"a picture of "``), and text YAML cannot parse is kept as a string."""
    if not raw:
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str) and raw[:1] not in ("'", '"'):
        return raw
    return value


def parse_overrides(argv: Sequence[str]) -> dict[str, Any]:
    """``["--max_epoch", "3", "--model.name_or_path=x", "--resume"]`` -> ``{"max_epoch": 3, ...}``.

    Values are parsed as YAML (``3`` -> int, ``true`` -> bool, ``[a, b]`` -> list); a key with no value
    (followed by another ``--key`` or by nothing) is ``true``. Keys keep their dotted form.
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise ArgumentsError("", f"expected --key value, got {token!r}; overrides look like --max_epoch 3")
        key, sep, raw = token[2:].partition("=")
        if not key:
            raise ArgumentsError("", f"empty key in {token!r}")
        if sep:
            value: Any = _parse_value(raw)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = _parse_value(argv[i + 1])
            i += 2
        else:
            value = True
            i += 1
        out[normalise_key(key)] = value
    return out


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it: mappings merge recursively, anything else is replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
