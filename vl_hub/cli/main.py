"""The ``vl-hub`` command line. Each sub-command lives in its own module and adds itself here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import vl_hub


def _cmd_list(args: argparse.Namespace) -> int:
    from vl_hub._registration import list_families
    from vl_hub.data.load import list_datasets

    print("families:", ", ".join(list_families()) or "(none yet)")
    from vl_hub.tasks import list_tasks

    print("tasks:", ", ".join(list_tasks()) or "(none yet)")
    from vl_hub.cli.datasets import datasets_line

    print("datasets:", datasets_line() if list_datasets() else "(none yet)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vl-hub`` with every sub-command."""
    parser = argparse.ArgumentParser(prog="vl-hub", description=vl_hub.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vl-hub {vl_hub.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list the registered model families, tasks and datasets")
    p.set_defaults(func=_cmd_list)
    from vl_hub.cli import datasets as datasets_cli

    datasets_cli.add_parser(sub)
    from vl_hub.cli import train as train_cli

    train_cli.add_parsers(sub)
    from vl_hub.cli import convert as convert_cli

    convert_cli.add_parser(sub)
    from vl_hub.cli import quickstart as quickstart_cli

    quickstart_cli.add_parser(sub)
    from vl_hub.cli import demo as demo_cli

    demo_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vl-hub`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
