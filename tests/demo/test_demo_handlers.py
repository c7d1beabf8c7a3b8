"""The tab handlers without a browser: captioning, VQA, zero-shot classification, input checks and error display."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
import torch
from PIL import Image

from vl_hub.demo import tab_caption, tab_vqa, tab_zero_shot
from vl_hub.demo.heads import image_features, similarity_scale, text_features
from vl_hub.demo.inputs import (
    DemoInputError,
    UnreadableUpload,
    class_list,
    read_image,
    require_text,
    status_error,
    ui_handler,
)


@pytest.fixture(scope="module")
def image_path(ctx) -> str:
    return ctx.examples[1]


@pytest.fixture(scope="module")
def broken_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("broken") / "broken.png"
    path.write_text("this is not an image")
    return str(path)


# ----------------------------------------------------------------------------------------------- inputs
def test_read_image_accepts_paths_pil_and_arrays_and_flattens_alpha_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 3), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    path = tmp_path / "a.png"
    rgba.save(path)
    image = read_image(str(path))
    assert image.mode == "RGB" and image.size == (4, 3)
    assert image.getpixel((0, 0)) == (0, 0, 255) and image.getpixel((1, 0)) == (255, 255, 255)
    import numpy as np

    assert read_image(np.zeros((2, 5, 3), dtype=np.uint8)).size == (5, 2)
    assert read_image(Image.new("L", (3, 3))).mode == "RGB"


def test_read_image_errors_are_readable(broken_path: str, tmp_path: Path) -> None:
    with pytest.raises(DemoInputError, match=r"No image: upload an image"):
        read_image(None)
    with pytest.raises(DemoInputError, match=r"'broken.png' is not a readable image \(UnidentifiedImageError"):
        read_image(broken_path)
    with pytest.raises(DemoInputError, match=r"'x.gif' is not a readable image \(OSError: truncated\)"):
        read_image(UnreadableUpload("x.gif", "OSError: truncated"))
    with pytest.raises(DemoInputError, match="does not exist any more"):
        read_image(str(tmp_path / "gone.png"))


def test_text_and_class_checks() -> None:
    assert require_text("  hi ") == "hi"
    with pytest.raises(DemoInputError, match=r"The question is empty: type one \(for example: 'why\?'\)"):
        require_text(" ", "question", "why?")
    assert class_list("cat, dog,\n cat , bird,,") == ["cat", "dog", "bird"]
    with pytest.raises(DemoInputError, match=r"at least 2 class names .*got 1: \['cat'\]"):
        class_list("cat, ")


def test_ui_handler_turns_errors_into_a_status_message_and_keeps_outputs() -> None:
    def ok(x: int) -> tuple[int, str, str]:
        return x, "y", "done"

    def user_error(x: int) -> tuple[int, str, str]:
        raise DemoInputError("bad *input* [here]\nHow to fix:\n  step 1")

    def bug(x: int) -> tuple[int, str, str]:
        raise ZeroDivisionError("division by zero")

    assert ui_handler(ok, 2)(1) == (1, "y", "done")
    with pytest.warns(UserWarning, match=r"bad \*input\*"):  # the gr.Warning toast (a warning outside a request)
        first, second, status = ui_handler(user_error, 2)(1)
    assert first == gr.update(value=None) and second == gr.update(value=None)  # no stale result beside the message
    assert status == status_error("bad *input* [here]\nHow to fix:\n  step 1")
    assert status.startswith("⚠ **bad \\*input\\* \\[here\\]**") and "```text\nHow to fix:\n  step 1\n```" in status
    with pytest.warns(UserWarning, match="ZeroDivisionError"):
        first, _, status = ui_handler(bug, 2, keep_outputs=True)(1)
    assert first == gr.update()
    assert "Something went wrong: ZeroDivisionError: division by zero" in status


def test_missing_data_and_unavailable_models_show_their_own_message() -> None:
    from vl_hub.data.builder_utils import MissingDataError
    from vl_hub.zoo import ModelNotAvailableError

    def missing() -> tuple[str, str]:
        raise MissingDataError("coco: expected x.json\nDownload it from y")

    def unavailable() -> tuple[str, str]:
        raise ModelNotAvailableError("blip_caption:base_coco is not converted")

    with pytest.warns(UserWarning):
        missing_status = ui_handler(missing, 1)()[-1]
    with pytest.warns(UserWarning):
        unavailable_status = ui_handler(unavailable, 1)()[-1]
    assert "coco: expected x.json" in missing_status and "Download it from y" in missing_status
    assert "is not converted" in unavailable_status and "Something went wrong" not in unavailable_status


# ----------------------------------------------------------------------------------------------- captioning
def test_caption_beam_search_equals_the_model_and_numbers_the_captions(ctx, image_path: str) -> None:
    text, status = tab_caption.caption(ctx, None, image_path, "Beam search", 3, 20)
    head = ctx.bundle(None).head_for("caption")
    pixels = head.processor(images=[read_image(image_path)])["pixel_values"]
    expected = head.model.caption(pixels, head.processor, num_beams=3, num_return_sequences=3, max_length=20,
                                  min_length=7)
    assert text.splitlines() == [f"{i}. {c.strip()}" for i, c in enumerate(expected, 1)]
    assert "3 caption(s) by beam search" in status


def test_caption_sampling_returns_the_number_asked(ctx, image_path: str) -> None:
    torch.manual_seed(0)
    text, _ = tab_caption.caption(ctx, None, image_path, "Nucleus sampling", 2, 12)
    lines = text.splitlines()
    assert [line[:3] for line in lines] == ["1. ", "2. "]


def test_caption_bad_input(ctx, image_path: str, broken_path: str) -> None:
    with pytest.raises(DemoInputError, match="No image"):
        tab_caption.caption(ctx, None, None, "Beam search", 1, 20)
    with pytest.raises(DemoInputError, match="not a readable image"):
        tab_caption.caption(ctx, None, broken_path, "Beam search", 1, 20)
    with pytest.raises(DemoInputError, match="between 1 and 5"):
        tab_caption.caption(ctx, None, image_path, "Beam search", 9, 20)
    with pytest.raises(DemoInputError, match="exceed the 4-token prompt"):
        tab_caption.caption(ctx, None, image_path, "Beam search", 1, 4)
    with pytest.raises(DemoInputError, match="cannot do image captioning"):
        tab_caption.caption(ctx, "tiny CLIP", image_path, "Beam search", 1, 20)


# ----------------------------------------------------------------------------------------------- VQA
def test_vqa_answer_equals_generate_answers(ctx, image_path: str) -> None:
    answer, status = tab_vqa.answer(ctx, None, image_path, "  what colour is the square? ")
    head = ctx.bundle(None).head_for("vqa")
    batch = head.processor(images=[read_image(image_path)], text=["what colour is the square?"], text_mode="question")
    ids = head.model.generate_answers(batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
    assert answer == head.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
    assert answer and "BlipForQuestionAnswering" in status


def test_vqa_bad_input(ctx, image_path: str) -> None:
    with pytest.raises(DemoInputError, match="question is empty"):
        tab_vqa.answer(ctx, None, image_path, "   ")
    with pytest.raises(DemoInputError, match="No image"):
        tab_vqa.answer(ctx, None, None, "what?")
    with pytest.raises(DemoInputError, match="cannot do visual question answering"):
        tab_vqa.answer(ctx, "tiny ALBEF", image_path, "what?")


# ----------------------------------------------------------------------------------------------- zero-shot
COSINE, ITM = list(tab_zero_shot.SCORES)


def test_zero_shot_cosine_is_a_softmax_of_scaled_cosines(ctx, image_path: str) -> None:
    table, label, status = tab_zero_shot.classify(ctx, None, image_path, "circle, square, triangle", "a {}", COSINE)
    head = ctx.bundle(None).head_for("features")
    image_feat = image_features(head, [read_image(image_path)])[0]
    cos = text_features(head, ["a circle", "a square", "a triangle"]) @ image_feat
    expected = (cos / float(head.model.temp.detach())).softmax(0)
    assert list(table["class"]) == ["circle", "square", "triangle"]
    torch.testing.assert_close(torch.tensor(table["probability"].to_list()), expected, rtol=1e-5, atol=1e-6)
    assert sum(label.values()) == pytest.approx(1.0)
    assert "Best: " in status


def test_zero_shot_clip_matches_its_classifier(ctx, image_path: str) -> None:
    classes, template = "cat, dog, car, bird", "a photo of the {}"
    table, _, _ = tab_zero_shot.classify(ctx, "tiny CLIP", image_path, classes, template, COSINE)
    head = ctx.bundle("tiny CLIP").heads[0]
    pixels = head.processor(images=[read_image(image_path)])["pixel_values"]
    with torch.no_grad():
        logits = head.model.classify(pixels, ["cat", "dog", "car", "bird"], head.processor,
                                     templates=["a photo of the {}"]).logits[0]
    torch.testing.assert_close(torch.tensor(table["probability"].to_list()), logits.softmax(0), rtol=1e-5, atol=1e-6)
    assert similarity_scale(head) == pytest.approx(float(head.model.logit_scale.detach().exp()))
    with pytest.raises(DemoInputError, match="cannot do image-text matching"):
        tab_zero_shot.classify(ctx, "tiny CLIP", image_path, "cat, dog", "{}", ITM)


def test_zero_shot_itm_is_each_class_match_probability(ctx, image_path: str) -> None:
    table, label, _ = tab_zero_shot.classify(ctx, "tiny ALBEF", image_path, "dog, cat", "a picture of a {}", ITM)
    head = ctx.bundle("tiny ALBEF").heads[0]
    batch = head.processor(images=[read_image(image_path)] * 2, text=["a picture of a dog", "a picture of a cat"],
                           text_mode="caption")
    with torch.no_grad():
        expected = head.model(**batch, match_head="itm").itm_logits.softmax(-1)[:, 1]
    torch.testing.assert_close(torch.tensor(table["P(match)"].to_list()), expected, rtol=1e-5, atol=1e-6)
    assert set(label) == {"dog", "cat"}


def test_zero_shot_bad_input(ctx, image_path: str) -> None:
    with pytest.raises(DemoInputError, match=r"must contain '\{\}' once"):
        tab_zero_shot.classify(ctx, None, image_path, "cat, dog", "a photo", COSINE)
    with pytest.raises(DemoInputError, match="at least 2 class names"):
        tab_zero_shot.classify(ctx, None, image_path, "cat", "{}", COSINE)
    with pytest.raises(DemoInputError, match="Unknown score"):
        tab_zero_shot.classify(ctx, None, image_path, "cat, dog", "{}", "loudness")
    with pytest.raises(DemoInputError, match="No image"):
        tab_zero_shot.classify(ctx, None, None, "cat, dog", "{}", COSINE)
