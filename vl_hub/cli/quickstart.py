"""``vl-hub quickstart``: build the synthetic data, train a small BLIP (captioning + retrieval) on the CPU,
evaluate it, save both models with their cards and curves, and print a results table. No download.

    vl-hub quickstart [--output DIR] [--seed N] [--fast] [--overwrite] [--threads N] [--no-progress]

See :mod:`vl_hub.quickstart` for what each stage does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

#: exit status for errors caused by the command's input (an occupied output folder, a bad value).
USER_ERROR = 2


def default_output_dir() -> Path:
    """``$VLHUB_HOME/quickstart`` when ``VLHUB_HOME`` is set, else ``./vlhub_quickstart``
    (the folders ``vl-hub demo`` looks in)."""
    from vl_hub.quickstart import QUICKSTART_DIR

    home = os.environ.get("VLHUB_HOME")
    return Path(home).expanduser() / "quickstart" if home else QUICKSTART_DIR


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def add_parser(sub: Any) -> None:
    """Adds ``quickstart`` to the ``vl-hub`` sub-commands."""
    p = sub.add_parser(
        "quickstart",
        help="train a small BLIP (captioning + retrieval) on synthetic data on the CPU, no download (~5 min)",
        description=(
            "Build the synthetic vl_hub_shapes data, train a small BLIP (captioning, then retrieval) on the CPU, "
            "evaluate both on held-out images, save them with their model cards and curves, and print a results "
            "table. No download; about 4 minutes on 2 CPU cores (--fast: about 1 minute)."
        ),
    )
    p.add_argument(
        "--output", type=Path, default=None, metavar="DIR",
        help="output folder (default: $VLHUB_HOME/quickstart, else ./vlhub_quickstart)",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the data, the model and the batch order")
    p.add_argument("--fast", action="store_true", help="a smaller data set and model (about a minute; for tests)")
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace a previous quickstart in the output folder (its generated data is reused when the sizes and seed match)",
    )
    p.add_argument(
        "--threads", type=_positive_int, default=1,
        help="torch CPU threads (default 1: the models are tiny, and extra threads spin-wait on a busy machine)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the training progress bars")
    p.set_defaults(func=run)


def process_times() -> tuple[float | None, float]:
    """``(wall seconds since this process started or None where /proc is missing, CPU seconds of this
    process so far)`` -- so the printed total includes the interpreter start and the imports."""
    times = os.times()
    cpu = times.user + times.system
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK"), cpu
    except (OSError, ValueError, IndexError):
        return None, cpu


def run(args: argparse.Namespace) -> int:
    """Runs the quickstart and prints its table; returns the exit status (2 for a user error)."""
    from vl_hub.quickstart import run_quickstart

    output = args.output if args.output is not None else default_output_dir()
    try:
        result = run_quickstart(
            output, seed=args.seed, fast=args.fast, overwrite=args.overwrite, progress=args.progress,
            threads=args.threads,
        )
    except (FileExistsError, NotADirectoryError, ValueError) as err:
        print(f"vl-hub quickstart: error: {err}", file=sys.stderr)
        return USER_ERROR
    print()
    print(result.table())
    wall, cpu = process_times()
    print(
        f"whole command (interpreter start and imports included): "
        f"{'?' if wall is None else f'{wall:.1f}'} s wall, {cpu:.1f} s CPU"
    )
    return 0
