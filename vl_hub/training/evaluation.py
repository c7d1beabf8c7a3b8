"""Helpers for ``Task.evaluate``: the evaluation data contract between the trainer and the tasks.

What the trainer passes (``vl_hub.tasks.base.Task.evaluate``):

* ``model``: the unwrapped model (``accelerator.unwrap_model``), in ``eval()`` mode, already under
  ``torch.no_grad()`` and the run's autocast;
* ``dataset``: the **whole** evaluation split (a ``datasets.Dataset``), identical on every process,
  so that tasks needing all of it at once (retrieval: every image against every text) can have it;
* ``accelerator``: the run's ``accelerate.Accelerator`` (``None`` outside a trainer: single process);
* ``batch_size``: rows per process per batch (``batch_size_eval``); ``progress``: show a bar (main
  process only; already ``False`` elsewhere).

What the task does: split the work across ``accelerator.num_processes`` and gather it before
computing metrics. The usual pattern, for per-row predictions::

    loader = eval_dataloader(dataset, self.collate_eval, batch_size, accelerator)
    for batch in tqdm(loader, disable=not progress):
        preds = model.generate(...)
        preds, ids = gather_for_metrics(accelerator, (preds, batch["question_id"]))
        ...
    return {"accuracy": metric(all_preds, all_ids)}

``eval_dataloader`` shards the rows across processes in order (process ``r`` takes batches ``r``,
``r + N``, ...); the last batches are padded by repeating rows so every process runs the same
number of steps, and :func:`gather_for_metrics` (``accelerator.gather_for_metrics``) drops the
padding again, so each row is counted exactly once and the metrics equal a one-process run.

What the task returns: ``{metric: float}`` including ``primary_metric`` (higher is better). Only the
main process's dict is used: the trainer broadcasts it, so metric computation may run on the main
process alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import DataLoader


def eval_dataloader(
    dataset: Any,
    collate_fn: Callable[[list[dict[str, Any]]], Any],
    batch_size: int,
    accelerator: Any | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over ``dataset`` in order, sharded across the accelerator's processes.

    Batches are placed on ``accelerator.device``. With one process (or no accelerator) it is a plain
    DataLoader. Use :func:`gather_for_metrics` on every batch's results.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn, num_workers=num_workers)
    if accelerator is None:
        return loader
    from accelerate.data_loader import prepare_data_loader

    # the module function (not accelerator.prepare) so the loader is not kept in the accelerator's
    # list of dataloaders, which save_state writes and which would grow with every evaluation
    return prepare_data_loader(
        loader,
        device=accelerator.device,
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
        split_batches=False,
        put_on_device=True,
        even_batches=True,
    )


def gather_for_metrics(accelerator: Any | None, data: Any) -> Any:
    """Results of one batch from every process, padding rows dropped (identity without accelerator).

    ``data`` is a tensor, a nested tuple/list/dict of tensors, or a list of Python objects (strings,
    dicts), gathered in process order.
    """
    if accelerator is None:
        return data
    return accelerator.gather_for_metrics(data)
