"""AVSD (Audio-Visual Scene-Aware Dialog, DSTC7 track 3): question-answer dialogues about Charades
videos; one row per dialogue turn, with the earlier turns as history."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    VlHubBuilderConfig,
    guarded_examples,
    load_json,
    require_data_dir,
    require_path,
)
from vl_hub.data.schemas import video_dialog_features
from vl_hub.data.video_builders import check_video

_NAME = "avsd"

_CITATION = """\
@inproceedings{alamri2019avsd,
  title     = {Audio Visual Scene-Aware Dialog},
  author    = {Alamri, Huda and Cartillier, Vincent and Das, Abhishek and Wang, Jue and Cherian, Anoop and
               Essa, Irfan and Batra, Dhruv and Marks, Tim K. and Hori, Chiori and Anderson, Peter and
               Lee, Stefan and Parikh, Devi},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {7558--7567},
  year      = {2019}
}
@article{hori2018dstc7avsd,
  title   = {Audio Visual Scene-aware dialog ({AVSD}) Track for Natural Language Generation in {DSTC7}},
  author  = {Alamri, Huda and Hori, Chiori and Marks, Tim K. and Batra, Dhruv and Parikh, Devi},
  journal = {DSTC7 at AAAI 2019 Workshop},
  year    = {2018}
}
@inproceedings{sigurdsson2016charades,
  title     = {Hollywood in Homes: Crowdsourcing Data Collection for Activity Understanding},
  author    = {Sigurdsson, Gunnar A. and Varol, G{\\"u}l and Wang, Xiaolong and Farhadi, Ali and
               Laptev, Ivan and Gupta, Abhinav},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2016}
}
"""

_DESCRIPTION = """\
AVSD (DSTC7 track 3): 10 question-answer turns per dialogue between two crowd workers about a
Charades video, plus the video's caption and the questioner's closing summary. Splits (DSTC7):
7,659 training, 1,787 validation and 1,710 test dialogues; in the official test file the answer
to be generated is withheld ("__UNDISCLOSED__", here an empty answer). Each row is one turn: the
question, its answer and the earlier turns as history.
"""

_HOMEPAGE = "https://github.com/hudaAlamri/DSTC7-Audio-Visual-Scene-Aware-Dialog-AVSD-Challenge"

_LICENSE = "other"  # AVSD annotations: DSTC7 data use policy; Charades videos: non-commercial research licence

_TASKS = ["video_dialog"]

_INSTRUCTIONS = {
    "official": """\
Dialogues: the DSTC7 AVSD release (Google Drive folder linked from
https://github.com/hudaAlamri/DSTC7-Audio-Visual-Scene-Aware-Dialog-AVSD-Challenge):
  train_set4DSTC7-AVSD.json, valid_set4DSTC7-AVSD.json, test_set4DSTC7-AVSD.json
  each {"dialogs": [{"image_id", "caption", "summary", "dialog": [{"question", "answer"}, ...]}]}
Videos: Charades_v1_480.zip from https://prior.allenai.org/projects/charades (480p .mp4).
data_dir holds:
  train_set4DSTC7-AVSD.json  valid_set4DSTC7-AVSD.json  test_set4DSTC7-AVSD.json
  Charades_v1_480/<image_id>.mp4
""",
    "lavis": """\
LAVIS's copies of the DSTC7 dialogues (same JSON layout) with the Charades videos:
  https://storage.googleapis.com/sfr-vision-language-research/datasets/avsd_dstc7_train.json  -> annotations/train.json
  https://storage.googleapis.com/sfr-vision-language-research/datasets/avsd_dstc7_val.json    -> annotations/val.json
  https://storage.googleapis.com/sfr-vision-language-research/datasets/avsd_dstc7_test.json   -> annotations/test.json
  Charades_v1_480.zip from https://prior.allenai.org/projects/charades (LAVIS itself reads
  pre-extracted I3D/VGGish features; vl_hub reads the videos)
data_dir holds:
  annotations/{train,val,test}.json
  Charades_v1_480/<image_id>.mp4
Like LAVIS, validation and test keep only the last turn of each dialogue.
""",
}

_OFFICIAL_FILES = {
    datasets.Split.TRAIN: "train_set4DSTC7-AVSD.json",
    datasets.Split.VALIDATION: "valid_set4DSTC7-AVSD.json",
    datasets.Split.TEST: "test_set4DSTC7-AVSD.json",
}
_LAVIS_FILES = {
    datasets.Split.TRAIN: "train.json",
    datasets.Split.VALIDATION: "val.json",
    datasets.Split.TEST: "test.json",
}
_UNDISCLOSED = "__UNDISCLOSED__"


class Avsd(datasets.GeneratorBasedBuilder):
    """AVSD: one row per (dialogue, turn) with the earlier turns as history; the video is an absolute path."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(
            name="official", version=VERSION, description="DSTC7 *_set4DSTC7-AVSD.json; every turn of every split."
        ),
        VlHubBuilderConfig(
            name="lavis",
            version=VERSION,
            description="LAVIS's annotations/{split}.json; every training turn, the last turn of eval dialogues.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "official"

    @property
    def manual_download_instructions(self) -> str:
        """Which files to download for this config and where to put them."""
        return _INSTRUCTIONS[self.config.name]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=video_dialog_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        instructions = self.manual_download_instructions
        data_dir = require_data_dir(_NAME, self.config.data_dir, instructions).resolve()
        annotations, files = (
            (data_dir, _OFFICIAL_FILES)
            if self.config.name == "official"
            else (
                data_dir / "annotations",
                _LAVIS_FILES,
            )
        )
        videos = str(require_path(_NAME, data_dir / "Charades_v1_480", instructions))
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    "annotation": str(require_path(_NAME, annotations / file, instructions)),
                    "videos": videos,
                    # LAVIS's evaluation datasets answer only the final turn of each dialogue
                    "last_turn_only": self.config.name == "lavis" and split != datasets.Split.TRAIN,
                },
            )
            for split, file in files.items()
        ]

    def _generate_examples(
        self, annotation: str, videos: str, last_turn_only: bool
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        path, video_dir = Path(annotation), Path(videos)
        data = load_json(path)
        dialogs = data.get("dialogs") if isinstance(data, dict) else None
        if not isinstance(dialogs, list):
            raise InvalidExampleError(f'{path}: expected {{"dialogs": [...]}}, got {type(data).__name__}')

        def examples() -> Iterator[tuple[str, Any]]:
            for index, dialog in enumerate(dialogs):
                try:
                    video_id, caption, summary, turns = _parse_dialog(dialog)
                except (KeyError, TypeError, ValueError, AttributeError) as err:
                    yield (
                        f"#{index}",
                        InvalidExampleError(
                            f"{path}: dialog {index} is malformed ({type(err).__name__}: {err}): {dialog!r:.200}"
                        ),
                    )
                    continue
                rounds = [len(turns) - 1] if last_turn_only else range(len(turns))
                for r in rounds:
                    yield f"{index}-{video_id}-{r}", partial(_turn_row, video_dir, video_id, caption, summary, turns, r)

        yield from guarded_examples(self.config, examples(), where=annotation)


def _parse_dialog(dialog: dict[str, Any]) -> tuple[str, str, str, list[dict[str, str]]]:
    """(video id, caption, summary, turns); a withheld test answer becomes ``""``."""
    video_id = dialog["image_id"]
    if not isinstance(video_id, str):
        raise TypeError(f"image_id is {type(video_id).__name__}, expected a Charades id string")
    turns = []
    for turn in dialog["dialog"]:
        question, answer = turn["question"].strip(), turn["answer"].strip()
        turns.append({"question": question, "answer": "" if answer == _UNDISCLOSED else answer})
    if not turns:
        raise ValueError("the dialog has no turn")
    return video_id, (dialog.get("caption") or "").strip(), (dialog.get("summary") or "").strip(), turns


def _turn_row(
    video_dir: Path, video_id: str, caption: str, summary: str, turns: list[dict[str, str]], r: int
) -> dict[str, Any]:
    """The row of turn ``r``: its question and answer, the turns before it as history."""
    return {
        "dialog_id": video_id,
        "video_id": video_id,
        "video": check_video(video_dir / f"{video_id}.mp4"),
        "caption": caption,
        "summary": summary,
        "history": turns[:r],
        "round": r,
        "question": turns[r]["question"],
        "answer": turns[r]["answer"],
    }
