"""MSRVTT-QA: 243k open-ended questions generated from MSR-VTT captions, over the MSR-VTT videos
(one row per question, with its single ground-truth answer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    VlHubBuilderConfig,
    guarded_examples,
    require_data_dir,
    require_path,
)
from vl_hub.data.schemas import video_qa_features
from vl_hub.data.video_builders import QaRow, lavis_qa_row, video_qa_examples

_NAME = "msrvtt_qa"

_CITATION = """\
@inproceedings{xu2017videoqa,
  title     = {Video Question Answering via Gradually Refined Attention over Appearance and Motion},
  author    = {Xu, Dejing and Zhao, Zhou and Xiao, Jun and Wu, Fei and Zhang, Hanwang and He, Xiangnan and
               Zhuang, Yueting},
  booktitle = {Proceedings of the 25th ACM International Conference on Multimedia},
  pages     = {1645--1653},
  year      = {2017}
}
@inproceedings{xu2016msrvtt,
  title     = {{MSR-VTT}: A Large Video Description Dataset for Bridging Video and Language},
  author    = {Xu, Jun and Mei, Tao and Yao, Ting and Rui, Yong},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2016}
}
"""

_DESCRIPTION = """\
MSRVTT-QA: 243,680 question-answer pairs (what / who / how / when / where) generated automatically
from the captions of the 10,000 MSR-VTT videos, split like MSR-VTT: 158,581 train, 12,278
validation and 72,821 test questions. Answers are single words; the task is usually treated as
classification over the 1,500 most frequent training answers.
"""

_HOMEPAGE = "https://github.com/xudejing/video-question-answering"

_LICENSE = "other"  # questions: see the Mendeley Data record; videos: MSR-VTT's research licence

_TASKS = ["video_qa"]

_INSTRUCTIONS = {
    "official": """\
Questions: MSRVTT-QA from https://data.mendeley.com/datasets/bvxhs33bw6 (linked from
https://github.com/xudejing/video-question-answering); videos: MSR-VTT, distributed as
https://www.robots.ox.ac.uk/~maxbain/frozen-in-time/data/MSRVTT.zip (videos/all/videoN.mp4).
data_dir holds:
  train_qa.json, val_qa.json, test_qa.json   [{"id", "video_id": N, "question", "answer", "category_id"}]
  videos/all/videoN.mp4                      the MSR-VTT clips (video_id N -> videoN.mp4)
""",
    "lavis": """\
LAVIS's re-packaged annotations with the MSR-VTT videos:
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msrvtt/qa_train.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msrvtt/qa_val.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msrvtt/qa_test.json
  (train_ans2label.json, LAVIS's answer vocabulary, is not read)
data_dir (LAVIS's msrvtt/ folder) holds:
  annotations/qa_{train,val,test}.json   [{"video": "video0.mp4", "question", "answer", "question_id"}]
  videos/videoN.mp4
""",
}

_OFFICIAL_FILES = {
    datasets.Split.TRAIN: "train_qa.json",
    datasets.Split.VALIDATION: "val_qa.json",
    datasets.Split.TEST: "test_qa.json",
}
_LAVIS_FILES = {
    datasets.Split.TRAIN: "qa_train.json",
    datasets.Split.VALIDATION: "qa_val.json",
    datasets.Split.TEST: "qa_test.json",
}


class MsrvttQa(datasets.GeneratorBasedBuilder):
    """MSRVTT-QA: one row per question; the video is an absolute path."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(name="official", version=VERSION, description="{train,val,test}_qa.json + videos/all."),
        VlHubBuilderConfig(name="lavis", version=VERSION, description="LAVIS's annotations/qa_{split}.json + videos/."),
    ]
    DEFAULT_CONFIG_NAME = "official"

    @property
    def manual_download_instructions(self) -> str:
        """Which files to download for this config and where to put them."""
        return _INSTRUCTIONS[self.config.name]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=video_qa_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        instructions = self.manual_download_instructions
        data_dir = require_data_dir(_NAME, self.config.data_dir, instructions).resolve()
        if self.config.name == "official":
            annotations, files = data_dir, _OFFICIAL_FILES
            videos = require_path(_NAME, data_dir / "videos" / "all", instructions)
        else:
            annotations, files = data_dir / "annotations", _LAVIS_FILES
            videos = require_path(_NAME, data_dir / "videos", instructions)
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    "annotation": str(require_path(_NAME, annotations / file, instructions)),
                    "videos": str(videos),
                },
            )
            for split, file in files.items()
        ]

    def _generate_examples(self, annotation: str, videos: str) -> Iterator[tuple[str, dict[str, Any]]]:
        parse = _official_row if self.config.name == "official" else lavis_qa_row
        examples = video_qa_examples(Path(annotation), Path(videos), parse)
        yield from guarded_examples(self.config, examples, where=annotation)


def _official_row(row: dict[str, Any], index: int) -> QaRow:
    """``{"id", "video_id": N, "question", "answer"}`` -> (question_id, videoN, videoN.mp4, question, [answer])."""
    video_id = f"video{int(row['video_id'])}"
    return str(row["id"]), video_id, f"{video_id}.mp4", row["question"].strip(), [row["answer"].strip()]
