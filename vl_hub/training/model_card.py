"""The model card (``README.md``) written next to a trained model.

YAML header (Hub metadata): ``library_name: vl_hub``, ``tags``, ``datasets``, ``metrics``, ``base_model``
(when training started from a Hub checkpoint) and a ``model-index`` with every final metric. Body:
family, head, task, datasets (split, ratio), recipe, the main hyperparameters, a results table, the
training curves PNG, and how to load the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from vl_hub.training.arguments import DatasetArguments, TrainingArguments

#: file name of the card.
CARD_FILENAME = "README.md"


def _dataset_id(spec: DatasetArguments) -> str:
    return Path(spec.name).stem if spec.name.endswith(".py") else spec.name


def _split_metric_key(key: str) -> tuple[str, str, str]:
    """``"test/coco_caption/test/cider"`` -> ``("test", "coco_caption/test", "cider")``."""
    stage, _, rest = key.partition("/")
    dataset, _, metric = rest.rpartition("/")
    return stage, dataset, metric


def card_metadata(args: TrainingArguments, family: str, task_name: str, metrics: Mapping[str, float]) -> dict[str, Any]:
    """The YAML header of the card as a dict."""
    specs = [*args.datasets, *args.eval_datasets, *args.test_datasets]
    dataset_ids = list(dict.fromkeys(_dataset_id(s) for s in specs))
    metric_names = list(dict.fromkeys(_split_metric_key(k)[2] for k in metrics))
    meta: dict[str, Any] = {
        "library_name": "vl_hub",
        "tags": list(dict.fromkeys(["vl_hub", "vision-language", family, task_name])),
        "datasets": dataset_ids,
        "metrics": metric_names,
    }
    base = args.model.name_or_path
    if base and not Path(base).exists() and base.count("/") == 1:
        meta["base_model"] = base
    results = []
    by_dataset: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for key, value in metrics.items():
        stage, dataset, metric = _split_metric_key(key)
        by_dataset.setdefault((stage, dataset), []).append({"type": metric, "name": metric, "value": float(value)})
    labels = {s.display_name: s for s in specs}
    for (stage, dataset), values in by_dataset.items():
        spec = labels.get(dataset)
        if spec is not None:
            name, split = _dataset_id(spec), spec.split
        else:
            name, _, split = dataset.partition("/")
        results.append(
            {
                "task": {"type": task_name, "name": task_name},
                "dataset": {"type": name, "name": name, "split": split or stage},
                "metrics": values,
            }
        )
    if results:
        meta["model-index"] = [{"name": args.run_name or Path(args.output_dir).name, "results": results}]
    return meta


def _dataset_rows(title: str, specs: Sequence[DatasetArguments]) -> list[str]:
    if not specs:
        return []
    rows = [f"**{title}**", "", "| dataset | split | config | ratio | rows used |", "|---|---|---|---|---|"]
    for s in specs:
        rows.append(
            f"| {_dataset_id(s)} | {s.split} | {s.config or '-'} | {s.ratio if s.ratio is not None else '-'} | "
            f"{s.max_samples if s.max_samples is not None else 'all'} |"
        )
    return [*rows, ""]


def render_model_card(
    args: TrainingArguments,
    family: str,
    head_class: str,
    task_name: str,
    metrics: Mapping[str, float],
    curves_file: str | None = None,
    has_processor: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The card's text (YAML header + Markdown body).

    Args:
        args: the run arguments; family / head_class / task_name: what was trained.
        metrics: final metrics, keys ``"<stage>/<dataset label>/<metric>"``.
        curves_file: PNG file name (relative to the card) to embed.
        has_processor: whether a processor was saved next to the model.
        extra: more facts for the training table (steps, epochs, best step, ...).
    """
    meta = card_metadata(args, family, task_name, metrics)
    name = args.run_name or Path(args.output_dir).name
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", "", f"# {name}", ""]
    lines.append(
        f"A **{family}** model (`{head_class}`) trained for **{task_name}** with vl_hub (`vl-hub train`, Accelerate)."
    )
    if args.description:
        lines += ["", args.description.strip()]
    lines += ["", "## Training", ""]
    lines += [
        "| | |",
        "|---|---|",
        f"| family | {family} |",
        f"| head | `{head_class}` |",
        f"| task | {task_name} |",
        f"| recipe | `{args.recipe or 'none'}` |",
        f"| initialised from | `{args.model.name_or_path or 'scratch (' + str(args.model.family or args.model.class_path) + ')'}` |",
    ]
    runner = (
        f"iteration-based: {args.max_iters} iterations, {args.iters_per_inner_epoch} per inner epoch"
        if args.iteration_based
        else f"epoch-based: {args.max_epoch} epochs"
    )
    hyper = {
        "runner": runner,
        "batch size (per process)": args.batch_size_train,
        "gradient accumulation": args.gradient_accumulation_steps,
        "optimizer": f"AdamW (betas {args.beta1}, {args.beta2}; weight decay {args.weight_decay})",
        "schedule": f"{args.lr_sched} (init_lr {args.init_lr}, min_lr {args.min_lr}, warmup {args.warmup_steps} it.)",
        "mixed precision": args.mixed_precision,
        "seed": args.seed,
    }
    hyper.update(extra or {})
    lines += [f"| {k} | {v} |" for k, v in hyper.items()]
    lines.append("")
    lines += _dataset_rows("Training data", args.datasets)
    lines += _dataset_rows("Validation data", args.eval_datasets)
    lines += _dataset_rows("Test data", args.test_datasets)
    lines += ["## Results", ""]
    if metrics:
        lines += ["| stage | dataset | metric | value |", "|---|---|---|---|"]
        for key, value in metrics.items():
            stage, dataset, metric = _split_metric_key(key)
            lines.append(f"| {stage} | {dataset} | {metric} | {float(value):.4f} |")
    else:
        lines.append("No evaluation dataset was given.")
    lines.append("")
    if curves_file:
        lines += ["## Training curves", "", f"![training curves]({curves_file})", ""]
    lines += [
        "## How to use",
        "",
        "```python",
        "import vl_hub  # registers the vl_hub model families with transformers",
        "from vl_hub.auto import AutoVlHubModel",
        "",
        f'model = AutoVlHubModel.from_pretrained("{args.push_to_hub or args.output_dir}")',
    ]
    if has_processor:
        lines += [
            "from transformers import AutoProcessor",
            f'processor = AutoProcessor.from_pretrained("{args.push_to_hub or args.output_dir}")',
        ]
    lines += ["```", ""]
    return "\n".join(lines)


def write_model_card(folder: str | Path, text: str) -> Path:
    """Writes ``README.md`` into ``folder``."""
    path = Path(folder) / CARD_FILENAME
    path.write_text(text, encoding="utf-8")
    return path


def read_card_metadata(path: str | Path) -> dict[str, Any]:
    """The YAML header of a card (for checks)."""
    text = Path(path).read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise ValueError(f"{path} has no YAML header")
    header = text[4:].split("\n---\n", 1)[0]
    return yaml.safe_load(header) or {}
