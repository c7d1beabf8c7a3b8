"""MSR-VTT video captioning: 10k web video clips with 20 English captions each, in the official
6513 / 497 / 2990 train / validation / test split (one row per video, all its captions)."""

from __future__ import annotations

import re
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

_NAME = "msrvtt_caption"

_CITATION = """\
@inproceedings{xu2016msrvtt,
  title     = {{MSR-VTT}: A Large Video Description Dataset for Bridging Video and Language},
  author    = {Xu, Jun and Mei, Tao and Yao, Ting and Rui, Yong},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {5288--5296},
  year      = {2016}
}
"""

_DESCRIPTION = """\
MSR-VTT (Microsoft Research Video to Text): 10,000 web video clips (41.2 hours) from 257 popular
queries in 20 categories, each described by 20 English sentences from Amazon Mechanical Turk
workers. This builder serves video captioning on the official split: 6,513 training, 497
validation and 2,990 test videos; each row is one video with all of its captions.
"""

_HOMEPAGE = "https://www.microsoft.com/en-us/research/publication/msr-vtt-a-large-video-description-dataset-for-bridging-video-and-language/"

_LICENSE = "other"  # Microsoft Research licence: non-commercial research use

_TASKS = ["video_text"]

_INSTRUCTIONS = {
    "official": """\
MSR-VTT's original site is offline; the videos and annotations are distributed as the archives used
by CLIP4Clip / Frozen-in-Time:
  https://www.robots.ox.ac.uk/~maxbain/frozen-in-time/data/MSRVTT.zip   (videos/all/video0.mp4 ... video9999.mp4)
  https://github.com/ArrowLuo/CLIP4Clip -> msrvtt_data.zip              (MSRVTT_data.json, split CSVs)
Unpack both into data_dir so that it holds:
  MSRVTT_data.json          {"videos": [{"video_id": "videoN", ...}], "sentences": [{"video_id", "caption", "sen_id"}]}
  videos/all/videoN.mp4     the 10,000 clips
The split follows the official video ranges (train video0-6512, validation video6513-7009, test
video7010-9999); the "split" field of MSRVTT_data.json is not read (CLIP4Clip's copy marks every
video "train").
""",
    "lavis": """\
LAVIS's re-packaged annotations (one JSON list per split) with the MSR-VTT videos:
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msrvtt/cap_train.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msrvtt/cap_val.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msrvtt/cap_test.json
  videos: TrainValVideo/ + TestVideo/ of the official release merged into one folder (what LAVIS's
  download_msrvtt.py does), or videos/all/ of MSRVTT.zip.
data_dir (LAVIS's msrvtt/ folder) holds:
  annotations/cap_{train,val,test}.json   [{"video": "video0.mp4", "caption": str or [str], ...}]
  videos/videoN.mp4
""",
}

# official split -> [first, last) video number, from the MSR-VTT release notes
_OFFICIAL_SPLITS = {
    datasets.Split.TRAIN: (0, 6513),
    datasets.Split.VALIDATION: (6513, 7010),
    datasets.Split.TEST: (7010, 10000),
}
_VIDEO_ID = re.compile(r"video(\d+)")
_LAVIS_SPLITS = {datasets.Split.TRAIN: "train", datasets.Split.VALIDATION: "val", datasets.Split.TEST: "test"}


class MsrvttCaption(datasets.GeneratorBasedBuilder):
    """MSR-VTT captioning: one row per video with all its captions; the video is an absolute path."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(
            name="official", version=VERSION, description="MSRVTT_data.json + videos/all (official 6513/497/2990)."
        ),
        VlHubBuilderConfig(
            name="lavis", version=VERSION, description="LAVIS's annotations/cap_{split}.json + videos/."
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
            features=video_text_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        instructions = self.manual_download_instructions
        data_dir = require_data_dir(_NAME, self.config.data_dir, instructions).resolve()
        if self.config.name == "official":
            annotation = require_path(_NAME, data_dir / "MSRVTT_data.json", instructions)
            videos = require_path(_NAME, data_dir / "videos" / "all", instructions)
            return [
                datasets.SplitGenerator(
                    name=split,
                    gen_kwargs={"annotation": str(annotation), "videos": str(videos), "numbers": numbers},
                )
                for split, numbers in _OFFICIAL_SPLITS.items()
            ]
        videos = require_path(_NAME, data_dir / "videos", instructions)
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    "annotation": str(require_path(_NAME, data_dir / "annotations" / f"cap_{name}.json", instructions)),
                    "videos": str(videos),
                    "numbers": None,
                },
            )
            for split, name in _LAVIS_SPLITS.items()
        ]

    def _generate_examples(
        self, annotation: str, videos: str, numbers: tuple[int, int] | None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if numbers is not None:
            examples = _official_examples(Path(annotation), Path(videos), numbers)
            where = f"{annotation} [video{numbers[0]}-video{numbers[1] - 1}]"
        else:
            examples = lavis_caption_examples(Path(annotation), Path(videos))
            where = annotation
        yield from guarded_examples(self.config, examples, where=where)


def _official_examples(annotation: Path, videos: Path, numbers: tuple[int, int]) -> Iterator[tuple[str, Any]]:
    data = load_json(annotation)
    try:
        captions: dict[str, list[str]] = defaultdict(list)
        for sentence in data["sentences"]:
            captions[sentence["video_id"]].append(sentence["caption"].strip())
        video_ids = [str(v["video_id"]) for v in data["videos"]]
    except (KeyError, TypeError, AttributeError) as err:
        raise InvalidExampleError(
            f"{annotation}: not MSR-VTT's layout ({type(err).__name__}: {err}); expected "
            '{"videos": [{"video_id"}], "sentences": [{"video_id", "caption"}]}'
        ) from err
    first, stop = numbers
    for video_id in video_ids:
        match = _VIDEO_ID.fullmatch(video_id)
        if match is None:
            yield video_id, InvalidExampleError(f"{annotation}: video_id {video_id!r} is not of the form videoN")
            continue
        if not first <= int(match.group(1)) < stop:
            continue

        def example(video_id: str = video_id) -> dict[str, Any]:
            if not captions.get(video_id):
                raise InvalidExampleError(f"{annotation}: video {video_id} has no sentence")
            return {
                "video_id": video_id,
                "video": check_video(videos / f"{video_id}.mp4"),
                "captions": captions[video_id],
            }

        yield video_id, example
