"""`evaluate` module for visual dialogue answer ranking (MRR, R@1/5/10, mean rank, NDCG)."""

import datasets
import evaluate
import torch

from vl_hub.metrics.visdial import visdial_metrics

_DESCRIPTION = "VisDial v1.0 metrics from the scores of the 100 answer options of each round."
_CITATION = "@inproceedings{das2017visual, title={Visual Dialog}, author={Das, Abhishek and others}, booktitle={CVPR}, year={2017}}"
_KWARGS = """
Args:
    predictions: per round, the scores of the answer options.
    references: per round, the index of the ground-truth option (-1 when hidden).
    relevance: optional per-round dense relevance lists (same length as the options).
Returns:
    mrr, r1, r5, r10, mean_rank, and ndcg when relevance is given.
"""


class VisdialMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, relevance=None):
        rel = None if relevance is None else torch.tensor(relevance, dtype=torch.float32)
        return visdial_metrics(torch.tensor(predictions), torch.tensor(references), rel)
