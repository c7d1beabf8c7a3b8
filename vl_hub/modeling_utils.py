"""The base of every vl_hub head: a ``PreTrainedModel`` whose attention implementation reaches the
shared layers in ``vl_hub/layers`` (they carry a mutable ``attn_implementation`` attribute)."""

from __future__ import annotations

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
