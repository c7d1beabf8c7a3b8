"""The base of every vl_hub head: a ``PreTrainedModel`` whose attention implementation reaches the
shared layers in ``vl_hub/layers`` (they carry a mutable ``attn_implementation`` attribute)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from vl_hub.layers.attention import ATTN_IMPLEMENTATIONS


class VlHubPreTrainedModel(PreTrainedModel):
    """Adds to ``PreTrainedModel``: SDPA/eager selection propagated to vl_hub layers, gradient checkpointing.

    ``from_pretrained(..., attn_implementation="eager")`` and ``model.set_attn_implementation("eager")``
    both switch every attention module of the shared layers.
    """

    _supports_sdpa = True
    supports_gradient_checkpointing = True
    _can_set_attn_implementation_cached_value = True

    def post_init(self) -> None:  # noqa: D102 - documented on the class
        super().post_init()
        self._apply_attn_implementation()

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: D102 - PreTrainedModel.from_pretrained
        loaded = super().from_pretrained(*args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded)._materialize_meta_tensors()
        return loaded

    def _materialize_meta_tensors(self) -> None:
        """Gives storage and initial values to tensors ``from_pretrained`` left on the meta device, then ties again.

        transformers 5 drops both members of a tied pair from the missing keys when the checkpoint holds neither
        (a captioner loaded from a ``BlipModel`` folder: decoder word embeddings and LM-head bias), so they are never
        materialised; they are initialised here as any missing weight would be."""
        real = next((p for p in self.parameters() if p.device.type != "meta"), None)
        device = real.device if real is not None else torch.device("cpu")
        fixed = []
        for module in self.modules():
            for tensors in (module._parameters, module._buffers):
                for name, tensor in list(tensors.items()):
                    if tensor is None or tensor.device.type != "meta":
                        continue
                    value = torch.empty_like(tensor, device=device)
                    tensors[name] = nn.Parameter(value, tensor.requires_grad) if tensors is module._parameters else value
                    fixed.append(module)
        if not fixed:
            return
        with torch.no_grad():
            for module in dict.fromkeys(fixed):
                self._init_weights(module)
        self.tie_weights()

    def set_attn_implementation(self, attn_implementation: str | dict, allow_all_kernels: bool = False) -> None:
        """Switches every attention module to ``"sdpa"`` or ``"eager"``."""
        if isinstance(attn_implementation, str) and attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation={attn_implementation!r} is not supported by vl_hub models; "
                f"use one of {', '.join(ATTN_IMPLEMENTATIONS)}"
            )
        super().set_attn_implementation(attn_implementation, allow_all_kernels=allow_all_kernels)
        self._apply_attn_implementation()

    def _apply_attn_implementation(self) -> None:
        impl = getattr(self.config, "_attn_implementation", None)
        impl = impl if impl in ATTN_IMPLEMENTATIONS else "sdpa"
        for module in self.modules():
            if hasattr(module, "attn_implementation") and not isinstance(module, PreTrainedModel):
                module.attn_implementation = impl
