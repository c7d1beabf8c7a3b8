"""DiDeMo paragraph-to-video retrieval: 10,464 Flickr videos whose temporally grounded moment
descriptions are concatenated into one paragraph per video (one row per video)."""

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
from vl_hub.data.video_builders import check_video

_NAME = "didemo_retrieval"

_CITATION = """\
@inproceedings{hendricks2017didemo,
  title     = {Localizing Moments in Video with Natural Language},
  author    = {Hendricks, Lisa Anne and Wang, Oliver and Shechtman, Eli and Sivic, Josef and
               Darrell, Trevor and Russell, Bryan},
  booktitle = {Proceedings of the IEEE International Conference on Computer Vision (ICCV)},
  pages     = {5803--5812},
  year      = {2017}
}
"""

_DESCRIPTION = """\
DiDeMo (Distinct Describable Moments): 10,464 unedited Flickr videos (25-30 s) with 40,543 moment
descriptions, each grounded to 5-second segments. For text-video retrieval (ClipBERT, ALPRO,
CLIP4Clip, LAVIS) all descriptions of a video are concatenated into one paragraph that retrieves
the whole video. Splits: 8,395 training, 1,065 validation and 1,004 test videos. Each row is one
video with its paragraph as the single caption.
"""

_HOMEPAGE = "https://github.com/LisaAnne/LocalizingMoments"

_LICENSE = "bsd-2-clause"  # annotations; each video keeps its Flickr Creative Commons licence

_TASKS = ["video_text"]

_INSTRUCTIONS = {
    "official": """\
Annotations: data/{train,val,test}_data.json of https://github.com/LisaAnne/LocalizingMoments,
each a list of {"annotation_id", "description", "video", "times", "dl_link", "num_segments"}.
Videos: python download/download_videos_AWS.py --download --video_directory videos
(the YFCC100M copies on AWS, saved as videos/<video>.mp4; the 13 videos missing there are in
https://people.eecs.berkeley.edu/~lisa_anne/didemo/data/missing_videos/missing_videos_AWS.zip).
Videos fetched from Flickr with download_videos.py keep their own name (videos/<video>); both are read.
data_dir holds:
  train_data.json  val_data.json  test_data.json
  videos/<video>.mp4  (or videos/<video>)
""",
    "lavis": """\
LAVIS's re-packaged annotations and videos:
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/didemo/retrieval_train.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/didemo/retrieval_val.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/didemo/retrieval_test.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/didemo/didemo_videos.tar.gz
data_dir (LAVIS's didemo/ folder) holds:
  annotations/retrieval_{train,val,test}.json   [{"video": "<file>", "caption": str or [str]}]
  videos/<file>
""",
}

_SPLITS = {datasets.Split.TRAIN: "train", datasets.Split.VALIDATION: "val", datasets.Split.TEST: "test"}


class DidemoRetrieval(datasets.GeneratorBasedBuilder):
    """DiDeMo paragraph-to-video retrieval: one row per video, its paragraph as the single caption."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(name="official", version=VERSION, description="{train,val,test}_data.json + videos/."),
        VlHubBuilderConfig(
            name="lavis", version=VERSION, description="LAVIS's annotations/retrieval_{split}.json + videos/."
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
        videos = str(require_path(_NAME, data_dir / "videos", instructions))
        if self.config.name == "official":
            files = {split: data_dir / f"{name}_data.json" for split, name in _SPLITS.items()}
        else:
            files = {split: data_dir / "annotations" / f"retrieval_{name}.json" for split, name in _SPLITS.items()}
        return [
            datasets.SplitGenerator(
                name=split, gen_kwargs={"annotation": str(require_path(_NAME, path, instructions)), "videos": videos}
            )
            for split, path in files.items()
        ]

    def _generate_examples(self, annotation: str, videos: str) -> Iterator[tuple[str, dict[str, Any]]]:
        path, video_dir = Path(annotation), Path(videos)
        rows = load_json(path)
        if not isinstance(rows, list):
            raise InvalidExampleError(f"{path}: expected a JSON list of descriptions, got {type(rows).__name__}")
        text_key = "description" if self.config.name == "official" else "caption"
        grouped: dict[str, list[str]] = {}
        invalid: list[tuple[str, InvalidExampleError]] = []
        for index, row in enumerate(rows):
            texts = row.get(text_key) if isinstance(row, dict) else None
            texts = [texts] if isinstance(texts, str) else texts
            if not isinstance(row.get("video") if isinstance(row, dict) else None, str) or not (
                isinstance(texts, list) and all(isinstance(t, str) for t in texts)
            ):
                invalid.append(
                    (
                        f"#{index}",
                        InvalidExampleError(f"{path}: entry {index} lacks 'video' or '{text_key}': {row!r:.200}"),
                    )
                )
                continue
            grouped.setdefault(row["video"], []).extend(t.strip() for t in texts)
        official = self.config.name == "official"

        def examples() -> Iterator[tuple[str, Any]]:
            yield from invalid
            for video, texts in grouped.items():
                # official "video" is the Flickr name; LAVIS's is a file name: drop its extension
                video_id = video if official else video.rsplit(".", 1)[0]
                # paragraph-to-video: every description of the video, in file order, as one text
                yield (
                    video_id,
                    lambda video=video, video_id=video_id, texts=texts: {
                        "video_id": video_id,
                        "video": _official_video(video_dir, video) if official else check_video(video_dir / video),
                        "captions": [" ".join(t for t in texts if t)],
                    },
                )

        yield from guarded_examples(self.config, examples(), where=annotation)


def _official_video(videos: Path, video: str) -> str:
    """``videos/<video>.mp4`` (AWS copy) or ``videos/<video>`` (Flickr download), as a string."""
    for candidate in (videos / f"{video}.mp4", videos / video):
        if candidate.is_file():
            return str(candidate)
    raise InvalidExampleError(
        f"video file {videos / video}.mp4 (or {videos / video}) does not exist; check the download is "
        "complete, or pass skip_invalid=True to skip its examples"
    )
