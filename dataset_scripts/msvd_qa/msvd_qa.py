"""MSVD-QA: 50,505 open-ended questions generated from MSVD descriptions, over the 1,970 MSVD
YouTube clips (one row per question, with its single ground-truth answer)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
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
from vl_hub.data.video_builders import QaRow, lavis_qa_row, read_youtube_mapping, video_qa_examples

_NAME = "msvd_qa"

_CITATION = """\
@inproceedings{xu2017videoqa,
  title     = {Video Question Answering via Gradually Refined Attention over Appearance and Motion},
  author    = {Xu, Dejing and Zhao, Zhou and Xiao, Jun and Wu, Fei and Zhang, Hanwang and He, Xiangnan and
               Zhuang, Yueting},
  booktitle = {Proceedings of the 25th ACM International Conference on Multimedia},
  pages     = {1645--1653},
  year      = {2017}
}
@inproceedings{chen2011msvd,
  title     = {Collecting Highly Parallel Data for Paraphrase Evaluation},
  author    = {Chen, David L. and Dolan, William B.},
  booktitle = {Proceedings of the 49th Annual Meeting of the Association for Computational Linguistics (ACL)},
  year      = {2011}
}
"""

_DESCRIPTION = """\
MSVD-QA: 50,505 question-answer pairs (what / who / how / when / where) generated automatically from
the English descriptions of the 1,970 MSVD clips: 30,933 train, 6,415 validation and 13,157 test
questions, split by clip like MSVD captioning. Answers are single words; the task is usually
treated as classification over the most frequent training answers.
"""

_HOMEPAGE = "https://github.com/xudejing/video-question-answering"

_LICENSE = "other"  # questions: see the Mendeley Data record; videos: MSVD's Microsoft Research licence

_TASKS = ["video_qa"]

_INSTRUCTIONS = {
    "official": """\
Questions: MSVD-QA from https://data.mendeley.com/datasets/h5j7cpwnvn (linked from
https://github.com/xudejing/video-question-answering); videos:
https://www.cs.utexas.edu/users/ml/clamp/videoDescription/YouTubeClips.tar (1,970 .avi clips).
data_dir holds:
  train_qa.json, val_qa.json, test_qa.json   [{"id", "video_id": N, "question", "answer"}]
  youtube_mapping.txt                        lines "<clip> vid<N>" (shipped with MSVD-QA)
  YouTubeClips/<clip>.avi
""",
    "lavis": """\
LAVIS's re-packaged annotations with the MSVD clips:
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msvd/qa_train.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msvd/qa_val.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msvd/qa_test.json
  (train_ans2label.json, LAVIS's answer vocabulary, is not read)
  videos: the .avi files of https://www.cs.utexas.edu/users/ml/clamp/videoDescription/YouTubeClips.tar
data_dir (LAVIS's msvd/ folder) holds:
  annotations/qa_{train,val,test}.json   [{"video": "<clip>.avi", "question", "answer", "question_id"}]
  videos/<clip>.avi
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


class MsvdQa(datasets.GeneratorBasedBuilder):
    """MSVD-QA: one row per question; the video is an absolute path."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(
            name="official",
            version=VERSION,
            description="{train,val,test}_qa.json + youtube_mapping.txt + YouTubeClips/.",
        ),
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
            annotations, files, mapping = data_dir, _OFFICIAL_FILES, data_dir / "youtube_mapping.txt"
            mapping = str(require_path(_NAME, mapping, instructions))
            videos = require_path(_NAME, data_dir / "YouTubeClips", instructions)
        else:
            annotations, files, mapping = data_dir / "annotations", _LAVIS_FILES, None
            videos = require_path(_NAME, data_dir / "videos", instructions)
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    "annotation": str(require_path(_NAME, annotations / file, instructions)),
                    "mapping": mapping,
                    "videos": str(videos),
                },
            )
            for split, file in files.items()
        ]

    def _generate_examples(
        self, annotation: str, mapping: str | None, videos: str
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if mapping is None:
            parse = lavis_qa_row
        else:
            parse = partial(_official_row, clips=read_youtube_mapping(Path(mapping)), mapping=mapping)
        examples = video_qa_examples(Path(annotation), Path(videos), parse)
        yield from guarded_examples(self.config, examples, where=annotation)


def _official_row(row: dict[str, Any], index: int, clips: dict[int, str], mapping: str) -> QaRow:
    """``{"id", "video_id": N, "question", "answer"}`` -> (question_id, clip, clip.avi, question, [answer])."""
    number = int(row["video_id"])
    if number not in clips:
        raise KeyError(f"video_id {number} (vid{number}) is not in {mapping}")
    clip = clips[number]
    return str(row["id"]), clip, f"{clip}.avi", row["question"].strip(), [row["answer"].strip()]
