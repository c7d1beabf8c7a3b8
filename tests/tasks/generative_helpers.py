"""Shared pieces of the captioning / VQA / video QA / dialogue task tests: the tiny BLIP processor and heads,
the dummy dataset splits, and a few optimizer steps on one batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.common.builder_tester import dummy_dir
from tests.models.blip.reference_utils import tiny_blip_config
from vl_hub.data.load import load_dataset
from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor
from vl_hub.models.blip.modeling_blip_generation import (
    BlipForConditionalGeneration,
    BlipForQuestionAnswering,
    caption_prompt_ids,
)
from vl_hub.models.blip.processing_blip import VlHubBlipProcessor, build_blip_tokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PROMPT = "a picture of "


def blip_processor(max_txt_len: int = 20) -> VlHubBlipProcessor:
    """The 232-token BLIP tokenizer of the fixtures + a 32 px image processor."""
    tokenizer = build_blip_tokenizer(FIXTURES / "bert_vocab.txt")
    return VlHubBlipProcessor(VlHubBlipImageProcessor(image_size=32), tokenizer, max_txt_len=max_txt_len, prompt=PROMPT)


def _spread(model: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    """Random perturbation of every weight, so that different inputs give different outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return model.eval()


def caption_model(processor: VlHubBlipProcessor, seed: int = 0) -> BlipForConditionalGeneration:
    """Tiny captioning head whose config knows the prompt ids."""
    torch.manual_seed(seed)
    config = tiny_blip_config(prompt=PROMPT, prompt_input_ids=caption_prompt_ids(processor.tokenizer, PROMPT))
    return _spread(BlipForConditionalGeneration(config), seed)


def vqa_model(seed: int = 0, candidates: int = 4) -> BlipForQuestionAnswering:
    """Tiny question-answering head."""
    torch.manual_seed(seed)
    return _spread(BlipForQuestionAnswering(tiny_blip_config(num_answer_candidates=candidates)), seed)


def dummy_split(name: str, split: str, cache_dir: Path, **config: Any) -> Any:
    """A split of ``dataset_scripts/<name>/dummy`` through ``vl_hub.load_dataset``."""
    return load_dataset(name, data_dir=str(dummy_dir(name)), cache_dir=str(cache_dir), split=split, **config)


def rows_of(dataset: Any) -> list[dict[str, Any]]:
    """Every row of a (small) dataset."""
    return [dataset[i] for i in range(len(dataset))]


def train_losses(task: Any, model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int = 6,
                 lr: float = 1e-3) -> list[float]:
    """Losses of ``steps`` AdamW steps of ``task.training_step`` on the same batch (the model is left trained)."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        out = task.training_step(model, batch)
        assert next(iter(out)) == "loss" and out["loss"].requires_grad and out["loss"].dim() == 0
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
    model.eval()
    return losses


@pytest.fixture(scope="module", autouse=True)
def single_thread_no_java() -> Iterator[None]:
    """One torch thread (the suite runs beside other jobs) and the Python PTB tokenizer: without Java METEOR is
    reported unavailable instead of starting a JVM (20+ s)."""
    import vl_hub.metrics.caption as caption_module

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(caption_module, "java_available", lambda: False)
        yield
    torch.set_num_threads(threads)
