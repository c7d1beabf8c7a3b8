"""``vl-hub datasets``: list, describe, prepare and export the datasets of ``dataset_scripts/``.

    vl-hub datasets list
    vl-hub datasets info NAME
    vl-hub datasets prepare NAME --data-dir D [--config C] [--split S] [--skip-invalid] [--set key=value ...]
    vl-hub datasets export NAME --data-dir D --output OUT [--config C] [--overwrite]

``NAME`` may be ``custom`` (then ``--task``) for a folder of your own files. A user error (missing
file, unknown name, bad option) prints one message and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

#: exit status for errors caused by the command's input.
USER_ERROR = 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``datasets`` and its sub-commands to the ``vl-hub`` sub-parsers ``sub``."""
    parser = sub.add_parser("datasets", help="list, describe, prepare and export datasets")
    parser.set_defaults(func=run)
    actions = parser.add_subparsers(dest="datasets_command", required=True)

    p = actions.add_parser("list", help="every dataset with the task schema(s) it provides")
    p.set_defaults(datasets_func=_cmd_list)

    p = actions.add_parser("info", help="configs, tasks, card metadata and download instructions of a dataset")
    p.add_argument("name")
    p.set_defaults(datasets_func=_cmd_info)

    for action, help_text in (
        ("prepare", "prepare (and cache) a dataset from its official files"),
        ("export", "write a hub-ready, script-free folder: parquet + card (+ videos)"),
    ):
        p = actions.add_parser(action, help=help_text)
        p.add_argument("name", help="dataset name (see `vl-hub datasets list`), or `custom`")
        p.add_argument("--data-dir", help="folder holding the dataset's official files (unchanged)")
        p.add_argument("--config", dest="config_name", help="builder config (see `vl-hub datasets info NAME`)")
        p.add_argument("--task", help="task schema for `custom` folders (image_text, vqa, classification, ...)")
        p.add_argument("--cache-dir", help="where prepared Arrow files go (datasets' cache by default)")
        p.add_argument("--skip-invalid", action="store_true", help="skip (and count) invalid examples instead of failing")
        p.add_argument(
            "--set",
            dest="options",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config option, e.g. --set num_train=64 (repeatable; values parsed as YAML)",
        )
        if action == "prepare":
            p.add_argument("--split", help="prepare and report only this split")
            p.set_defaults(datasets_func=_cmd_prepare)
        else:
            p.add_argument("--output", required=True, help="the folder to write")
            p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
            p.set_defaults(datasets_func=_cmd_export)


def run(args: argparse.Namespace) -> int:
    """Runs a ``datasets`` sub-command; user errors become one line on stderr and exit status 2."""
    from vl_hub.data.builder_utils import InvalidExampleError

    try:
        return int(args.datasets_func(args) or 0)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, KeyError, ValueError, InvalidExampleError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"vl-hub datasets {args.datasets_command}: error: {message}", file=sys.stderr)
        return USER_ERROR


def datasets_line() -> str:
    """``"coco_caption (image_text), vl_hub_shapes (image_text, vqa, ...)"`` for ``vl-hub list``."""
    from vl_hub.data.load import list_dataset_tasks

    return ", ".join(f"{name} ({', '.join(tasks)})" for name, tasks in list_dataset_tasks().items())


def _cmd_list(args: argparse.Namespace) -> int:
    from vl_hub.data.load import list_dataset_tasks

    rows = list_dataset_tasks()
    width = max((len(n) for n in rows), default=0)
    for name, tasks in rows.items():
        print(f"{name:<{width}}  {', '.join(tasks)}")
    print(f"{'custom':<{width}}  any task: your own folder with metadata.jsonl (see `vl-hub datasets info custom`)")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from vl_hub.data.load import dataset_info

    info = dataset_info(args.name)
    print(f"name:     {info.name}")
    print(f"tasks:    {', '.join(info.tasks)}")
    print("configs:  " + ", ".join(f"{c} ({t})" if c != t else c for c, t in info.configs.items()))
    for label, value in (("homepage", info.homepage), ("license", info.license), ("builder", info.path)):
        if value:
            print(f"{label + ':':<9} {value}")
    if info.description:
        print(f"\n{info.description}")
    if info.manual_download_instructions:
        print(f"\nHow to get the files:\n{info.manual_download_instructions}")
    if info.citation:
        print(f"\nCitation:\n{info.citation}")
    return 0


def _config_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for item in args.options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        kwargs[key.strip()] = yaml.safe_load(value)
    if args.task is not None:
        if args.name != "custom":
            raise ValueError(f"--task is for `custom` folders; {args.name} has configs instead (--config)")
        kwargs["task"] = args.task
    if args.skip_invalid:
        kwargs["skip_invalid"] = True
    return kwargs


def _load(args: argparse.Namespace, split: str | None = None) -> Any:
    from vl_hub.data.load import load_dataset

    return load_dataset(
        args.name,
        data_dir=args.data_dir,
        split=split,
        cache_dir=args.cache_dir,
        config_name=args.config_name,
        **_config_kwargs(args),
    )


def _cmd_prepare(args: argparse.Namespace) -> int:
    import datasets

    from vl_hub.data.load import skipped_counts

    ds = _load(args, split=args.split)
    splits = ds if isinstance(ds, datasets.DatasetDict) else {args.split: ds}
    skipped = skipped_counts(ds)
    for split, part in splits.items():
        extra = f", {skipped[split]} skipped as invalid" if skipped.get(split) else ""
        print(f"{split}: {part.num_rows} rows{extra}")
    first = next(iter(splits.values()))
    if first.cache_files:
        print(f"cached in {Path(first.cache_files[0]['filename']).parent}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from vl_hub.data.export import export_dataset
    from vl_hub.data.load import CUSTOM_NAME, dataset_scripts_dir

    ds = _load(args)
    card = dataset_scripts_dir() / args.name / "README.md" if args.name != CUSTOM_NAME else None
    out = export_dataset(ds, args.output, card_path=card if card is not None and card.is_file() else None, overwrite=args.overwrite)
    print(f"wrote {out} ({', '.join(f'{s}: {d.num_rows} rows' for s, d in ds.items())}); "
          f"load it with datasets.load_dataset({str(out)!r})")
    return 0
