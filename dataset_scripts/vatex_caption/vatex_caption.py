"""VATEX video captioning: 41k ten-second YouTube clips (Kinetics-600) with 10 English and 10
Chinese captions each; this builder serves the English captions (one row per clip)."""

from __future__ import annotations

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

_NAME = "vatex_caption"

_CITATION = """\
@inproceedings{wang2019vatex,
  title     = {{VATEX}: A Large-Scale, High-Quality Multilingual Dataset for Video-and-Language Research},
  author    = {Wang, Xin and Wu, Jiawei and Chen, Junkun and Li, Lei and Wang, Yuan-Fang and Wang, William Yang},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages     = {4581--4591},
  year      = {2019}
}
"""

_DESCRIPTION = """\
VATEX: 41,250 ten-second clips from Kinetics-600 YouTube videos, each with 10 English and 10
Chinese captions. Splits (v1.0 / v1.1): 25,991 training, 3,000 validation and 6,000 public test
clips with English captions (the 6,278 private-test clips have none). VATEX distributes
annotations only; the clips are cut from YouTube. Each row is one clip with its English captions.
"""

_HOMEPAGE = "https://eric-xw.github.io/vatex-website/"

_LICENSE = "cc-by-4.0"  # the annotations; the clips are YouTube videos under their owners' terms

_TASKS = ["video_text"]

_INSTRUCTIONS = {
    "official": """\
Annotations from https://eric-xw.github.io/vatex-website/download.html:
  vatex_training_v1.0.json, vatex_validation_v1.0.json, vatex_public_test_english_v1.1.json
  each a list of {"videoID": "<youtube id>_<start:06d>_<end:06d>", "enCap": [10 captions], ...}
Clips: VATEX does not host videos; download each YouTube video and cut [start, end) seconds
(e.g. yt-dlp + ffmpeg), saving it as videos/<videoID>.mp4. Clips no longer on YouTube are missing;
pass skip_invalid=True to skip them.
data_dir holds:
  vatex_training_v1.0.json  vatex_validation_v1.0.json  vatex_public_test_english_v1.1.json
  videos/<videoID>.mp4
""",
    "lavis": """\
LAVIS's re-packaged annotations with the VATEX clips:
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/vatex/cap_train.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/vatex/cap_val.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/vatex/cap_private_test.json
    (save this one as annotations/cap_test.json, as LAVIS does; it has no captions)
data_dir holds:
  annotations/cap_{train,val,test}.json   [{"video": "<videoID>.mp4", "caption": str or [str], ...}]
  videos/<videoID>.mp4
""",
}

_OFFICIAL_FILES = {
    datasets.Split.TRAIN: "vatex_training_v1.0.json",
    datasets.Split.VALIDATION: "vatex_validation_v1.0.json",
    datasets.Split.TEST: "vatex_public_test_english_v1.1.json",
}
_LAVIS_FILES = {
    datasets.Split.TRAIN: "cap_train.json",
    datasets.Split.VALIDATION: "cap_val.json",
    datasets.Split.TEST: "cap_test.json",
}


class VatexCaption(datasets.GeneratorBasedBuilder):
    """VATEX captioning: one row per clip with its English captions; the video is an absolute path."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(
            name="official", version=VERSION, description="vatex_{training,validation}_v1.0 + public test v1.1 JSONs."
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
        annotations, files = (
            (data_dir, _OFFICIAL_FILES)
            if self.config.name == "official"
            else (
                data_dir / "annotations",
                _LAVIS_FILES,
            )
        )
        videos = str(require_path(_NAME, data_dir / "videos", instructions))
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={"annotation": str(require_path(_NAME, annotations / file, instructions)), "videos": videos},
            )
            for split, file in files.items()
        ]

    def _generate_examples(self, annotation: str, videos: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.config.name == "official":
            examples = _official_examples(Path(annotation), Path(videos))
        else:
            examples = lavis_caption_examples(Path(annotation), Path(videos))
        yield from guarded_examples(self.config, examples, where=annotation)


def _official_examples(annotation: Path, videos: Path) -> Iterator[tuple[str, Any]]:
    rows = load_json(annotation)
    if not isinstance(rows, list):
        raise InvalidExampleError(
            f"{annotation}: expected a JSON list of {{'videoID', 'enCap'}}, got {type(rows).__name__}"
        )
    for index, row in enumerate(rows):
        captions = row.get("enCap") if isinstance(row, dict) else None
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("videoID"), str)
            or not isinstance(captions, list)
            or not all(isinstance(c, str) for c in captions)
        ):
            yield (
                f"#{index}",
                InvalidExampleError(
                    f"{annotation}: entry {index} lacks a 'videoID' string or an 'enCap' list of strings: {row!r:.200}"
                ),
            )
            continue
        video_id = row["videoID"]
        yield (
            video_id,
            lambda video_id=video_id, captions=captions: {
                "video_id": video_id,
                "video": check_video(videos / f"{video_id}.mp4"),
                "captions": [c.strip() for c in captions],
            },
        )
