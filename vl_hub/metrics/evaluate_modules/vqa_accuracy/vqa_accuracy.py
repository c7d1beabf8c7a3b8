"""`evaluate` module for VQA accuracy; load offline with ``evaluate.load(vl_hub.metrics.module_path("vqa_accuracy"))``."""

import datasets
import evaluate

from vl_hub.metrics.vqa import vqa_score

_DESCRIPTION = "VQAv2 accuracy: min(#matching human answers / 3, 1) averaged over the 10-choose-9 subsets, with the official answer normalisation."
_CITATION = "@inproceedings{antol2015vqa, title={VQA: Visual Question Answering}, author={Antol, Stanislaw and others}, booktitle={ICCV}, year={2015}}"
_KWARGS = """
Args:
    predictions: list of predicted answers (str).
    references: list of lists of human answers (str).
Returns:
    vqa_accuracy: mean accuracy in percent.
"""


class VqaAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references, always_normalize=False):
        return vqa_score(predictions, references, always_normalize=always_normalize)
