"""The order of training batches: shuffled, mixed across datasets, sharded across processes, resumable.

The plan is an endless sequence of *global batches* ``g = 0, 1, 2, ...``, each a set of row indices
into the (virtual) concatenation of the training datasets plus a seed for its collation. Everything
is a pure function of ``(seed, dataset sizes, batch size, number of processes, ratios)``, so a run
resumed at iteration ``i`` sees exactly the batches the uninterrupted run would have seen, without
replaying the data loader.

* **Streams.** Without ratios the datasets are concatenated into one stream (LAVIS ``ConcatDataset``);
  with ratios each dataset is its own stream and every global batch comes from one stream drawn with
  probability ``ratio / sum(ratios)`` (LAVIS ``MultiIterLoader``). A stream is read in passes, each
  a fresh permutation; a pass yields ``K`` full batches (the remainder is dropped, like LAVIS's
  ``drop_last``), ``K`` a multiple of the number of processes so that passes never straddle them.
* **Processes.** Iteration ``i`` of process ``r`` (of ``N``) reads global batch ``i * N + r``.
* **Epochs.** An epoch is ``iterations_per_epoch = sum(K) / N`` iterations; with one stream it is
  exactly one pass over the data.
* **Collation seeds.** Batch ``g`` is collated under its own seed (Python, NumPy and torch RNGs), so
  random augmentation does not depend on the number of workers or on where a run was resumed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: global batches whose stream choices are drawn from one seeded generator (mixing only).
_CHOICE_BLOCK = 1 << 16
_TAG_PERMUTATION = 0x7065726D
_TAG_CHOICE = 0x6D6978
_TAG_COLLATE = 0x636F6C


@dataclass(frozen=True)
class BatchRef:
    """One training batch: rows ``indices`` of the concatenated datasets, collated under ``seed``.

    Attributes:
        index: the global batch number ``g``.
        indices: ``(batch_size,)`` int64 row indices into the concatenation of the datasets.
        seed: seed of the collation of this batch.
    """

    index: int
    indices: np.ndarray
    seed: int


class BatchPlan:
    """The deterministic batch order of a training run (see the module docstring).

    Args:
        lengths: number of rows of each training dataset.
        batch_size: rows per batch (per process).
        num_processes: data-parallel processes.
        seed: run seed.
        ratios: sampling weight per dataset, or ``None`` to concatenate them.
        names: dataset names for error messages.

    Raises:
        ValueError: a dataset (or the concatenation) has fewer rows than one batch per process.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        num_processes: int = 1,
        seed: int = 0,
        ratios: Sequence[float] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        if not lengths:
            raise ValueError("no training dataset")
        if ratios is not None and len(ratios) != len(lengths):
            raise ValueError(f"{len(ratios)} ratios for {len(lengths)} datasets")
        self.lengths = [int(n) for n in lengths]
        self.batch_size = int(batch_size)
        self.num_processes = int(num_processes)
        self.seed = int(seed)
        self.ratios = None if ratios is None else [float(r) for r in ratios]
        names = list(names) if names is not None else [f"dataset {i}" for i in range(len(lengths))]
        offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.offsets = offsets
        if self.ratios is None:
            self._streams = [(0, int(offsets[-1]), " + ".join(names))]
        else:
            self._streams = [(int(offsets[i]), n, names[i]) for i, n in enumerate(self.lengths)]
        per_round = self.batch_size * self.num_processes
        self.batches_per_pass: list[int] = []
        for _, n, name in self._streams:
            k = (n // per_round) * self.num_processes
            if k == 0:
                raise ValueError(
                    f"{name} has {n} rows, fewer than one batch per process ({self.batch_size} rows x "
                    f"{self.num_processes} processes); lower batch_size_train or add data"
                )
            self.batches_per_pass.append(k)
        self.iterations_per_epoch = sum(self.batches_per_pass) // self.num_processes
        self._choices = np.zeros(0, dtype=np.int16)
        self._permutations: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> dict[str, object]:
        """What must match for a resumed run to see the same batches (stored in checkpoints)."""
        return {
            "lengths": list(self.lengths),
            "batch_size": self.batch_size,
            "num_processes": self.num_processes,
            "seed": self.seed,
            "ratios": self.ratios,
        }

    # ------------------------------------------------------------------ pieces
    def _permutation(self, stream: int, epoch_of_stream: int) -> np.ndarray:
        key = (stream, epoch_of_stream)
        perm = self._permutations.get(key)
        if perm is None:
            rng = np.random.default_rng([self.seed, _TAG_PERMUTATION, stream, epoch_of_stream])
            perm = rng.permutation(self._streams[stream][1]).astype(np.int64)
            self._permutations[key] = perm
            while len(self._permutations) > 2 * len(self._streams):
                self._permutations.popitem(last=False)
        else:
            self._permutations.move_to_end(key)
        return perm

    def _choices_upto(self, stop: int) -> np.ndarray:
        """Stream of every global batch ``< stop`` (grown block by block, each block its own seed)."""
        assert self.ratios is not None
        if len(self._choices) < stop:
            p = np.asarray(self.ratios, dtype=np.float64)
            p = p / p.sum()
            blocks = [self._choices]
            for block in range(len(self._choices) // _CHOICE_BLOCK, -(-stop // _CHOICE_BLOCK)):
                rng = np.random.default_rng([self.seed, _TAG_CHOICE, block])
                blocks.append(rng.choice(len(p), size=_CHOICE_BLOCK, p=p).astype(np.int16))
            self._choices = np.concatenate(blocks)
        return self._choices[:stop]

    def collate_seed(self, global_index: int) -> int:
        """The collation seed of global batch ``global_index`` (64-bit)."""
        state = np.random.SeedSequence([self.seed, _TAG_COLLATE, global_index]).generate_state(1, np.uint64)
        return int(state[0])

    def global_batches(self, indices: Sequence[int] | np.ndarray) -> list[BatchRef]:
        """The batches with global numbers ``indices`` (increasing)."""
        g = np.asarray(indices, dtype=np.int64)
        if len(g) == 0:
            return []
        if self.ratios is None:
            streams = np.zeros(len(g), dtype=np.int64)
            ordinals = g
        else:
            choices = self._choices_upto(int(g.max()) + 1)
            streams = choices[g].astype(np.int64)
            ordinals = np.empty(len(g), dtype=np.int64)
            for s in np.unique(streams):
                # how many earlier global batches drew the same stream = this batch's position in it
                before = np.cumsum(choices == s) - 1
                mask = streams == s
                ordinals[mask] = before[g[mask]]
        out = []
        for gi, s, b in zip(g.tolist(), streams.tolist(), ordinals.tolist(), strict=True):
            k = self.batches_per_pass[s]
            perm = self._permutation(s, b // k)
            start = (b % k) * self.batch_size
            rows = perm[start : start + self.batch_size] + self._streams[s][0]
            out.append(BatchRef(index=gi, indices=rows, seed=self.collate_seed(gi)))
        return out

    def process_batches(self, start: int, stop: int, process_index: int) -> list[BatchRef]:
        """Batches of iterations ``start .. stop-1`` of process ``process_index``."""
        if not 0 <= process_index < self.num_processes:
            raise ValueError(f"process_index {process_index} outside 0..{self.num_processes - 1}")
        iterations = np.arange(start, stop, dtype=np.int64)
        return self.global_batches(iterations * self.num_processes + process_index)

    def dataset_of(self, rows: np.ndarray) -> np.ndarray:
        """Index of the dataset each concatenated row index belongs to."""
        return np.searchsorted(self.offsets, rows, side="right") - 1
