"""Visual question answering tab: a free-form question about an image, the answer generated."""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr

from vl_hub.demo.components import image_input, status_box
from vl_hub.demo.context import DemoContext
from vl_hub.demo.heads import device_of
from vl_hub.demo.inputs import read_image, require_text, status_ok, ui_handler

__all__ = ["answer", "build"]


def answer(ctx: DemoContext, model_name: str | None, image: Any, question: Any) -> tuple[str, str]:
    """The generated answer to ``question`` about ``image``: ``(answer, status)``.

    Raises:
        DemoInputError: no / unreadable image, an empty question, or a model without a VQA head.
    """
    head = ctx.bundle(model_name).head_for("vqa")
    picture = read_image(image)
    text = require_text(question, "question", "what colour is the circle?")
    model, processor = head.model, head.processor
    batch = processor(images=[picture], text=[text], text_mode="question")
    device = device_of(model)
    ids = model.generate_answers(
        batch["pixel_values"].to(device), batch["input_ids"].to(device), batch["attention_mask"].to(device)
    )
    ids = getattr(ids, "sequences", ids)
    reply = processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
    return reply or "(empty answer)", status_ok(f"Answered by {type(model).__name__}.")


def build(ctx: DemoContext, model_picker: gr.Dropdown) -> None:
    """The tab's components and events (inside a ``gr.Blocks``)."""
    with gr.Row():
        with gr.Column():
            image = image_input(elem_id="vqa-image")
            question = gr.Textbox(label="Question", placeholder="what colour is the circle?", elem_id="vqa-question")
            button = gr.Button("Answer", variant="primary", elem_id="vqa-run")
        with gr.Column():
            output = gr.Textbox(label="Answer", interactive=False, elem_id="vqa-output")
            status = status_box("vqa-status")
    if ctx.examples:
        gr.Examples(ctx.examples, inputs=[image], label="Example images")
    handler = ui_handler(functools.partial(answer, ctx), 1)
    button.click(handler, inputs=[model_picker, image, question], outputs=[output, status], api_name="vqa")
    question.submit(handler, inputs=[model_picker, image, question], outputs=[output, status])
