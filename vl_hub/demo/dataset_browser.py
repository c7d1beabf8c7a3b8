"""The dataset browser's logic: prepare any builder's splits, page through them, render each sample.

A dataset is prepared with :func:`vl_hub.load_dataset` from the folder the user names (or, for the synthetic
``vl_hub_shapes``, generated without one) and kept open while the demo runs. A page shows :data:`PAGE_SIZE` samples
in order, or in a seeded random order after "shuffle"; every sample becomes a :class:`SampleView`: its image (two
images side by side for NLVR), its video file (copied where the page can play it) and a Markdown description of its
texts (captions, question and answers, statement, hypothesis, label, dialogue) whatever the task schema.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vl_hub.demo.inputs import DemoInputError, servable_copy

logger = logging.getLogger(__name__)

__all__ = ["PAGE_SIZE", "SYNTHETIC", "BrowserView", "DatasetBrowser", "SampleView", "describe_row"]

#: samples per page
PAGE_SIZE = 8
#: the builder that needs no data folder
SYNTHETIC = "vl_hub_shapes"
_ID_COLUMNS = ("question_id", "image_id", "video_id", "dialog_id", "id")
_LIST_PREVIEW = 4


@dataclass
class SampleView:
    """One sample as the page shows it.

    Attributes:
        row: its row in the split.
        image: RGB image (NLVR: both images side by side), or ``None``.
        video: path of a playable copy of its video, or ``None``.
        text: Markdown: ``#row``, id and the sample's texts.
    """

    row: int
    image: Image.Image | None
    video: str | None
    text: str


@dataclass
class BrowserView:
    """A page: its samples, where it starts in the browsing order, the split size and a one-line summary."""

    samples: list[SampleView]
    start: int
    total: int
    summary: str


class DatasetBrowser:
    """Opens datasets and renders pages of them.

    Args:
        cache_dir: ``datasets`` cache for prepared splits (default: the ``datasets`` cache).
        synthetic_options: config options of ``vl_hub_shapes`` (sizes: ``num_train``, ``image_size``, ...).
        max_open: datasets kept open (least recently used ones are closed).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        synthetic_options: dict[str, Any] | None = None,
        max_open: int = 4,
    ) -> None:
        self.cache_dir = cache_dir
        self.synthetic_options = dict(synthetic_options or {})
        self._open: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._max_open = max_open
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ catalogue
    @staticmethod
    def builders() -> list[str]:
        """Every dataset builder name (``vl_hub.list_datasets()``)."""
        import vl_hub

        return list(vl_hub.list_datasets())

    @staticmethod
    def configs(name: str) -> list[str]:
        """The builder's config names (``["default"]`` for a builder without configs).

        Raises:
            DemoInputError: unknown builder.
        """
        import vl_hub

        try:
            configs = list(vl_hub.dataset_info(name).configs)
        except KeyError as err:
            raise DemoInputError(str(err).strip("'\"")) from None
        return configs or ["default"]

    # ------------------------------------------------------------------ loading
    def load(self, name: str, config: str | None = None, data_dir: str | None = None) -> Any:
        """The ``datasets.DatasetDict`` of builder ``name`` / ``config`` prepared from ``data_dir``.

        Raises:
            DemoInputError: no builder chosen, unknown builder/config, or a data folder that does not exist.
            vl_hub.data.builder_utils.MissingDataError: files missing (the message has the download instructions).
        """
        import vl_hub

        name = (name or "").strip()
        if not name:
            raise DemoInputError("Pick a dataset builder first.")
        folder = (data_dir or "").strip()
        if folder and not Path(folder).expanduser().is_dir():
            raise DemoInputError(
                f"The data folder {folder!r} does not exist. Give the folder where the {name} files were unpacked"
                + (" (or leave it empty: the synthetic data needs none)." if name == SYNTHETIC else ".")
            )
        config_name = None if not config or config == "default" else config
        key = (name, config_name or "", folder)
        with self._lock:
            if key in self._open:
                self._open.move_to_end(key)
                return self._open[key]
        options = dict(self.synthetic_options) if name == SYNTHETIC else {}
        try:
            dataset = vl_hub.load_dataset(
                name,
                data_dir=str(Path(folder).expanduser()) if folder else None,
                cache_dir=self.cache_dir,
                config_name=config_name,
                **options,
            )
        except KeyError as err:
            raise DemoInputError(str(err).strip("'\"")) from None
        except ValueError as err:
            if "config" in str(err).lower() or "option" in str(err).lower():
                raise DemoInputError(str(err)) from None
            raise
        with self._lock:
            self._open[key] = dataset
            while len(self._open) > self._max_open:
                self._open.popitem(last=False)
        return dataset

    @staticmethod
    def split(dataset: Any, split: str | None) -> Any:
        """Split ``split`` of a ``DatasetDict`` (its first one when ``split`` is empty).

        Raises:
            DemoInputError: the split does not exist (the message lists the splits).
        """
        names = list(dataset)
        if not split:
            if not names:
                raise DemoInputError("The dataset has no split.")
            split = names[0]
        if split not in dataset:
            raise DemoInputError(f"The dataset has no split {split!r}; its splits are: {', '.join(names)}.")
        return dataset[split]

    # ------------------------------------------------------------------ pages
    @staticmethod
    def order(total: int, seed: int | None) -> np.ndarray:
        """The browsing order: rows ``0..total-1``, or a permutation of them drawn from ``seed``."""
        if seed is None:
            return np.arange(total)
        return np.random.default_rng(seed).permutation(total)

    def page(
        self, split: Any, start: int, seed: int | None = None, page_size: int = PAGE_SIZE, title: str = ""
    ) -> BrowserView:
        """The samples at positions ``start .. start + page_size - 1`` of the browsing order (``start`` is clamped
        to the split)."""
        total = len(split)
        if total == 0:
            return BrowserView([], 0, 0, f"{title} is empty.")
        start = int(min(max(0, start), max(0, total - 1)))
        rows = self.order(total, seed)[start : start + page_size].tolist()
        subset = split.select(rows)
        features = split.features
        samples = [self._view(row, subset[i], features) for i, row in enumerate(rows)]
        last = start + len(rows)
        order = "shuffled" if seed is not None else "in order"
        summary = f"{title} — samples {start + 1}–{last} of {total} ({order})"
        return BrowserView(samples, start, total, summary)

    def _view(self, row: int, values: dict[str, Any], features: Any) -> SampleView:
        images = [values[k] for k, f in features.items() if _is_image_feature(f) and values.get(k) is not None]
        image = _for_display(_side_by_side(images)) if images else None
        video = None
        note = ""
        path = values.get("video")
        if isinstance(path, str) and path:
            if Path(path).is_file():
                video = servable_copy(path)
            else:
                note = f"\n\n_video file missing: {path}_"
        return SampleView(row, image, video, describe_row(row, values, features) + note)


def _is_image_feature(feature: Any) -> bool:
    import datasets

    return isinstance(feature, datasets.Image)


def _side_by_side(images: Sequence[Image.Image], gap: int = 4) -> Image.Image:
    images = [im.convert("RGB") for im in images]
    if len(images) == 1:
        return images[0]
    height = max(im.height for im in images)
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    x = 0
    for im in images:
        canvas.paste(im, (x, 0))
        x += im.width + gap
    return canvas


def _for_display(image: Image.Image, min_side: int = 160) -> Image.Image:
    """Small images (the synthetic 64 px ones) enlarged by a whole factor, nearest neighbour, so the grid shows them
    crisp instead of as a speck."""
    factor = min_side // max(1, min(image.size))
    if factor < 2:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def _label_name(feature: Any, value: Any) -> str:
    import datasets

    if isinstance(feature, datasets.ClassLabel) and isinstance(value, int):
        return "(no label)" if value < 0 else feature.int2str(value)
    return str(value)


def _clip(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_row(row: int, values: dict[str, Any], features: Any) -> str:
    """Markdown of one sample's non-media fields, for any task schema: ``#row`` and its id, then captions as a list,
    answers counted (``red ×10``), labels by name, dialogue history as Q/A lines; long lists shortened."""
    ident = next((str(values[k]) for k in _ID_COLUMNS if values.get(k) not in (None, "")), "")
    lines = [f"**#{row}**" + (f" · `{ident}`" if ident else "")]
    for key, feature in features.items():
        value = values.get(key)
        if key in _ID_COLUMNS or _is_image_feature(feature) or key == "video" or value is None:
            continue
        line = _describe_field(key, feature, value)
        if line:
            lines.append(line)
    return "\n\n".join(lines)


def _describe_field(key: str, feature: Any, value: Any) -> str:
    label = key.replace("_", " ")
    if isinstance(value, str):
        return f"**{label}:** {_clip(value)}" if value else ""
    if isinstance(value, (bool, int, float)):
        if key in ("correct_choice", "gt_index") and value == -1:
            return ""
        return f"**{label}:** {_label_name(feature, value)}"
    if isinstance(value, (list, tuple)):
        if not value:
            return ""
        if all(isinstance(v, dict) for v in value):  # dialogue history
            turns = [f"Q: {_clip(v.get('question', ''), 80)} A: {_clip(v.get('answer', ''), 40)}" for v in value]
            return f"**{label}** ({len(value)}):\n" + "\n".join(f"- {t}" for t in turns[-_LIST_PREVIEW:])
        if not all(isinstance(v, str) for v in value):
            return "" if key == "relevance" else f"**{label}:** {len(value)} values"
        if key == "answers":
            counts = Counter(value)
            return f"**{label}:** " + ", ".join(f"{a} ×{n}" if n > 1 else a for a, n in counts.most_common())
        shown = [f"- {_clip(v, 120)}" for v in value[:_LIST_PREVIEW]]
        more = f"\n- … {len(value) - _LIST_PREVIEW} more" if len(value) > _LIST_PREVIEW else ""
        return f"**{label}:**\n" + "\n".join(shown) + more
    return ""
