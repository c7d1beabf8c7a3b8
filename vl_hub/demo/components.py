"""Gradio components shared by the tabs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from vl_hub.demo.inputs import UnreadableUpload

__all__ = ["image_input", "safe_image_preprocess", "status_box"]


def safe_image_preprocess(component: gr.Image, payload: Any) -> Any:
    """``gr.Image.preprocess`` that hands an unreadable upload to the handler as an :class:`UnreadableUpload` (then
    the page says what is wrong) instead of failing inside Gradio before the handler runs, which only shows a bare
    "Error"."""
    try:
        return gr.Image.preprocess(component, payload)
    except Exception as err:  # PIL raises several types for broken files; all mean "not an image"
        path = str(getattr(payload, "path", None) or "")
        name = str(getattr(payload, "orig_name", None) or Path(path).name or "upload")
        # the message names the server's temporary copy: show the user's file name instead
        reason = str(err).replace(path, name) if path else str(err)
        return UnreadableUpload(name, f"{type(err).__name__}: {reason}")


def image_input(elem_id: str, label: str = "Image") -> gr.Image:
    """The image input of a tab: upload or paste, handed to the handler as a file path (or an
    :class:`UnreadableUpload`).

    The safe preprocessing is set on the instance rather than in a ``gr.Image`` subclass: Gradio writes a ``.pyi``
    stub beside the module of every component subclass.
    """
    component = gr.Image(type="filepath", sources=["upload", "clipboard"], height=300, label=label, elem_id=elem_id)
    component.preprocess = lambda payload: safe_image_preprocess(component, payload)  # type: ignore[method-assign]
    return component


def status_box(elem_id: str) -> gr.Markdown:
    """The Markdown line under a tab's button where results are summarised and errors explained."""
    return gr.Markdown("", elem_id=elem_id, elem_classes=["vl-status"], line_breaks=True)
