"""LAVIS learning-rate schedules (hand-computed values) and weight-decay parameter groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vl_hub.training.optim import build_optimizer, param_groups
from vl_hub.training.schedulers import LavisSchedule, apply_lr


def test_warmup_cosine_matches_lavis_formulas() -> None:
    s = LavisSchedule(
        "linear_warmup_cosine_lr", init_lr=1e-4, min_lr=1e-6, max_epoch=4, warmup_lr=1e-6, warmup_steps=10
    )
    # epoch 0: min(init, warmup + (init - warmup) * step / warmup_steps)
    assert s.lr(0, 0) == pytest.approx(1e-6)
    assert s.lr(0, 5) == pytest.approx(1e-6 + (1e-4 - 1e-6) * 0.5)
    assert s.lr(0, 10) == pytest.approx(1e-4)
    assert s.lr(0, 500) == pytest.approx(1e-4)  # capped at init_lr for the rest of epoch 0
    # epochs >= 1: (init - min) * 0.5 * (1 + cos(pi * epoch / max_epoch)) + min, constant within the epoch
    for epoch in (1, 2, 3):
        expected = (1e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi * epoch / 4)) + 1e-6
        assert s.lr(epoch, 0) == pytest.approx(expected) == s.lr(epoch, 999)
    assert s.lr(2, 0) == pytest.approx((1e-4 + 1e-6) / 2)


def test_warmup_lr_negative_means_no_warmup() -> None:
    s = LavisSchedule("linear_warmup_cosine_lr", init_lr=2e-5, min_lr=0.0, max_epoch=6, warmup_steps=0)
    assert s.lr(0, 0) == 2e-5 and s.lr(0, 7) == 2e-5
    assert s.lr(3, 0) == pytest.approx(1e-5)


def test_step_schedule_decays_per_epoch_with_floor() -> None:
    s = LavisSchedule(
        "linear_warmup_step_lr", init_lr=3e-4, min_lr=1e-4, warmup_lr=1e-6, warmup_steps=4, decay_rate=0.5
    )
    assert s.lr(0, 2) == pytest.approx(1e-6 + (3e-4 - 1e-6) * 0.5)
    assert s.lr(1, 0) == pytest.approx(1.5e-4)
    assert s.lr(2, 0) == pytest.approx(1e-4)  # 0.75e-4 floored at min_lr
    assert s.lr(5, 3) == pytest.approx(1e-4)


def test_constant_schedule_and_validation() -> None:
    s = LavisSchedule("constant_lr", init_lr=1e-3, warmup_lr=0.0, warmup_steps=4)
    assert [s.lr(0, i) for i in range(6)] == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    assert s.lr(7, 0) == 1e-3
    with pytest.raises(ValueError, match="unknown lr_sched 'cosine'"):
        LavisSchedule("cosine", init_lr=1e-3)
    with pytest.raises(ValueError, match="needs decay_rate"):
        LavisSchedule("linear_warmup_step_lr", init_lr=1e-3)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(10, 4)
        self.fc = nn.Linear(4, 4)
        self.LayerNorm = nn.LayerNorm(4)
        self.ln_final = nn.Linear(4, 4)  # 2-d, but its name has "ln": no decay (LAVIS substring rule)
        self.bn_scale = nn.Parameter(torch.ones(4, 4))  # 2-d with "bn" in the name
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.temp = nn.Parameter(torch.tensor(0.07))  # 0-d
        self.frozen = nn.Linear(4, 4)
        for p in self.frozen.parameters():
            p.requires_grad = False


def test_param_groups_follow_lavis_rule() -> None:
    net = _Net()
    groups = param_groups(net, weight_decay=0.05)
    names = {id(p): n for n, p in net.named_parameters()}
    decay = sorted(names[id(p)] for p in groups[0]["params"])
    no_decay = sorted(names[id(p)] for p in groups[1]["params"])
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    assert decay == ["cls_token", "fc.weight", "word_embeddings.weight"]
    assert no_decay == [
        "LayerNorm.bias",
        "LayerNorm.weight",
        "bn_scale",
        "fc.bias",
        "ln_final.bias",
        "ln_final.weight",
        "temp",
    ]


def test_model_hook_and_no_trainable_parameter() -> None:
    net = _Net()
    net.get_optimizer_params = lambda weight_decay, lr_scale: [  # type: ignore[attr-defined]
        {"params": [net.fc.weight], "weight_decay": weight_decay, "lr_scale": 0.5},
        {"params": [net.fc.bias], "weight_decay": 0.0},
    ]
    groups = param_groups(net, 0.1)
    assert len(groups) == 2 and groups[0]["lr_scale"] == 0.5
    opt = torch.optim.AdamW(groups, lr=1.0)
    apply_lr(opt, 2e-4)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-4, 2e-4])
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        param_groups(frozen, 0.1)


def test_build_optimizer_uses_run_hyperparameters() -> None:
    from vl_hub.training.arguments import ModelArguments, TrainingArguments

    args = TrainingArguments(
        output_dir="o",
        task="t",
        model=ModelArguments(name_or_path="m"),
        init_lr=3e-4,
        beta2=0.98,
        adam_epsilon=1e-6,
        weight_decay=0.02,
    )
    opt = build_optimizer(_Net(), args)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-6 and opt.defaults["lr"] == 3e-4
    assert [g["weight_decay"] for g in opt.param_groups] == [0.02, 0.0]
