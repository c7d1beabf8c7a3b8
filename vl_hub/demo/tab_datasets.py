"""Dataset browser tab: pick a builder, config, data folder and split; page through a grid of samples.

The page keeps which dataset is open and where it is in a small ``gr.State`` dict (``builder``, ``config``,
``data_dir``, ``split``, ``seed`` -- ``None`` in order --, ``start``); the datasets themselves stay in the server's
:class:`~vl_hub.demo.dataset_browser.DatasetBrowser`.
"""

from __future__ import annotations

import functools
import random
from typing import Any

import gradio as gr

from vl_hub.demo.components import status_box
from vl_hub.demo.context import DemoContext
from vl_hub.demo.dataset_browser import PAGE_SIZE, SYNTHETIC, BrowserView
from vl_hub.demo.inputs import DemoInputError, status_ok, ui_handler

__all__ = ["SLOT_OUTPUTS", "build", "change_builder", "goto", "move", "open_dataset", "render", "shuffle"]

#: outputs per grid slot: its frame, image, video, text
SLOT_OUTPUTS = 4
_COLUMNS = 4


def _slot_updates(view: BrowserView) -> list[Any]:
    updates: list[Any] = []
    for i in range(PAGE_SIZE):
        sample = view.samples[i] if i < len(view.samples) else None
        image = sample.image if sample is not None else None
        video = sample.video if sample is not None else None
        updates.append(gr.update(visible=sample is not None))
        updates.append(gr.update(value=image, visible=image is not None))
        updates.append(gr.update(value=video, visible=video is not None))
        updates.append(gr.update(value=sample.text if sample is not None else "", visible=sample is not None))
    return updates


def render(ctx: DemoContext, state: dict[str, Any]) -> tuple[BrowserView, dict[str, Any]]:
    """The page ``state`` points at, and ``state`` with ``start`` clamped to the split.

    Raises:
        DemoInputError: no dataset opened yet (or the ones below from :meth:`DatasetBrowser.load`).
    """
    if not state or not state.get("builder"):
        raise DemoInputError("Open a dataset first: pick a builder and press 'Open'.")
    dataset = ctx.browser.load(state["builder"], state.get("config"), state.get("data_dir"))
    split = ctx.browser.split(dataset, state.get("split"))
    title = f"{state['builder']} / {state.get('config') or 'default'} / {state.get('split')}"
    view = ctx.browser.page(split, int(state.get("start", 0)), state.get("seed"), PAGE_SIZE, title)
    return view, dict(state, start=view.start)


def _outputs(ctx: DemoContext, state: dict[str, Any], message: str = "") -> tuple[Any, ...]:
    view, state = render(ctx, state)
    return (state, view.summary, *_slot_updates(view), status_ok(message))


def change_builder(ctx: DemoContext, builder: str) -> tuple[Any, Any, str]:
    """The config picker (and data-folder hint) for ``builder``: ``(config update, folder update, status)``."""
    configs = ctx.browser.configs(builder)
    value = "image_text" if builder == SYNTHETIC and "image_text" in configs else configs[0]
    hint = "not needed: generated on the fly" if builder == SYNTHETIC else f"folder holding the {builder} files"
    return gr.update(choices=configs, value=value), gr.update(placeholder=hint), ""


def open_dataset(
    ctx: DemoContext, builder: str, config: str | None, data_dir: str | None, split: str | None
) -> tuple[Any, ...]:
    """Prepares / opens the dataset and shows the first page of ``split`` (its first split when absent):
    ``(split picker update, state, summary, slot updates..., status)``."""
    dataset = ctx.browser.load(builder, config, data_dir)
    splits = list(dataset)
    chosen = split if split in splits else (splits[0] if splits else None)
    state = {"builder": builder, "config": config, "data_dir": (data_dir or "").strip(), "split": chosen,
             "seed": None, "start": 0}
    sizes = ", ".join(f"{s}: {len(dataset[s])}" for s in splits)
    return (gr.update(choices=splits, value=chosen), *_outputs(ctx, state, f"Opened {builder} ({sizes})."))


def change_split(ctx: DemoContext, state: dict[str, Any], split: str) -> tuple[Any, ...]:
    """The first page of another split of the open dataset."""
    return _outputs(ctx, dict(state or {}, split=split, start=0, seed=None))


def move(ctx: DemoContext, state: dict[str, Any], pages: int) -> tuple[Any, ...]:
    """The page ``pages`` pages away (negative: back); stays on the first / last page at the ends."""
    if not state or not state.get("builder"):
        raise DemoInputError("Open a dataset first: pick a builder and press 'Open'.")
    view, state = render(ctx, state)
    start = state["start"] + pages * PAGE_SIZE
    message = ""
    if start < 0:
        start, message = 0, "Already at the first page."
    elif start >= view.total:
        start, message = state["start"], "Already at the last page."
    return _outputs(ctx, dict(state, start=start), message)


def shuffle(ctx: DemoContext, state: dict[str, Any], seed: int | None = None) -> tuple[Any, ...]:
    """The first page of a new random order (``seed`` drawn when not given)."""
    if not state or not state.get("builder"):
        raise DemoInputError("Open a dataset first: pick a builder and press 'Open'.")
    seed = random.randrange(2**31) if seed is None else int(seed)
    return _outputs(ctx, dict(state, seed=seed, start=0), f"Shuffled (seed {seed}).")


def goto(ctx: DemoContext, state: dict[str, Any], index: Any) -> tuple[Any, ...]:
    """The page starting at row ``index`` of the split, in order.

    Raises:
        DemoInputError: ``index`` is not a row of the split.
    """
    if not state or not state.get("builder"):
        raise DemoInputError("Open a dataset first: pick a builder and press 'Open'.")
    view, state = render(ctx, state)
    try:
        row = int(index)
    except (TypeError, ValueError):
        raise DemoInputError(f"The index must be a whole number; got {index!r}.") from None
    if not 0 <= row < view.total:
        raise DemoInputError(f"Index {row} is outside the split: it has rows 0 to {view.total - 1}.")
    return _outputs(ctx, dict(state, seed=None, start=row))


def build(ctx: DemoContext) -> None:
    """The tab's components and events (inside a ``gr.Blocks``)."""
    builders = ctx.browser.builders()
    first = SYNTHETIC if SYNTHETIC in builders else (builders[0] if builders else None)
    try:
        configs = ctx.browser.configs(first) if first else []
    except Exception:  # a broken builder must not stop the page from being built
        configs = []
    with gr.Row():
        builder = gr.Dropdown(builders, value=first, label="Dataset builder", elem_id="ds-builder", scale=2)
        config = gr.Dropdown(configs, value="image_text" if "image_text" in configs else (configs or [None])[0],
                             label="Config", elem_id="ds-config", scale=2)
        data_dir = gr.Textbox(label="Data folder", placeholder="not needed: generated on the fly", scale=3,
                              elem_id="ds-data-dir")
        split = gr.Dropdown(["train", "validation", "test"], value="train", label="Split", elem_id="ds-split",
                            allow_custom_value=True, scale=1)
        open_button = gr.Button("Open", variant="primary", elem_id="ds-open", scale=1)
    with gr.Row():
        prev_button = gr.Button("◀ Previous", elem_id="ds-prev", size="sm")
        next_button = gr.Button("Next ▶", elem_id="ds-next", size="sm")
        shuffle_button = gr.Button("Shuffle", elem_id="ds-shuffle", size="sm")
        index = gr.Number(label="Row index", value=0, precision=0, minimum=0, elem_id="ds-index", scale=1)
        goto_button = gr.Button("Go to row", elem_id="ds-goto", size="sm")
    summary = gr.Markdown("No dataset open yet: press **Open** (the synthetic `vl_hub_shapes` needs no download).",
                          elem_id="ds-summary")
    status = status_box("ds-status")
    state = gr.State({})
    slots: list[Any] = []
    for row in range(PAGE_SIZE // _COLUMNS):
        with gr.Row(equal_height=True):
            for col in range(_COLUMNS):
                n = row * _COLUMNS + col
                with gr.Column(min_width=180, elem_classes=["vl-slot"], visible=False) as frame:
                    slots.append(frame)
                    slots.append(gr.Image(visible=False, show_label=False, interactive=False, height=180,
                                          elem_id=f"ds-image-{n}", elem_classes=["vl-pixelated"], buttons=[]))
                    slots.append(gr.Video(visible=False, show_label=False, interactive=False, height=180,
                                          elem_id=f"ds-video-{n}", loop=True))
                    slots.append(gr.Markdown("", visible=False, elem_id=f"ds-text-{n}", elem_classes=["vl-sample"]))

    page_outputs = [state, summary, *slots, status]
    count = len(page_outputs) - 1

    def wired(fn: Any, outputs: int = count) -> Any:
        # the grid keeps its page when a request fails: the message explains, nothing is lost
        return ui_handler(fn, outputs, keep_outputs=True)

    builder.change(wired(functools.partial(change_builder, ctx), 2), inputs=[builder],
                   outputs=[config, data_dir, status])
    open_button.click(wired(functools.partial(open_dataset, ctx), count + 1), inputs=[builder, config, data_dir, split],
                      outputs=[split, *page_outputs], api_name="open_dataset")
    split.input(wired(functools.partial(change_split, ctx)), inputs=[state, split], outputs=page_outputs)
    prev_button.click(wired(functools.partial(move, ctx, pages=-1)), inputs=[state], outputs=page_outputs)
    next_button.click(wired(functools.partial(move, ctx, pages=1)), inputs=[state], outputs=page_outputs)
    shuffle_button.click(wired(functools.partial(shuffle, ctx)), inputs=[state], outputs=page_outputs)
    goto_button.click(wired(functools.partial(goto, ctx)), inputs=[state, index], outputs=page_outputs)
