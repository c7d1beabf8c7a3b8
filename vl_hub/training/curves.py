"""Loss and metric curves of a run as a PNG, drawn with PIL (no plotting dependency).

One panel for the training losses (``loss`` and every named part), one for the learning rate, and
one per evaluation metric, each against the optimizer step, laid out two panels per row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

#: file name of the curves inside output_dir.
CURVES_FILENAME = "training_curves.png"
_PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
]
_NOT_CURVES = {"step", "iteration", "epoch", "split", "time", "samples_per_second", "lr", "best_step"}
_PANEL = (460, 270)
_MARGIN = (62, 34, 16, 40)  # left, top, right, bottom
_MAX_METRIC_PANELS = 8


def _series(records: Sequence[dict[str, Any]], split: str, keys: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in keys}
    for r in records:
        if r.get("split") != split:
            continue
        for k in keys:
            v = r.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out[k].append((float(r.get("step", 0)), float(v)))
    return {k: v for k, v in out.items() if v}


def _keys(records: Sequence[dict[str, Any]], split: str) -> list[str]:
    keys: list[str] = []
    for r in records:
        if r.get("split") == split:
            for k, v in r.items():
                if k not in _NOT_CURVES and k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool):
                    keys.append(k)
    return keys


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    title: str,
    series: dict[str, list[tuple[float, float]]],
    font: Any,
) -> None:
    ox, oy = origin
    w, h = _PANEL
    left, top, right, bottom = _MARGIN
    x0, y0, x1, y1 = ox + left, oy + top, ox + w - right, oy + h - bottom
    draw.text((ox + left, oy + 8), title, fill=(0, 0, 0), font=font)
    draw.rectangle((x0, y0, x1, y1), outline=(120, 120, 120))
    points = [p for values in series.values() for p in values]
    if not points:
        draw.text((x0 + 10, y0 + 10), "no data", fill=(120, 120, 120), font=font)
        return
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    xmin, xmax = min(xs), max(xs)
    ymin, ymax = min(ys), max(ys)
    if xmax == xmin:
        xmin, xmax = xmin - 1, xmax + 1
    if ymax == ymin:
        pad = abs(ymin) * 0.05 or 1.0
        ymin, ymax = ymin - pad, ymax + pad

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (x0 + (x - xmin) / (xmax - xmin) * (x1 - x0), y1 - (y - ymin) / (ymax - ymin) * (y1 - y0))

    for frac in (0.25, 0.5, 0.75):  # light grid
        gy = y0 + frac * (y1 - y0)
        draw.line((x0, gy, x1, gy), fill=(230, 230, 230))
    draw.text((ox + 4, y0 - 6), _fmt(ymax), fill=(60, 60, 60), font=font)
    draw.text((ox + 4, y1 - 6), _fmt(ymin), fill=(60, 60, 60), font=font)
    draw.text((x0, y1 + 4), _fmt(xmin), fill=(60, 60, 60), font=font)
    label = f"{_fmt(xmax)} (step)"
    draw.text((x1 - 6 * len(label), y1 + 4), label, fill=(60, 60, 60), font=font)
    for i, (name, values) in enumerate(series.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        pixels = [to_px(x, y) for x, y in sorted(values)]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for px, py in pixels if len(pixels) <= 40 else pixels[-1:]:
            draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)
        draw.text((x0 + 6, y0 + 4 + 12 * i), name, fill=colour, font=font)


def plot_curves(records: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Draws the curves of ``records`` (run-log entries) into the PNG ``path``; returns it."""
    font = ImageFont.load_default()
    panels: list[tuple[str, dict[str, list[tuple[float, float]]]]] = []
    train_keys = _keys(records, "train")
    panels.append(("training loss", _series(records, "train", train_keys)))
    lr = _series(records, "train", ["lr"])
    if lr:
        panels.append(("learning rate", lr))
    eval_keys = _keys(records, "eval")[:_MAX_METRIC_PANELS]
    for key in eval_keys:
        panels.append((key, _series(records, "eval", [key])))
    columns = 2
    rows = -(-len(panels) // columns)
    header = 28 if title else 0
    image = Image.new("RGB", (columns * _PANEL[0], rows * _PANEL[1] + header), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((10, 8), title, fill=(0, 0, 0), font=font)
    for i, (name, series) in enumerate(panels):
        _draw_panel(draw, ((i % columns) * _PANEL[0], header + (i // columns) * _PANEL[1]), name, series, font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
