"""CLIP heads through the model tester mixin: ClipModel (ViT and ResNet towers) and ClipForZeroShotClassification."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from transformers import AutoModel, AutoModelForZeroShotImageClassification

from tests.common.model_tester import ModelTesterMixin, _tensors
from tests.models.clip.clip_test_utils import random_ids, random_pixels, tiny_config
from vl_hub.models.clip.configuration_clip import ClipConfig
from vl_hub.models.clip.modeling_clip import ClipForZeroShotClassification, ClipModel

PAIRWISE = ("logits_per_image", "logits_per_text")


class _ClipTester(ModelTesterMixin):
    resnet: ClassVar[bool] = False
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "logits_per_image": (2, 2),
        "logits_per_text": (2, 2),
        "image_embeds": (2, 32),
        "text_embeds": (2, 32),
        "image_feat": (2, 32),
        "text_feat": (2, 32),
    }

    def get_config(self) -> ClipConfig:
        return tiny_config(resnet=self.resnet)

    def get_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        size = 64 if self.resnet else 32
        return {"pixel_values": random_pixels(batch_size, size), "input_ids": random_ids(batch_size)}

    def get_loss_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        return {**self.get_inputs(batch_size), "return_loss": True}

    def test_batch_invariance(self) -> None:
        # The mixin compares per-row outputs; the logits are (images x texts): compare the [:1, :1] block.
        model = self.build_model()
        inputs = self.get_inputs(2)
        with torch.no_grad():
            full = _tensors(self.forward(model, inputs))
            first = _tensors(self.forward(model, {k: v[:1] for k, v in inputs.items()}))
        for key, value in first.items():
            expected = full[key][:1, :1] if key in PAIRWISE else full[key][:1]
            torch.testing.assert_close(value, expected, atol=1e-5, rtol=0, msg=key)


class TestClipModelViT(_ClipTester):
    model_class = ClipModel
    auto_class = AutoModel


class TestClipModelResNet(_ClipTester):
    model_class = ClipModel
    auto_class = AutoModel
    resnet = True

    def build_model(self, seed: int = 0) -> ClipModel:
        # OpenAI's init zeroes every bn3 weight (residual branches start as the identity), which leaves the branch
        # convolutions without gradient at step 0; draw them like the LAVIS fixture does.
        model = super().build_model(seed)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.weight.uniform_(0.5, 1.5)
        return model


class TestClipForZeroShotClassification(_ClipTester):
    model_class = ClipForZeroShotClassification
    auto_class = AutoModelForZeroShotImageClassification
