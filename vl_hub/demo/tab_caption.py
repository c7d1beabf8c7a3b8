"""Image captioning tab: beam search or nucleus sampling, one to five captions."""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr

from vl_hub.demo.components import image_input, status_box
from vl_hub.demo.context import DemoContext
from vl_hub.demo.heads import device_of
from vl_hub.demo.inputs import DemoInputError, read_image, status_ok, ui_handler

__all__ = ["DECODING", "build", "caption"]

#: page label -> generation settings
DECODING = {
    "Beam search": {"do_sample": False},
    "Nucleus sampling": {"do_sample": True, "top_p": 0.9, "repetition_penalty": 1.1},
}


def caption(
    ctx: DemoContext, model_name: str | None, image: Any, decoding: str, num_captions: float, max_length: float
) -> tuple[str, str]:
    """Captions of ``image``: ``(numbered captions, status)``.

    Args:
        decoding: a key of :data:`DECODING`.
        num_captions: 1..5 (beam search keeps ``max(3, n)`` beams and returns the ``n`` best).
        max_length: most tokens per caption, counting the prompt (as LAVIS).

    Raises:
        DemoInputError: no / unreadable image, or a model without a captioning head.
    """
    head = ctx.bundle(model_name).head_for("caption")
    picture = read_image(image)
    if decoding not in DECODING:
        raise DemoInputError(f"Unknown decoding {decoding!r}; choose one of {', '.join(DECODING)}.")
    count = int(num_captions)
    if not 1 <= count <= 5:
        raise DemoInputError(f"The number of captions must be between 1 and 5, got {count}.")
    model, processor = head.model, head.processor
    prompt_length = len(getattr(model, "prompt_ids", [0]))
    longest = min(int(max_length), model.config.text_config.max_position_embeddings)
    if longest <= prompt_length:
        raise DemoInputError(f"The maximum length must exceed the {prompt_length}-token prompt; got {longest}.")
    settings: dict[str, Any] = dict(DECODING[decoding], max_length=longest, min_length=min(longest, prompt_length + 3))
    settings["num_return_sequences"] = count
    if not settings["do_sample"]:
        settings["num_beams"] = max(3, count)
    pixels = processor(images=[picture])["pixel_values"].to(device_of(model))
    captions = model.caption(pixels, processor, **settings)
    text = "\n".join(f"{i}. {c.strip()}" for i, c in enumerate(captions, 1))
    return text, status_ok(f"{len(captions)} caption(s) by {decoding.lower()} with {type(model).__name__}.")


def build(ctx: DemoContext, model_picker: gr.Dropdown) -> None:
    """The tab's components and events (inside a ``gr.Blocks``)."""
    with gr.Row():
        with gr.Column():
            image = image_input(elem_id="caption-image")
            decoding = gr.Radio(list(DECODING), value="Beam search", label="Decoding", elem_id="caption-decoding")
            count = gr.Slider(1, 5, value=3, step=1, label="Number of captions", elem_id="caption-count")
            length = gr.Slider(8, 40, value=20, step=1, label="Maximum length (tokens, prompt included)")
            button = gr.Button("Generate captions", variant="primary", elem_id="caption-run")
        with gr.Column():
            output = gr.Textbox(label="Captions", lines=6, interactive=False, elem_id="caption-output")
            status = status_box("caption-status")
    if ctx.examples:
        gr.Examples(ctx.examples, inputs=[image], label="Example images")
    button.click(
        ui_handler(functools.partial(caption, ctx), 1),
        inputs=[model_picker, image, decoding, count, length],
        outputs=[output, status],
        api_name="caption",
    )
