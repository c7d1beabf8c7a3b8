"""Zero-shot classification tab: class names typed in the page, scored by cosine similarity (CLIP, BLIP, ALBEF) or by
the ITM head (BLIP, ALBEF), shown as a bar chart.

Cosine: ``softmax(scale * cos(image, prompt(class)))`` over the classes (``scale`` = CLIP's ``exp(logit_scale)`` or
``1 / temp`` of the ITC head). ITM: each class's own ``P(match)`` for ``prompt(class)`` (they need not sum to one).
"""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr
import pandas as pd
import torch

from vl_hub.demo import heads
from vl_hub.demo.components import image_input, status_box
from vl_hub.demo.context import DemoContext
from vl_hub.demo.inputs import DemoInputError, class_list, read_image, status_ok, ui_handler

__all__ = ["SCORES", "build", "classify"]

#: page label -> what it computes
SCORES = {
    "Cosine similarity (softmax over classes)": "cosine",
    "ITM match probability (per class)": "itm",
}
DEFAULT_CLASSES = "circle, square, triangle, diamond"
DEFAULT_TEMPLATE = "a picture of a {}"


def classify(
    ctx: DemoContext, model_name: str | None, image: Any, classes: Any, template: Any, score: str
) -> tuple[pd.DataFrame, dict[str, float], str]:
    """Scores of every class for ``image``: ``(bar-chart table (class, score), label dict, status)``.

    Args:
        classes: comma-separated class names (at least two).
        template: prompt with one ``{}`` for the class name.
        score: a key (or value) of :data:`SCORES`.

    Raises:
        DemoInputError: no / unreadable image, fewer than two classes, a template without ``{}``, ITM asked of a
            model without an ITM head.
    """
    kind = SCORES.get(score, score)
    if kind not in SCORES.values():
        raise DemoInputError(f"Unknown score {score!r}; choose one of {', '.join(SCORES)}.")
    bundle = ctx.bundle(model_name)
    head = bundle.head_for("itm" if kind == "itm" else "features")
    picture = read_image(image)
    names = class_list(classes)
    pattern = str(template or "").strip() or "{}"
    if pattern.count("{}") != 1:
        raise DemoInputError(
            f"The prompt template must contain '{{}}' once (where the class name goes); got {pattern!r}."
        )
    prompts = [pattern.format(name) for name in names]
    if kind == "cosine":
        image_feat = heads.image_features(head, [picture])[0]
        text_feat = heads.text_features(head, prompts)
        cosine = text_feat @ image_feat
        values = (heads.similarity_scale(head) * cosine).softmax(dim=0)
        axis = "probability"
    else:
        embeds = heads.encode_image_tokens(head, [picture])
        values = heads.itm_probabilities(head, embeds.expand(len(prompts), -1, -1), prompts)
        axis = "P(match)"
    scores = [float(v) for v in values.tolist()]
    table = pd.DataFrame({"class": names, axis: scores})
    best = int(torch.tensor(scores).argmax())
    status = status_ok(
        f"Best: {names[best]} ({axis} {scores[best]:.3f}) — {len(names)} classes, prompt {pattern!r}, "
        f"{type(head.model).__name__}."
    )
    return table, dict(zip(names, scores)), status


def build(ctx: DemoContext, model_picker: gr.Dropdown) -> None:
    """The tab's components and events (inside a ``gr.Blocks``)."""
    with gr.Row():
        with gr.Column():
            image = image_input(elem_id="zs-image")
            classes = gr.Textbox(DEFAULT_CLASSES, label="Class names (comma-separated)", elem_id="zs-classes")
            template = gr.Textbox(DEFAULT_TEMPLATE, label="Prompt template ({} = class name)", elem_id="zs-template")
            score = gr.Radio(list(SCORES), value=next(iter(SCORES)), label="Score", elem_id="zs-score")
            button = gr.Button("Classify", variant="primary", elem_id="zs-run")
        with gr.Column():
            chart = gr.BarPlot(x="class", y="probability", title="Class scores", height=300, elem_id="zs-chart",
                               y_lim=[0, 1])
            top = gr.Label(label="Top classes", num_top_classes=3, elem_id="zs-label")
            status = status_box("zs-status")
    if ctx.examples:
        gr.Examples(ctx.examples, inputs=[image], label="Example images")

    def handler(*args: Any) -> tuple[Any, ...]:
        table, label, message = ui_handler(functools.partial(classify, ctx), 2)(*args)
        if isinstance(table, pd.DataFrame):  # the y column is named after the score
            table = gr.BarPlot(value=table, x="class", y=table.columns[1], y_title=table.columns[1],
                               sort=list(table["class"]))
        return table, label, message

    button.click(handler, inputs=[model_picker, image, classes, template, score], outputs=[chart, top, status],
                 api_name="zero_shot")
