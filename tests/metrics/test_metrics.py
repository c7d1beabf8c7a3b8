"""Metrics against hand-computed values; evaluate modules load offline."""

from __future__ import annotations

import math

import evaluate
import pytest
import torch

from vl_hub.metrics import (
    list_evaluate_modules,
    module_path,
    normalize_answer,
    recall_at_k,
    retrieval_metrics,
    topk_accuracy,
    visdial_metrics,
    vqa_accuracy,
    vqa_score,
)
from vl_hub.metrics.caption import caption_metrics, python_ptb_tokenize


# ---------------------------------------------------------------- VQA
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Two dogs!", "2 dogs"),
        ("the cat", "cat"),
        ("An apple.", "apple"),
        ("isnt it", "isn't it"),
        ("dont", "don't"),
        ("3.5", "3.5"),  # a decimal point is kept
        ("1,000", "1000"),  # a digit-group comma is removed
        ("black/white", "black white"),  # a slash between words splits them
        ("yes ,", "yes"),
        ("none", "0"),
    ],
)
def test_vqa_normalisation(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_vqa_accuracy_hand_computed() -> None:
    # 3 of 10 agree: those 3 see 2 matches (2/3), the other 7 see 3 (1) -> (3*2/3 + 7) / 10
    assert vqa_accuracy("Two!", ["2"] * 3 + ["3"] * 7) == pytest.approx(0.9)
    # 2 of 10 agree: (2 * 1/3 + 8 * 2/3) / 10
    assert vqa_accuracy("yes", ["yes"] * 2 + ["no"] * 8) == pytest.approx(0.6)
    assert vqa_accuracy("yes", ["yes"] * 10) == 1.0
    assert vqa_accuracy("no", ["yes"] * 10) == 0.0
    # 1 of 10 agrees: the one sees 0, the others 1/3 -> 9/30
    assert vqa_accuracy("red", ["red"] + ["blue"] * 9) == pytest.approx(0.3)
    assert vqa_score(["yes", "no"], [["yes"] * 10, ["yes"] * 10]) == {"vqa_accuracy": 50.0}


def test_vqa_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        vqa_accuracy("yes", [])
    with pytest.raises(ValueError, match="2 predictions for 1"):
        vqa_score(["a", "b"], [["a"]])


# ---------------------------------------------------------------- retrieval
def test_retrieval_recalls_hand_computed() -> None:
    # 2 images x 4 texts; image 0 owns texts 0,1; image 1 owns 2,3
    s = torch.tensor([[0.1, 0.9, 0.3, 0.2], [0.8, 0.1, 0.2, 0.7]])
    m = retrieval_metrics(s, s.T, img2txt=[[0, 1], [2, 3]], txt2img=[0, 0, 1, 1])
    # i2t: image 0 best positive (text 1) at rank 1; image 1 best positive (text 3) at rank 2
    assert m["txt_r1"] == 50.0 and m["txt_r5"] == 100.0 and m["txt_mean_rank"] == 1.5
    # t2i: text0 -> [0.1, 0.8] image 0 rank 2; text1 rank 1; text2 -> [0.3,0.2] image 1 rank 2; text3 rank 1
    assert m["img_r1"] == 50.0 and m["img_mean_rank"] == 1.5
    assert m["r_mean"] == pytest.approx((m["txt_r_mean"] + m["img_r_mean"]) / 2)
    assert recall_at_k(s, [[1], [0]])["r1"] == 100.0


def test_retrieval_missing_positive() -> None:
    with pytest.raises(ValueError, match="query 1 has no ground-truth"):
        recall_at_k(torch.zeros(2, 3), [[0], []])


# ---------------------------------------------------------------- classification
def test_topk_accuracy() -> None:
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    labels = torch.tensor([2, 0, 0])
    out = topk_accuracy(logits, labels, ks=(1, 2))
    assert out["top1"] == pytest.approx(100 / 3) and out["top2"] == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        topk_accuracy(logits, torch.tensor([0, 1, 3]))


# ---------------------------------------------------------------- visdial
def test_visdial_hand_computed() -> None:
    scores = torch.tensor([[0.9, 0.5, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4]])
    gt = torch.tensor([1, 0])  # ranks 2 and 4
    rel = torch.tensor([[0.0, 1.0, 0.5, 0.0], [float("nan")] * 4])
    out = visdial_metrics(scores, gt, rel)
    assert out["mrr"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert out["r1"] == 0.0 and out["r5"] == 100.0 and out["mean_rank"] == 3.0
    # row 0: k = 2 relevant options; ranking by score: options 0,1 -> rel [0, 1] -> DCG = 1/log2(3);
    # ideal: [1, 0.5] -> 1 + 0.5/log2(3)
    dcg = 1 / math.log2(3)
    idcg = 1 + 0.5 / math.log2(3)
    assert out["ndcg"] == pytest.approx(100 * dcg / idcg)


# ---------------------------------------------------------------- captions
def test_python_tokenizer_matches_ptb_behaviour() -> None:
    assert python_ptb_tokenize("A dog, running; on the grass.") == "a dog running on the grass"
    assert python_ptb_tokenize("The man's hat!") == "the man's hat"


def test_caption_metrics_known_values() -> None:
    # Two images whose candidate equals its single reference and shares no n-gram with the other image:
    # every n-gram has df = 1 of N = 2 images, tf-idf vectors are identical -> cosine 1 for n = 1..4,
    # no length penalty -> CIDEr-D = 10 * 1. BLEU-n = 1 and ROUGE-L = 1 for exact matches.
    preds = ["a red circle on grass", "two blue squares near water"]
    refs = [["a red circle on grass"], ["two blue squares near water"]]
    out = caption_metrics(preds, refs, meteor=False)
    assert out["cider"] == pytest.approx(10.0, abs=1e-6)
    assert out["bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert out["rouge_l"] == pytest.approx(1.0)
    # BLEU-1 by hand: "a red square" vs ref "a red circle": 2/3 unigram precision, same length -> 2/3
    out = caption_metrics(["a red square", "two blue squares near water"], [["a red circle"], refs[1]], meteor=False)
    assert out["bleu_1"] == pytest.approx((2 + 5) / (3 + 5), abs=1e-6)  # corpus-level: clipped matches / total


def test_caption_bad_input() -> None:
    with pytest.raises(ValueError, match="no reference"):
        caption_metrics(["a"], [[]], meteor=False)


# ---------------------------------------------------------------- evaluate modules
def test_evaluate_modules_load_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert set(list_evaluate_modules()) >= {"vqa_accuracy", "caption_metrics", "retrieval_recall", "classification_accuracy", "visdial_metrics"}
    vqa = evaluate.load(module_path("vqa_accuracy"))
    assert vqa.compute(predictions=["yes"], references=[["yes"] * 10]) == {"vqa_accuracy": 100.0}
    rec = evaluate.load(module_path("retrieval_recall"))
    assert rec.compute(predictions=[[0.1, 0.9], [0.8, 0.2]], references=[[1], [1]])["r1"] == 50.0
    acc = evaluate.load(module_path("classification_accuracy"))
    assert acc.compute(predictions=[[0.1, 0.9], [0.8, 0.2]], references=[1, 1], ks=(1,))["top1"] == 50.0
    vd = evaluate.load(module_path("visdial_metrics"))
    assert vd.compute(predictions=[[0.1, 0.9]], references=[1])["mrr"] == 1.0
    cap = evaluate.load(module_path("caption_metrics"))
    assert cap.compute(predictions=["a b c d"], references=[["a b c d"]], meteor=False)["bleu_4"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(KeyError, match="valid names"):
        module_path("bleu")


def test_meteor_with_java_and_reason_without(monkeypatch: pytest.MonkeyPatch) -> None:
    from vl_hub.metrics import caption as caption_module

    preds, refs = ["a red circle on the grass"], [["a red circle on the grass", "a circle"]]
    if caption_module.java_available():
        out = caption_metrics(preds, refs, meteor=True)
        assert 0.9 < out["meteor"] <= 1.0  # exact match: only the fragmentation penalty remains
    monkeypatch.setattr(caption_module, "java_available", lambda: False)
    out = caption_metrics(preds, refs, meteor=True)
    assert "meteor" not in out and "Java" in out["meteor_unavailable"]
    assert out["bleu_1"] == pytest.approx(1.0)  # the Python tokenizer path still scores
