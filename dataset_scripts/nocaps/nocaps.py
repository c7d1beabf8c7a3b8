"""nocaps (novel object captioning at scale): validation and test images from Open Images, by domain."""

from __future__ import annotations

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
    load_json,
    missing_data_error,
    require_data_dir,
    require_path,
)
from vl_hub.data.schemas import image_text_features

_CITATION = """\
@inproceedings{agrawal2019nocaps,
  title={nocaps: novel object captioning at scale},
  author={Agrawal, Harsh and Desai, Karan and Wang, Yufei and Chen, Xinlei and Jain, Rishabh and Johnson, Mark and
          Batra, Dhruv and Parikh, Devi and Lee, Stefan and Anderson, Peter},
  booktitle={IEEE/CVF International Conference on Computer Vision (ICCV)},
  year={2019}
}
"""

_DESCRIPTION = """\
nocaps evaluates captioning models on objects beyond COCO: 4,500 validation and 10,600 test images from
the Open Images V4 validation/test sets, each with 10 human captions (test captions are held by the
evaluation server). Every image is tagged in-domain (only COCO classes), near-domain or out-domain (only
novel classes). One row per image with all of its captions; test rows have no captions.
"""

_HOMEPAGE = "https://nocaps.org"

_LICENSE = "CC BY 2.0 (annotations and Open Images images, see https://nocaps.org and the Open Images licence)"

_TASKS = ["image_text"]

_NAME = "nocaps"

_INSTRUCTIONS = """\
Download into one folder (data_dir), from https://nocaps.org/download:
  - nocaps_val_4500_captions.json   (validation captions + image info)
  - nocaps_test_image_info.json     (test image info)
  - the images, as the nocaps site serves them: the "coco_url" of every image in those two files
    (https://s3.amazonaws.com/nocaps/val/<file_name>, .../nocaps/test/<file_name>) ->
    data_dir/val/<file_name> and data_dir/test/<file_name> (LAVIS's download_nocaps.py does exactly this).
    The Open Images folder names validation/ and test/ are accepted in place of val/ and test/.
"""

#: config name -> the "domain" value kept (None keeps all).
_DOMAINS = {"all": None, "in_domain": "in-domain", "near_domain": "near-domain", "out_domain": "out-domain"}

_VERSION = datasets.Version("1.0.0")

_SPLITS = {
    datasets.Split.VALIDATION: ("nocaps_val_4500_captions.json", ("val", "validation")),
    datasets.Split.TEST: ("nocaps_test_image_info.json", ("test",)),
}


class Nocaps(datasets.GeneratorBasedBuilder):
    """nocaps validation/test, ``image_text`` schema.

    Configs: ``all`` / ``in_domain`` / ``near_domain`` / ``out_domain`` (images of that domain only).
    """

    VERSION = _VERSION
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(name=name, version=_VERSION, description=f"nocaps images of domain {name}")
        for name in _DOMAINS
    ]
    DEFAULT_CONFIG_NAME = "all"

    @property
    def manual_download_instructions(self) -> str:
        """Where to get the official files and how to lay them out in ``data_dir``."""
        return _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=image_text_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir(_NAME, self.config.data_dir, _INSTRUCTIONS).absolute()
        generators = []
        for split, (file_name, folders) in _SPLITS.items():
            annotation_path = require_path(_NAME, data_dir / file_name, _INSTRUCTIONS)
            image_dir = first_dir(data_dir / f for f in folders)
            if image_dir is None:
                raise missing_data_error(_NAME, data_dir / folders[0], _INSTRUCTIONS)
            generators.append(
                datasets.SplitGenerator(
                    name=split, gen_kwargs={"annotation_path": annotation_path, "image_dir": image_dir}
                )
            )
        return generators

    def _generate_examples(self, annotation_path: Path, image_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        data = load_json(annotation_path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise InvalidExampleError(f"{annotation_path}: expected a COCO-style {{'images': [...], ...}} file")
        captions: dict[Any, list[str]] = {}
        for annotation in data.get("annotations", []):
            captions.setdefault(annotation["image_id"], []).append(annotation["caption"].strip())
        wanted_domain = _DOMAINS.get(self.config.name)
        verify = self.config.verify_media

        def examples() -> Iterator[tuple[str, Any]]:
            for number, image in enumerate(data["images"]):
                if wanted_domain is not None:
                    if "domain" not in image:
                        raise ValueError(
                            f"{annotation_path}: images[{number}] has no 'domain' field, so config "
                            f"{self.config.name!r} cannot select by domain; use config 'all' or the official file"
                        )
                    if image["domain"] != wanted_domain:
                        continue
                # The numeric "id" is what the nocaps evaluation server keys predictions by.
                image_id = str(image["id"])
                yield (
                    image_id,
                    lambda image=image, image_id=image_id: {
                        "image_id": image_id,
                        "image": check_image(image_dir / image["file_name"], verify=verify),
                        "captions": captions.get(image["id"], []),
                    },
                )

        yield from guarded_examples(self.config, examples(), where=str(annotation_path))
