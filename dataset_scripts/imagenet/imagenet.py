"""ImageNet-1k (ILSVRC-2012) validation set for (zero-shot) image classification."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    VlHubBuilderConfig,
    check_image,
    first_dir,
    guarded_examples,
    missing_data_error,
    require_data_dir,
)
from vl_hub.data.schemas import classification_features

_CITATION = """\
@article{russakovsky2015imagenet,
  title={{ImageNet} Large Scale Visual Recognition Challenge},
  author={Russakovsky, Olga and Deng, Jia and Su, Hao and Krause, Jonathan and Satheesh, Sanjeev and Ma, Sean and
          Huang, Zhiheng and Karpathy, Andrej and Khosla, Aditya and Bernstein, Michael and Berg, Alexander C and
          Fei-Fei, Li},
  journal={International Journal of Computer Vision},
  volume={115},
  number={3},
  pages={211--252},
  year={2015}
}
"""

_DESCRIPTION = """\
The ILSVRC-2012 (ImageNet-1k) validation set: 50,000 images, 50 per class, of 1,000 WordNet classes. Labels
follow the usual order (WordNet ids sorted, so label 0 is n01440764 "tench"); the class names are the
first WordNet lemma of each class (imagenet_classes.tsv beside this script), as used in zero-shot prompts.
"""

_HOMEPAGE = "https://www.image-net.org/challenges/LSVRC/2012/"

_LICENSE = "ImageNet terms of access (non-commercial research and education only)"

_TASKS = ["classification"]

_NAME = "imagenet"

_INSTRUCTIONS = """\
Download ILSVRC2012_img_val.tar from https://image-net.org/download-images.php (an account is needed) and lay it
out in data_dir in one of two ways:
  1. by class, as the usual valprep.sh script does (what LAVIS and torchvision's ImageFolder read):
     data_dir/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG, e.g. data_dir/val/n01751748/ILSVRC2012_val_00000001.JPEG
  2. flat, with the labels of the Kaggle "ImageNet Object Localization Challenge" (LOC_val_solution.csv):
     data_dir/LOC_val_solution.csv and the images in data_dir/ILSVRC/Data/CLS-LOC/val/ (Kaggle's layout),
     data_dir/val/ or data_dir/ILSVRC2012_img_val/
"""

_CLASSES_FILE = Path(__file__).resolve().parent / "imagenet_classes.tsv"
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
_FLAT_FOLDERS = ("ILSVRC/Data/CLS-LOC/val", "val", "ILSVRC2012_img_val")


def imagenet_classes() -> list[tuple[str, str]]:
    """The 1,000 ``(wnid, name)`` pairs in label order, read from ``imagenet_classes.tsv``."""
    classes = []
    with open(_CLASSES_FILE, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or line.startswith("wnid\t") or not line.strip():
                continue
            wnid, name, _lemmas = line.rstrip("\n").split("\t")
            classes.append((wnid, name))
    if len(classes) != 1000:
        raise RuntimeError(f"{_CLASSES_FILE} lists {len(classes)} classes, expected 1000; the file is damaged")
    return classes


class Imagenet(datasets.GeneratorBasedBuilder):
    """ImageNet-1k validation, ``classification`` schema with the 1,000 human-readable class names."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="ILSVRC-2012 validation set")]
    DEFAULT_CONFIG_NAME = "default"

    @property
    def manual_download_instructions(self) -> str:
        """Where to get the official files and how to lay them out in ``data_dir``."""
        return _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=classification_features([name for _, name in imagenet_classes()]),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir(_NAME, self.config.data_dir, _INSTRUCTIONS).absolute()
        solution = data_dir / "LOC_val_solution.csv"
        if solution.is_file():
            image_dir = first_dir(data_dir / f for f in _FLAT_FOLDERS)
            if image_dir is None:
                raise missing_data_error(_NAME, data_dir / _FLAT_FOLDERS[0], _INSTRUCTIONS)
            kwargs = {"image_dir": image_dir, "solution_path": solution}
        else:
            image_dir = data_dir / "val"
            if not image_dir.is_dir():
                raise missing_data_error(_NAME, image_dir, _INSTRUCTIONS)
            kwargs = {"image_dir": image_dir, "solution_path": None}
        return [datasets.SplitGenerator(name=datasets.Split.VALIDATION, gen_kwargs=kwargs)]

    def _generate_examples(self, image_dir: Path, solution_path: Path | None) -> Iterator[tuple[str, dict[str, Any]]]:
        label_of = {wnid: index for index, (wnid, _) in enumerate(imagenet_classes())}
        if solution_path is None:
            items = _by_class_folder(image_dir, label_of)
        else:
            items = _by_solution_csv(image_dir, solution_path, label_of)
        verify = self.config.verify_media

        def examples() -> Iterator[tuple[str, Any]]:
            for path, label in items:
                yield (
                    path.stem,
                    lambda path=path, label=label: {
                        "image_id": path.stem,
                        "image": check_image(path, verify=verify),
                        "label": label,
                    },
                )

        yield from guarded_examples(self.config, examples(), where=str(solution_path or image_dir))


def _by_class_folder(image_dir: Path, label_of: dict[str, int]) -> list[tuple[Path, int]]:
    """(image path, label) for ``image_dir/<wnid>/*``, sorted by file name (the official validation order)."""
    items = []
    for folder in image_dir.iterdir():
        if not folder.is_dir():
            continue
        if folder.name not in label_of:
            raise ValueError(
                f"{folder} is not named after one of the 1,000 ILSVRC-2012 WordNet ids (e.g. n01440764); "
                "the by-class layout needs val/<wnid>/ folders only"
            )
        label = label_of[folder.name]
        items.extend((path, label) for path in folder.iterdir() if path.suffix.lower() in _IMAGE_SUFFIXES)
    if not items:
        raise FileNotFoundError(f"{image_dir} holds no <wnid>/<image> files; see the layouts in the instructions")
    return sorted(items, key=lambda item: item[0].name)


def _by_solution_csv(image_dir: Path, solution_path: Path, label_of: dict[str, int]) -> list[tuple[Path, int]]:
    """(image path, label) from LOC_val_solution.csv (``ImageId,PredictionString``: the first token is the wnid)."""
    items = []
    with open(solution_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"ImageId", "PredictionString"} <= set(reader.fieldnames):
            raise InvalidExampleError(
                f"{solution_path}: expected the columns ImageId,PredictionString; got {reader.fieldnames}"
            )
        for line, row in enumerate(reader, start=2):
            tokens = row["PredictionString"].split()
            if not tokens or tokens[0] not in label_of:
                raise InvalidExampleError(
                    f"{solution_path}: line {line} has no ILSVRC-2012 WordNet id: {row['PredictionString']!r}"
                )
            items.append((image_dir / f"{row['ImageId']}.JPEG", label_of[tokens[0]]))
    return sorted(items, key=lambda item: item[0].name)
