"""`evaluate` module for top-k classification accuracy from per-class scores."""

import datasets
import evaluate
import torch

from vl_hub.metrics.classification import topk_accuracy

_DESCRIPTION = "Top-k accuracy (percent) from per-class scores, e.g. ImageNet top-1/top-5."
_KWARGS = """
Args:
    predictions: per example, the scores of every class (list of floats).
    references: per example, the class index.
    ks: which k to report (default (1, 5)).
Returns:
    top1, top5.
"""


class ClassificationAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, ks=(1, 5)):
        return topk_accuracy(torch.tensor(predictions), torch.tensor(references), ks=ks)
