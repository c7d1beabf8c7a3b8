"""Zero-shot classification: the shipped ImageNet names / OpenAI templates, prompt ensembling by hand, the classifier
cache, clear errors, and transformers' zero-shot-image-classification pipeline on a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoImageProcessor, AutoModelForZeroShotImageClassification, AutoTokenizer, pipeline

from tests.models.clip.clip_test_utils import random_image, random_pixels, tiny_config, tiny_processor, tiny_tokenizer
from vl_hub.models.clip.modeling_clip import ClipForZeroShotClassification
from vl_hub.models.clip.zero_shot import check_templates, imagenet_classnames, openai_imagenet_templates

CLASSES = ["cat", "dog", "red car"]
TEMPLATES = ["a photo of a {}.", "a picture of the {}", "{}"]


@pytest.fixture(scope="module")
def model() -> ClipForZeroShotClassification:
    torch.manual_seed(0)
    return ClipForZeroShotClassification(tiny_config()).eval()


def test_shipped_imagenet_class_names_and_templates() -> None:
    names, templates = imagenet_classnames(), openai_imagenet_templates()
    assert len(names) == 1000 and names[:3] == ("tench", "goldfish", "great white shark") and names[-1] == "toilet paper"
    assert len(templates) == 80 and templates[0] == "a bad photo of a {}." and templates[-1] == "a tattoo of the {}."
    assert check_templates(templates) == templates


def test_classifier_is_the_renormalised_mean_of_normalised_prompt_embeddings(model) -> None:
    tok = tiny_tokenizer()
    classifier = model.text_classifier(CLASSES, tok, TEMPLATES, use_cache=False)
    expected = []
    with torch.no_grad():
        for name in CLASSES:
            ids = tok([t.format(name) for t in TEMPLATES], padding=True, return_tensors="pt")["input_ids"]
            mean = F.normalize(model.get_text_features(ids), dim=-1).mean(dim=0)
            expected.append(mean / mean.norm())
    torch.testing.assert_close(classifier, torch.stack(expected), atol=1e-6, rtol=0)
    # chunking by whole classes gives the same classifier
    torch.testing.assert_close(model.text_classifier(CLASSES, tok, TEMPLATES, batch_size=1, use_cache=False), classifier)


def test_classify_logits_are_scaled_cosines(model) -> None:
    tok = tiny_tokenizer()
    pixels = random_pixels(2)
    out = model.classify(pixels, CLASSES, tok, TEMPLATES, labels=torch.tensor([0, 2]))
    with torch.no_grad():
        image = F.normalize(model.get_image_features(pixels), dim=-1)
    expected = model.logit_scale.exp() * image @ model.text_classifier(CLASSES, tok, TEMPLATES).t()
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=0)
    assert out.logits.shape == (2, 3)
    torch.testing.assert_close(out.loss, F.cross_entropy(expected, torch.tensor([0, 2])), atol=1e-5, rtol=0)
    # a processor works as the tokenizer, and a precomputed classifier needs none
    torch.testing.assert_close(model.classify(pixels, CLASSES, tiny_processor(), TEMPLATES).logits, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.classify(pixels, class_embeds=out.class_embeds).logits, expected, atol=1e-5, rtol=0)


def test_video_is_classified_by_its_frame_mean(model) -> None:
    tok = tiny_tokenizer()
    video = random_pixels(2, frames=3)
    logits = model.classify(video, CLASSES, tok, TEMPLATES).logits
    with torch.no_grad():
        frame_mean = model.get_image_features(video.flatten(0, 1)).view(2, 3, -1).mean(dim=1)
    expected = model.logit_scale.exp() * F.normalize(frame_mean, dim=-1) @ model.text_classifier(CLASSES, tok, TEMPLATES).t()
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_classifier_cache_per_class_list_and_templates(monkeypatch) -> None:
    torch.manual_seed(0)
    model = ClipForZeroShotClassification(tiny_config()).eval()
    tok = tiny_tokenizer()
    calls = []
    original = model.get_text_features
    monkeypatch.setattr(model, "get_text_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = model.text_classifier(CLASSES, tok, TEMPLATES)
    assert model.text_classifier(list(CLASSES), tok, list(TEMPLATES)) is first and len(calls) == 1
    model.text_classifier(CLASSES[:2], tok, TEMPLATES)
    model.text_classifier(CLASSES, tok, TEMPLATES[:1])
    assert len(calls) == 3
    model.train()  # weights may change: the cache is dropped and not used while training
    model.text_classifier(CLASSES, tok, TEMPLATES)
    model.text_classifier(CLASSES, tok, TEMPLATES)
    assert len(calls) == 5
    model.eval()
    assert model.text_classifier(CLASSES, tok, TEMPLATES) is not first and len(calls) == 6


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"class_names": []}, ValueError, "class_names is empty"),
        ({"class_names": "cat"}, TypeError, "single string"),
        ({"class_names": ["cat", ""]}, ValueError, "class_names[1]"),
        ({"templates": ["a photo of a cat"]}, ValueError, "exactly one '{}'"),
        ({"templates": ["a {} and a {}"]}, ValueError, "found 2"),
        ({"templates": ["a photo of a {c}."]}, ValueError, "{c}"),
        ({"templates": ["a photo of a {."]}, ValueError, "not a valid format string"),
        ({"templates": []}, ValueError, "templates is empty"),
        ({"tokenizer": None}, ValueError, "needs the model's tokenizer"),
    ],
)
def test_zero_shot_bad_input(model, kwargs: dict, error: type, fragment: str) -> None:
    call = {"class_names": CLASSES, "tokenizer": tiny_tokenizer(), "templates": TEMPLATES, **kwargs}
    with pytest.raises(error) as info:
        model.text_classifier(**call)
    assert fragment in str(info.value)


def test_class_embeds_shape_is_checked(model) -> None:
    with pytest.raises(ValueError, match="class_embeds must be"):
        model.classify(random_pixels(1), class_embeds=torch.randn(3, 7))


def test_transformers_zero_shot_pipeline(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ClipForZeroShotClassification(tiny_config()).eval()
    processor = tiny_processor()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    classifier = pipeline(
        "zero-shot-image-classification",
        model=AutoModelForZeroShotImageClassification.from_pretrained(tmp_path),
        image_processor=AutoImageProcessor.from_pretrained(tmp_path),
        tokenizer=AutoTokenizer.from_pretrained(tmp_path),
    )
    image = random_image(50, 40, seed=5)
    result = classifier(image, candidate_labels=["cat", "dog", "car"], hypothesis_template="a photo of a {}.")
    assert sorted(r["label"] for r in result) == ["car", "cat", "dog"]
    assert sum(r["score"] for r in result) == pytest.approx(1.0, abs=1e-5)
    # the pipeline's scores are the softmax of our logits for the same prompts
    batch = processor(images=image, text=[f"a photo of a {c}." for c in ("cat", "dog", "car")])
    with torch.no_grad():
        probs = model(batch["pixel_values"], batch["input_ids"], batch["attention_mask"]).logits_per_image.softmax(-1)[0]
    scores = {r["label"]: r["score"] for r in result}
    torch.testing.assert_close(torch.tensor([scores[c] for c in ("cat", "dog", "car")]), probs, atol=1e-5, rtol=0)
