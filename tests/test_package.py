"""The package imports offline, registers idempotently and its CLI answers."""

from __future__ import annotations

import subprocess
import sys

import vl_hub
from vl_hub import _registration
from vl_hub.cli.main import main
from vl_hub.registry import Registry


def test_version_and_lazy_api() -> None:
    assert vl_hub.__version__
    assert callable(vl_hub.load_dataset)
    assert isinstance(vl_hub.list_datasets(), list)


def test_register_twice_is_harmless() -> None:
    _registration._done = False
    _registration.register_all()
    _registration.register_all()
    assert vl_hub.list_families() == _registration.FAMILIES.names()


def test_registry_unknown_name_lists_valid_ones() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    try:
        reg.get("b")
    except KeyError as err:
        assert "unknown widget 'b'" in str(err) and "a" in str(err)
    else:  # pragma: no cover
        raise AssertionError("expected KeyError")


def test_cli_list_and_version(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "families:" in out and "tasks:" in out and "datasets:" in out
    proc = subprocess.run([sys.executable, "-m", "vl_hub.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and vl_hub.__version__ in proc.stdout


def test_public_api_of_design_is_exposed() -> None:
    for name in ("load_model", "load_model_and_processor", "load_dataset", "extract_features", "list_models",
                 "list_datasets", "list_tasks"):
        assert callable(getattr(vl_hub, name)), name
    assert {"captioning", "retrieval", "vqa"} <= set(vl_hub.list_tasks())
