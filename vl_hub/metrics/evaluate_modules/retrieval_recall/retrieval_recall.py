"""`evaluate` module for retrieval recall@K in one direction (queries x candidates scores)."""

import datasets
import evaluate
import torch

from vl_hub.metrics.retrieval import recall_at_k

_DESCRIPTION = "Recall@K (percent), mean and median rank of the best-ranked positive candidate per query."
_KWARGS = """
Args:
    predictions: per query, the scores of every candidate (list of floats, same length for all queries).
    references: per query, the indices of its positive candidates.
Returns:
    r1, r5, r10, r_mean, mean_rank, median_rank.
"""


class RetrievalRecall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Sequence(datasets.Value("int64"))}
            ),
        )

    def _compute(self, predictions, references, ks=(1, 5, 10)):
        return recall_at_k(torch.tensor(predictions), references, ks=ks)
