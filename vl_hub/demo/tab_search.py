"""Multimodal search tab: a text query against the gallery (indexed once per model), optional ITM re-ranking."""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr
from PIL import Image

from vl_hub.demo.components import status_box
from vl_hub.demo.context import DemoContext
from vl_hub.demo.inputs import DemoInputError, require_text, status_ok, ui_handler

__all__ = ["RESULT_COUNTS", "build", "search"]

#: how many results the page offers
RESULT_COUNTS = (12, 24, 48)


def search(
    ctx: DemoContext, model_name: str | None, query: Any, count: Any, rerank: bool
) -> tuple[list[tuple[Image.Image, str]], str]:
    """The gallery images best matching ``query``: ``(gallery items (image, "#rank · score"), status)``.

    Args:
        count: one of :data:`RESULT_COUNTS` (capped at the gallery size).
        rerank: re-rank the results by the ITM head's match probability.

    Raises:
        DemoInputError: empty query, a count not offered, a model without features (or without ITM when re-ranking).
    """
    bundle = ctx.bundle(model_name)
    feature_head = bundle.head_for("features")
    itm_head = bundle.head_for("itm") if rerank else None
    text = require_text(query, "search text", "a red circle")
    try:
        top_k = int(count)
    except (TypeError, ValueError):
        raise DemoInputError(f"The number of results must be one of {RESULT_COUNTS}; got {count!r}.") from None
    if top_k not in RESULT_COUNTS:
        raise DemoInputError(f"The number of results must be one of {RESULT_COUNTS}; got {top_k}.")
    gallery = ctx.gallery()
    hits = gallery.search(feature_head, text, top_k, itm_head)
    images = gallery.images([h.index for h in hits])
    items = [(image, f"#{rank} · {h.score:.3f}") for rank, (image, h) in enumerate(zip(images, hits), 1)]
    how = f"ranked by cosine similarity ({type(feature_head.model).__name__})"
    if itm_head is not None:
        how += f", re-ranked by ITM match probability ({type(itm_head.model).__name__})"
    return items, status_ok(f"Top {len(hits)} of {len(gallery)} images for {text!r}, {how}. Gallery: "
                            f"{gallery.description}.")


def build(ctx: DemoContext, model_picker: gr.Dropdown) -> None:
    """The tab's components and events (inside a ``gr.Blocks``)."""
    with gr.Row():
        query = gr.Textbox(label="Search text", placeholder="a red circle", scale=4, elem_id="search-query")
        count = gr.Radio([str(c) for c in RESULT_COUNTS], value="12", label="Results", scale=1,
                         elem_id="search-count")
        rerank = gr.Checkbox(False, label="Re-rank with ITM", scale=1, elem_id="search-rerank")
        button = gr.Button("Search", variant="primary", scale=1, elem_id="search-run")
    status = status_box("search-status")
    results = gr.Gallery(label="Results", columns=6, height="auto", object_fit="contain", elem_id="search-results",
                         elem_classes=["vl-pixelated"])
    handler = ui_handler(functools.partial(search, ctx), 1)
    button.click(handler, inputs=[model_picker, query, count, rerank], outputs=[results, status], api_name="search")
    query.submit(handler, inputs=[model_picker, query, count, rerank], outputs=[results, status])
