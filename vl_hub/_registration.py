"""The one place that registers every model family with the transformers Auto classes.

Each family package ``vl_hub.models.<family>`` exposes ``register()``, which registers its config,
heads and processors with ``exist_ok=True``; running :func:`register_all` twice is harmless.
"""

from __future__ import annotations

import importlib

from vl_hub.registry import Registry

#: family name -> the ``model_type`` of its config (namespaced: transformers owns ``blip``/``clip``).
FAMILIES: Registry[str] = Registry("model family")

# Families whose package exists; a family is added here when it lands (no stubs).
_FAMILY_MODULES: dict[str, str] = {
    "albef": "vl_hub.models.albef",
    "alpro": "vl_hub.models.alpro",
    "blip": "vl_hub.models.blip",
    "clip": "vl_hub.models.clip",
}

_done = False


def register_all() -> None:
    """Registers every landed family with the Auto classes (idempotent)."""
    global _done
    if _done:
        return
    for family, module in _FAMILY_MODULES.items():
        model_type = importlib.import_module(module).register()
        FAMILIES.register(family, model_type, exist_ok=True)
    _done = True


def list_families() -> list[str]:
    """Names of the registered model families, e.g. ``["blip"]``."""
    register_all()
    return FAMILIES.names()
