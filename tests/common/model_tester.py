"""A model tester mixin shared by every family's head tests.

A test class sets ``model_class`` / ``auto_class`` and implements ``get_config()`` and
``get_inputs(batch_size)``; the mixin then checks output shapes, the save -> Auto*.from_pretrained
round trip, gradients on every trainable parameter, SDPA == eager, batch invariance and (for
generative heads, ``test_generation = True``) cached generation == full recompute.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import PretrainedConfig, PreTrainedModel


def _tensors(output: Any) -> dict[str, torch.Tensor]:
    """Floating tensors of a ModelOutput/dict/tuple, keyed by name."""
    if isinstance(output, torch.Tensor):
        return {"output": output}
    items = output.items() if hasattr(output, "items") else enumerate(output)
    return {str(k): v for k, v in items if isinstance(v, torch.Tensor) and v.is_floating_point()}


class ModelTesterMixin:
    """Mix into a pytest class; see the module docstring."""

    model_class: ClassVar[type[PreTrainedModel]]
    auto_class: ClassVar[Any]
    #: output name -> expected shape for ``get_inputs(batch_size=2)``
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {}
    #: keys of ``get_inputs`` that are batched along dim 0 (for batch invariance); default: all tensors
    batched_inputs: ClassVar[tuple[str, ...] | None] = None
    #: parameters allowed to receive no gradient from ``loss`` (e.g. momentum copies), as name substrings
    no_grad_parameters: ClassVar[tuple[str, ...]] = ()
    test_generation: ClassVar[bool] = False
    atol: ClassVar[float] = 1e-5

    # ---- to implement
    def get_config(self) -> PretrainedConfig:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_inputs(self, batch_size: int = 2) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_loss_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        """Inputs that make the model return ``loss``; defaults to ``get_inputs``."""
        return self.get_inputs(batch_size)

    def forward(self, model: PreTrainedModel, inputs: dict[str, Any]) -> Any:
        """How to call the model; override for heads whose main entry is not ``__call__``."""
        return model(**inputs)

    def generate(self, model: PreTrainedModel, inputs: dict[str, Any], **kwargs: Any) -> torch.Tensor:
        """Generation call for ``test_generation`` heads."""
        return model.generate(**inputs, **kwargs)

    # ---- helpers
    def build_model(self, seed: int = 0) -> PreTrainedModel:
        torch.manual_seed(seed)
        return self.model_class(self.get_config()).eval()

    def _compare(self, a: Any, b: Any, atol: float | None = None) -> None:
        ta, tb = _tensors(a), _tensors(b)
        assert ta.keys() == tb.keys(), (ta.keys(), tb.keys())
        for key in ta:
            diff = (ta[key] - tb[key]).abs().max().item() if ta[key].numel() else 0.0
            assert diff <= (atol or self.atol), f"{key}: max |diff| {diff}"

    # ---- tests
    def test_output_shapes(self) -> None:
        model = self.build_model()
        with torch.no_grad():
            out = _tensors(self.forward(model, self.get_inputs(2)))
        for key, shape in self.expected_shapes.items():
            assert key in out, f"output {key!r} missing; got {sorted(out)}"
            assert tuple(out[key].shape) == shape, f"{key}: {tuple(out[key].shape)} != {shape}"

    def test_save_load_auto_round_trip(self, tmp_path: Path) -> None:
        model = self.build_model()
        inputs = self.get_inputs(2)
        model.save_pretrained(tmp_path)
        loaded = self.auto_class.from_pretrained(tmp_path).eval()
        assert type(loaded) is type(model)
        with torch.no_grad():
            self._compare(self.forward(model, inputs), self.forward(loaded, inputs), atol=0.0)

    def test_every_trainable_parameter_gets_a_gradient(self) -> None:
        model = self.build_model()
        model.train()
        out = self.forward(model, self.get_loss_inputs(2))
        loss = out["loss"] if not isinstance(out, torch.Tensor) else out
        assert loss is not None and loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        missing = [
            n
            for n, p in model.named_parameters()
            if p.requires_grad
            and (p.grad is None or not torch.any(p.grad != 0))
            and not any(s in n for s in self.no_grad_parameters)
        ]
        assert not missing, f"parameters without gradient: {missing}"

    def test_sdpa_equals_eager(self) -> None:
        model = self.build_model()
        inputs = self.get_inputs(2)
        with torch.no_grad():
            model.set_attn_implementation("sdpa")
            sdpa = self.forward(model, inputs)
            model.set_attn_implementation("eager")
            eager = self.forward(model, inputs)
        self._compare(sdpa, eager, atol=1e-5)

    def test_batch_invariance(self) -> None:
        model = self.build_model()
        inputs = self.get_inputs(2)
        keys = self.batched_inputs or tuple(k for k, v in inputs.items() if isinstance(v, torch.Tensor))
        with torch.no_grad():
            full = _tensors(self.forward(model, inputs))
            first = _tensors(self.forward(model, {k: (v[:1] if k in keys else v) for k, v in inputs.items()}))
        for key, value in first.items():
            if key == "loss" or value.dim() == 0 or full[key].shape[0] != 2:
                continue
            diff = (full[key][:1] - value).abs().max().item()
            assert diff <= 1e-5, f"{key}: batch of 2 differs from batch of 1 by {diff}"

    def test_cached_generation_equals_recompute(self) -> None:
        if not self.test_generation:
            return
        model = self.build_model()
        inputs = self.get_inputs(2)
        for kwargs in ({"num_beams": 1}, {"num_beams": 3}):
            cached = self.generate(model, inputs, use_cache=True, **kwargs)
            full = self.generate(model, inputs, use_cache=False, **kwargs)
            assert torch.equal(cached, full), (kwargs, cached, full)


def assert_raises_clear(fn: Callable[[], Any], exc: type[BaseException], *fragments: str) -> None:
    """Asserts ``fn()`` raises ``exc`` whose message contains every fragment (bad-input tests)."""
    try:
        fn()
    except exc as err:  # noqa: PERF203
        message = str(err)
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in error message: {message}"
    else:
        raise AssertionError(f"expected {exc.__name__}")
