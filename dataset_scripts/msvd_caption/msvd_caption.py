"""MSVD (Microsoft Research Video Description Corpus, a.k.a. YouTube2Text): 1,970 YouTube clips
with ~40 English descriptions each, in the standard 1200 / 100 / 670 split (one row per clip)."""

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
    require_data_dir,
    require_path,
)
from vl_hub.data.schemas import video_text_features
from vl_hub.data.video_builders import check_video, lavis_caption_examples, read_youtube_mapping

_NAME = "msvd_caption"

_CITATION = """\
@inproceedings{chen2011msvd,
  title     = {Collecting Highly Parallel Data for Paraphrase Evaluation},
  author    = {Chen, David L. and Dolan, William B.},
  booktitle = {Proceedings of the 49th Annual Meeting of the Association for Computational Linguistics (ACL)},
  pages     = {190--200},
  year      = {2011}
}
"""

_DESCRIPTION = """\
MSVD (Microsoft Research Video Description Corpus): 1,970 short YouTube clips, each described by
crowd workers in several languages (about 80k English sentences, ~41 per clip). Video captioning
and retrieval use the split of Venugopalan et al. / Yao et al.: clips vid1-vid1200 for training,
vid1201-vid1300 for validation and vid1301-vid1970 for testing (numbers from youtube_mapping.txt).
Each row is one clip with all its English descriptions.
"""

_HOMEPAGE = "https://www.cs.utexas.edu/users/ml/clamp/videoDescription/"

_LICENSE = "other"  # Microsoft Research Data License Agreement; the clips are YouTube excerpts

_TASKS = ["video_text"]

_INSTRUCTIONS = {
    "official": """\
Videos: https://www.cs.utexas.edu/users/ml/clamp/videoDescription/YouTubeClips.tar (1,970 .avi clips).
Descriptions: "Microsoft Research Video Description Corpus" (https://www.microsoft.com/en-us/download/details.aspx?id=52422),
the CSV widely mirrored as video_corpus.csv. Clip numbering: youtube_mapping.txt, shipped with
MSVD-QA (https://github.com/xudejing/video-question-answering) and YouTube2Text.
data_dir holds:
  video_corpus.csv          VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description
  youtube_mapping.txt       lines "<VideoID>_<Start>_<End> vid<N>"
  YouTubeClips/<VideoID>_<Start>_<End>.avi
""",
    "lavis": """\
LAVIS's re-packaged annotations with the MSVD clips:
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msvd/cap_train.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msvd/cap_val.json
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/msvd/cap_test.json
  videos: the .avi files of https://www.cs.utexas.edu/users/ml/clamp/videoDescription/YouTubeClips.tar
data_dir (LAVIS's msvd/ folder) holds:
  annotations/cap_{train,val,test}.json   [{"video": "<clip>.avi", "caption": str or [str], ...}]
  videos/<clip>.avi
""",
}

# split -> [first, last) clip number of youtube_mapping.txt
_OFFICIAL_SPLITS = {
    datasets.Split.TRAIN: (1, 1201),
    datasets.Split.VALIDATION: (1201, 1301),
    datasets.Split.TEST: (1301, 1971),
}
_LAVIS_SPLITS = {datasets.Split.TRAIN: "train", datasets.Split.VALIDATION: "val", datasets.Split.TEST: "test"}
_CSV_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")


class MsvdCaption(datasets.GeneratorBasedBuilder):
    """MSVD captioning: one row per clip with its English descriptions; the video is an absolute path."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(
            name="official", version=VERSION, description="video_corpus.csv + youtube_mapping.txt + YouTubeClips/."
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
            files = {
                "corpus": str(require_path(_NAME, data_dir / "video_corpus.csv", instructions)),
                "mapping": str(require_path(_NAME, data_dir / "youtube_mapping.txt", instructions)),
                "videos": str(require_path(_NAME, data_dir / "YouTubeClips", instructions)),
            }
            return [
                datasets.SplitGenerator(name=split, gen_kwargs={**files, "numbers": numbers, "annotation": None})
                for split, numbers in _OFFICIAL_SPLITS.items()
            ]
        videos = str(require_path(_NAME, data_dir / "videos", instructions))
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    "corpus": None,
                    "mapping": None,
                    "videos": videos,
                    "numbers": None,
                    "annotation": str(require_path(_NAME, data_dir / "annotations" / f"cap_{name}.json", instructions)),
                },
            )
            for split, name in _LAVIS_SPLITS.items()
        ]

    def _generate_examples(
        self,
        corpus: str | None,
        mapping: str | None,
        videos: str,
        numbers: tuple[int, int] | None,
        annotation: str | None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if annotation is not None:
            examples = lavis_caption_examples(Path(annotation), Path(videos))
            yield from guarded_examples(self.config, examples, where=annotation)
            return
        examples = _official_examples(Path(corpus), Path(mapping), Path(videos), numbers)
        yield from guarded_examples(self.config, examples, where=f"{mapping} [vid{numbers[0]}-vid{numbers[1] - 1}]")


def _english_descriptions(corpus: Path) -> dict[str, list[str]]:
    """English descriptions of ``video_corpus.csv`` per clip name, in file order (empty ones dropped)."""
    descriptions: dict[str, list[str]] = defaultdict(list)
    with open(corpus, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        missing = [c for c in _CSV_COLUMNS if c not in header]
        if missing:
            raise InvalidExampleError(f"{corpus}: header {header} lacks column(s) {missing}")
        col = {name: header.index(name) for name in _CSV_COLUMNS}
        for line, row in enumerate(reader, start=2):
            if len(row) <= col["Language"] or row[col["Language"]] != "English":
                continue
            # an unquoted comma in the last column splits the description: join it back
            text = ",".join(row[col["Description"] :]).strip()
            try:
                clip = f"{row[col['VideoID']]}_{int(float(row[col['Start']]))}_{int(float(row[col['End']]))}"
            except ValueError as err:
                raise InvalidExampleError(f"{corpus}: line {line}: Start/End are not numbers ({err})") from err
            if text:
                descriptions[clip].append(text)
    return descriptions


def _official_examples(
    corpus: Path, mapping_path: Path, videos: Path, numbers: tuple[int, int]
) -> Iterator[tuple[str, Any]]:
    mapping = read_youtube_mapping(mapping_path)
    descriptions = _english_descriptions(corpus)
    first, stop = numbers
    for number in sorted(n for n in mapping if first <= n < stop):
        clip = mapping[number]

        def example(clip: str = clip) -> dict[str, Any]:
            if not descriptions.get(clip):
                raise InvalidExampleError(f"{corpus}: clip {clip} has no English description")
            return {"video_id": clip, "video": check_video(videos / f"{clip}.avi"), "captions": descriptions[clip]}

        yield clip, example
