"""The run log: one JSON object per line in ``<output_dir>/log.jsonl``, always written.

Records look like ``{"step": 120, "iteration": 240, "epoch": 1, "split": "train", "loss": 1.9,
"loss_lm": 1.9, "lr": 1e-5, "samples_per_second": 210.3}`` or ``{"step": 500, "split": "eval",
"eval/coco_caption/validation/cider": 1.21, ...}``. After a resume, records past the checkpoint's
step (written by the killed run after its last checkpoint) are dropped before logging continues, so
the log reads like one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

#: file name of the run log inside output_dir.
LOG_FILENAME = "log.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Infinity
    return value


class RunLog:
    """Appends records to ``path`` (main process only when ``enabled`` is false elsewhere)."""

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

    def append(self, record: dict[str, Any]) -> None:
        """Writes ``record`` as one line and flushes it."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
            handle.flush()

    def truncate_after(self, step: int) -> None:
        """Drops records with ``step > step`` (a resumed run replays them), atomically."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [r for r in read_log(self.path) if int(r.get("step", 0)) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in kept)
        os.replace(tmp, self.path)

    def records(self) -> list[dict[str, Any]]:
        """Every record written so far."""
        return read_log(self.path) if self.path.is_file() else []


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``log.jsonl`` (a torn last line from a killed run is skipped)."""
    out = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
