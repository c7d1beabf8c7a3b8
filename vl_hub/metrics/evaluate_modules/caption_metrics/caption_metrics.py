"""`evaluate` module for COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr; SPICE optional)."""

import datasets
import evaluate

from vl_hub.metrics.caption import caption_metrics

_DESCRIPTION = "COCO caption metrics through pycocoevalcap; METEOR/SPICE need Java and are reported unavailable otherwise."
_CITATION = "@article{chen2015microsoft, title={Microsoft COCO Captions: Data Collection and Evaluation Server}, author={Chen, Xinlei and others}, journal={arXiv:1504.00325}, year={2015}}"
_KWARGS = """
Args:
    predictions: list of generated captions.
    references: list of lists of reference captions.
    meteor: compute METEOR (needs Java). spice: compute SPICE (needs Java and a model download).
Returns:
    bleu_1..bleu_4, rouge_l, cider, meteor (fractions).
"""


class CaptionMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references, meteor=True, spice=False):
        return caption_metrics(predictions, references, meteor=meteor, spice=spice)
