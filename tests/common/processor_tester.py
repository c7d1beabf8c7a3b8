"""A processor tester mixin: save -> AutoProcessor.from_pretrained gives the same class and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch


class ProcessorTesterMixin:
    """Mix into a pytest class; implement ``get_processor(tmp_path)`` and ``get_sample_inputs()``."""

    auto_class: ClassVar[Any]

    def get_processor(self, tmp_path: Path) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_sample_inputs(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def test_processor_save_load_round_trip(self, tmp_path: Path) -> None:
        processor = self.get_processor(tmp_path / "src")
        out_dir = tmp_path / "saved"
        processor.save_pretrained(out_dir)
        loaded = self.auto_class.from_pretrained(out_dir)
        assert type(loaded) is type(processor)
        a = processor(**self.get_sample_inputs())
        b = loaded(**self.get_sample_inputs())
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], torch.Tensor):
                assert torch.equal(a[key], b[key]), key
            else:
                assert a[key] == b[key], key
