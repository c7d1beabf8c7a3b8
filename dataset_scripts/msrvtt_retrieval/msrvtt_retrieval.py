"""MSR-VTT text-video retrieval on the 1k-A protocol: 9,000 (or 7,010) training videos with all
their captions, and the 1,000-video JSFusion test set with one query sentence per video."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
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
from vl_hub.data.schemas import video_text_features
from vl_hub.data.video_builders import check_video, lavis_caption_examples

_NAME = "msrvtt_retrieval"

_CITATION = """\
@inproceedings{xu2016msrvtt,
  title     = {{MSR-VTT}: A Large Video Description Dataset for Bridging Video and Language},
  author    = {Xu, Jun and Mei, Tao and Yao, Ting and Rui, Yong},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {5288--5296},
  year      = {2016}
}
@inproceedings{yu2018jsfusion,
  title     = {A Joint Sequence Fusion Model for Video Question Answering and Retrieval},
  author    = {Yu, Youngjae and Kim, Jongseok and Kim, Gunhee},
  booktitle = {Proceedings of the European Conference on Computer Vision (ECCV)},
  pages     = {471--487},
  year      = {2018}
}
"""

_DESCRIPTION = """\
MSR-VTT text-video retrieval: 10,000 web video clips with 20 English captions each. The standard
1k-A protocol (JSFusion, used by ALPRO, CLIP4Clip, LAVIS) trains on 9,000 videos (or 7,010 in the
"7k" variant) with all their captions and tests on 1,000 videos, one query sentence each. Each row
is one video with its captions.
"""

_HOMEPAGE = "https://www.microsoft.com/en-us/research/publication/msr-vtt-a-large-video-description-dataset-for-bridging-video-and-language/"

_LICENSE = "other"  # Microsoft Research licence: non-commercial research use

_TASKS = ["video_text"]

_OFFICIAL_INSTRUCTIONS = """\
MSR-VTT's original site is offline; the videos and the 1k-A split files are distributed as the
archives used by CLIP4Clip / Frozen-in-Time:
  https://www.robots.ox.ac.uk/~maxbain/frozen-in-time/data/MSRVTT.zip             (videos/all/videoN.mp4)
  https://github.com/ArrowLuo/CLIP4Clip/releases/download/v0.0/msrvtt_data.zip   (MSRVTT_data.json + CSVs)
Unpack both into data_dir so that it holds:
  MSRVTT_data.json            {"videos": [...], "sentences": [{"video_id", "caption", "sen_id"}]}
  {train_csv}        column video_id: the training videos
  MSRVTT_JSFUSION_test.csv    columns key,vid_key,video_id,sentence: the 1,000 test queries
  videos/all/videoN.mp4       the 10,000 clips
"""

_INSTRUCTIONS = {
    "train_9k": _OFFICIAL_INSTRUCTIONS.replace("{train_csv}", "MSRVTT_train.9k.csv"),
    "train_7k": _OFFICIAL_INSTRUCTIONS.replace("{train_csv}", "MSRVTT_train.7k.csv"),
    "lavis": """\
LAVIS's re-packaged annotations (one JSON list per split) with the MSR-VTT videos:
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msrvtt/retrieval_train.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msrvtt/retrieval_val.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msrvtt/retrieval_test.json
  videos: TrainValVideo/ + TestVideo/ of the official release merged into one folder (what LAVIS's
  download_msrvtt.py does), or videos/all/ of MSRVTT.zip.
data_dir (LAVIS's msrvtt/ folder) holds:
  annotations/retrieval_{train,val,test}.json   [{"video": "video0.mp4", "caption": str or [str]}]
  videos/videoN.mp4
""",
}

_TRAIN_CSV = {"train_9k": "MSRVTT_train.9k.csv", "train_7k": "MSRVTT_train.7k.csv"}
_LAVIS_SPLITS = {datasets.Split.TRAIN: "train", datasets.Split.VALIDATION: "val", datasets.Split.TEST: "test"}


class MsrvttRetrieval(datasets.GeneratorBasedBuilder):
    """MSR-VTT 1k-A retrieval: one row per video with its captions; the video is an absolute path."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(
            name="train_9k", version=VERSION, description="MSRVTT_train.9k.csv + MSRVTT_JSFUSION_test.csv (1k-A)."
        ),
        VlHubBuilderConfig(
            name="train_7k", version=VERSION, description="MSRVTT_train.7k.csv + MSRVTT_JSFUSION_test.csv (1k-A)."
        ),
        VlHubBuilderConfig(
            name="lavis", version=VERSION, description="LAVIS's annotations/retrieval_{split}.json + videos/."
        ),
    ]
    DEFAULT_CONFIG_NAME = "train_9k"

    @property
    def manual_download_instructions(self) -> str:
        """Which files to download for this config and where to put them."""
        return _INSTRUCTIONS[self.config.name]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=video_text_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        instructions = self.manual_download_instructions
        data_dir = require_data_dir(_NAME, self.config.data_dir, instructions).resolve()
        if self.config.name == "lavis":
            videos = require_path(_NAME, data_dir / "videos", instructions)
            return [
                datasets.SplitGenerator(
                    name=split,
                    gen_kwargs={
                        "annotation": str(
                            require_path(_NAME, data_dir / "annotations" / f"retrieval_{name}.json", instructions)
                        ),
                        "videos": str(videos),
                        "split_csv": None,
                    },
                )
                for split, name in _LAVIS_SPLITS.items()
            ]
        annotation = str(require_path(_NAME, data_dir / "MSRVTT_data.json", instructions))
        videos = str(require_path(_NAME, data_dir / "videos" / "all", instructions))
        train_csv = require_path(_NAME, data_dir / _TRAIN_CSV[self.config.name], instructions)
        test_csv = require_path(_NAME, data_dir / "MSRVTT_JSFUSION_test.csv", instructions)
        return [
            datasets.SplitGenerator(
                name=datasets.Split.TRAIN,
                gen_kwargs={"annotation": annotation, "videos": videos, "split_csv": str(train_csv)},
            ),
            # the 1k-A test queries come with their sentence: MSRVTT_data.json is not needed there
            datasets.SplitGenerator(
                name=datasets.Split.TEST,
                gen_kwargs={"annotation": None, "videos": videos, "split_csv": str(test_csv)},
            ),
        ]

    def _generate_examples(
        self, annotation: str | None, videos: str, split_csv: str | None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if split_csv is None:
            examples = lavis_caption_examples(Path(annotation), Path(videos))
        elif annotation is None:
            examples = _jsfusion_test_examples(Path(split_csv), Path(videos))
        else:
            examples = _train_examples(Path(annotation), Path(split_csv), Path(videos))
        yield from guarded_examples(self.config, examples, where=split_csv or annotation)


def _read_csv(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of ``path`` as dicts; the last column absorbs unquoted commas (sentences contain some)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        missing = [c for c in columns if c not in header]
        if missing:
            raise InvalidExampleError(f"{path}: header {header} lacks column(s) {missing}; expected {list(columns)}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            values = [*row[: len(header) - 1], ",".join(row[len(header) - 1 :])]
            yield line, dict(zip(header, values, strict=False))


def _train_examples(annotation: Path, split_csv: Path, videos: Path) -> Iterator[tuple[str, Any]]:
    data = load_json(annotation)
    try:
        captions: dict[str, list[str]] = defaultdict(list)
        for sentence in data["sentences"]:
            captions[sentence["video_id"]].append(sentence["caption"].strip())
    except (KeyError, TypeError, AttributeError) as err:
        raise InvalidExampleError(
            f"{annotation}: not MSR-VTT's layout ({type(err).__name__}: {err}); expected "
            '{"sentences": [{"video_id", "caption"}], ...}'
        ) from err
    for line, row in _read_csv(split_csv, ("video_id",)):
        video_id = row["video_id"].strip()

        def example(video_id: str = video_id, line: int = line) -> dict[str, Any]:
            if not captions.get(video_id):
                raise InvalidExampleError(f"{split_csv}: line {line}: video {video_id} has no sentence in {annotation}")
            return {
                "video_id": video_id,
                "video": check_video(videos / f"{video_id}.mp4"),
                "captions": captions[video_id],
            }

        yield video_id, example


def _jsfusion_test_examples(test_csv: Path, videos: Path) -> Iterator[tuple[str, Any]]:
    grouped: dict[str, list[str]] = {}
    for _, row in _read_csv(test_csv, ("video_id", "sentence")):
        grouped.setdefault(row["video_id"].strip(), []).append(row["sentence"].strip())
    for video_id, sentences in grouped.items():
        yield (
            video_id,
            lambda video_id=video_id, sentences=sentences: {
                "video_id": video_id,
                "video": check_video(videos / f"{video_id}.mp4"),
                "captions": sentences,
            },
        )
