"""Image-text matching with a Grad-CAM heat-map, and text localisation (one Grad-CAM map per word).

Both tabs run :func:`vl_hub.demo.gradcam.compute_gradcam` on the model's ITM head; the layer whose cross-attention
is explained is chosen in the page ("auto" = the middle one).
"""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr
from PIL import Image

from vl_hub.demo import heads
from vl_hub.demo.components import image_input, status_box
from vl_hub.demo.context import DemoContext
from vl_hub.demo.gradcam import compute_gradcam, cross_attention_layers, overlay_heatmap
from vl_hub.demo.inputs import DemoInputError, read_image, require_text, status_ok, ui_handler

__all__ = ["AUTO_LAYER", "build_localisation", "build_matching", "layer_choices", "localise", "match"]

#: the layer picker's default entry
AUTO_LAYER = "auto (middle layer)"


def layer_choices(ctx: DemoContext, model_name: str | None) -> list[str]:
    """``AUTO_LAYER`` and the usable cross-attention layers of the model's ITM head (just ``AUTO_LAYER`` when it has
    none)."""
    try:
        head = ctx.bundle(model_name).head_for("itm")
    except Exception:  # the picker may hold a model that cannot load or has no ITM head: the tab will say so
        return [AUTO_LAYER]
    return [AUTO_LAYER, *[str(i) for i in cross_attention_layers(head)]]


def _layer(value: Any) -> int | None:
    if value in (None, "", AUTO_LAYER):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DemoInputError(f"The layer must be a number or {AUTO_LAYER!r}; got {value!r}.") from None


def match(
    ctx: DemoContext, model_name: str | None, image: Any, text: Any, layer: Any = AUTO_LAYER
) -> tuple[dict[str, float], Image.Image, str]:
    """ITM match probability, ITC cosine and the Grad-CAM of ``text`` over ``image``:
    ``({"match": p, "no match": 1 - p}, heat-map overlay, status)``.

    Raises:
        DemoInputError: no / unreadable image, empty text, or a model without an ITM head.
    """
    head = ctx.bundle(model_name).head_for("itm")
    picture = read_image(image)
    query = require_text(text, "text", "a red circle")
    result = compute_gradcam(head, picture, query, _layer(layer))
    cosine = float(heads.image_features(head, [picture])[0] @ heads.text_features(head, [query])[0])
    p = result.itm_probability
    status = status_ok(
        f"ITM P(match) = {p:.3f}, ITC cosine = {cosine:.3f}; Grad-CAM of cross-attention layer {result.layer} "
        f"(average over {len(result.tokens)} token(s))."
    )
    return {"match": p, "no match": 1.0 - p}, overlay_heatmap(picture, result.average_map), status


def localise(
    ctx: DemoContext, model_name: str | None, image: Any, text: Any, layer: Any = AUTO_LAYER
) -> tuple[list[tuple[Image.Image, str]], str]:
    """One Grad-CAM overlay per word of ``text`` (and the average first): ``(gallery items, status)``.

    Raises:
        DemoInputError: as :func:`match`.
    """
    head = ctx.bundle(model_name).head_for("itm")
    picture = read_image(image)
    query = require_text(text, "text", "a red circle and a blue square")
    result = compute_gradcam(head, picture, query, _layer(layer))
    items = [(overlay_heatmap(picture, result.average_map), "all words (average)")]
    items += [(overlay_heatmap(picture, m), word) for word, m in zip(result.words, result.word_maps)]
    status = status_ok(
        f"{len(result.words)} word(s): {' · '.join(result.words)} — layer {result.layer}, "
        f"ITM P(match) = {result.itm_probability:.3f}."
    )
    return items, status


def _inputs(ctx: DemoContext, prefix: str, placeholder: str) -> tuple[gr.Image, gr.Textbox, gr.Dropdown, gr.Button]:
    image = image_input(elem_id=f"{prefix}-image")
    text = gr.Textbox(label="Text", placeholder=placeholder, elem_id=f"{prefix}-text")
    layer = gr.Dropdown(
        layer_choices(ctx, None), value=AUTO_LAYER, label="Cross-attention layer explained by Grad-CAM",
        elem_id=f"{prefix}-layer",
    )
    button = gr.Button("Run", variant="primary", elem_id=f"{prefix}-run")
    return image, text, layer, button


def build_matching(ctx: DemoContext, model_picker: gr.Dropdown) -> gr.Dropdown:
    """The image-text matching tab; returns its layer picker (refreshed when the model changes)."""
    with gr.Row():
        with gr.Column():
            image, text, layer, button = _inputs(ctx, "itm", "a red circle on the left")
        with gr.Column():
            scores = gr.Label(label="Image-text matching (ITM head)", num_top_classes=2, elem_id="itm-scores")
            heatmap = gr.Image(label="Grad-CAM: where the text is matched", interactive=False, elem_id="itm-heatmap",
                               height=320, buttons=["download"])
            status = status_box("itm-status")
    if ctx.examples:
        gr.Examples(ctx.examples, inputs=[image], label="Example images")
    handler = ui_handler(functools.partial(match, ctx), 2)
    button.click(handler, inputs=[model_picker, image, text, layer], outputs=[scores, heatmap, status], api_name="itm")
    text.submit(handler, inputs=[model_picker, image, text, layer], outputs=[scores, heatmap, status])
    return layer


def build_localisation(ctx: DemoContext, model_picker: gr.Dropdown) -> gr.Dropdown:
    """The text localisation tab; returns its layer picker."""
    with gr.Row():
        with gr.Column(scale=1):
            image, text, layer, button = _inputs(ctx, "loc", "a red circle and a blue square")
        with gr.Column(scale=2):
            maps = gr.Gallery(label="Grad-CAM per word", columns=4, height="auto", object_fit="contain",
                              elem_id="loc-maps", allow_preview=True)
            status = status_box("loc-status")
    if ctx.examples:
        gr.Examples(ctx.examples, inputs=[image], label="Example images")
    handler = ui_handler(functools.partial(localise, ctx), 1)
    button.click(handler, inputs=[model_picker, image, text, layer], outputs=[maps, status], api_name="localise")
    text.submit(handler, inputs=[model_picker, image, text, layer], outputs=[maps, status])
    return layer
