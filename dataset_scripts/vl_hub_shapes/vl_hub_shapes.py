"""vl_hub_shapes: coloured shapes drawn from a seed, one config per vl_hub task schema. No download."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data import synthetic
from vl_hub.data.builder_utils import VlHubBuilderConfig
from vl_hub.data.schemas import SCHEMA_TASKS, SCHEMAS

_CITATION = ""

_DESCRIPTION = """\
Synthetic vision-language data generated on the fly from a seed: 1-2 flat coloured shapes (5 colours x
4 shapes) on a white background, and short mp4 videos of one shape crossing the frame. Captions,
questions, statements and labels are computed from what was drawn, so a small model can learn them
from the pixels. One config per vl_hub task schema; vl-hub quickstart trains on it without any download.
"""

_HOMEPAGE = "https://github.com/vl-hub/vl_hub"

_LICENSE = "BSD-3-Clause (generated data)"

#: config name -> task schema (each config yields exactly that schema of vl_hub.data.schemas).
_TASKS = {task: task for task in SCHEMA_TASKS}

_VERSION = datasets.Version(f"1.0.{synthetic.GENERATOR_VERSION}")

_SPLITS = {
    datasets.Split.TRAIN: "num_train",
    datasets.Split.VALIDATION: "num_validation",
    datasets.Split.TEST: "num_test",
}


class VlHubShapesConfig(VlHubBuilderConfig):
    """Config of one task variant.

    Args:
        task: the task schema this config yields (a key of ``vl_hub.data.schemas.SCHEMAS``).
        num_train, num_validation, num_test: images (or videos) per split; questions, hypotheses and
            dialogue rounds multiply the row count (e.g. ``vqa`` has ``questions_per_image`` rows per image).
        seed: everything (layout, colours, questions) follows from it.
        image_size: square side in pixels (even, >= 32) of images and video frames.
        num_frames, fps: video length.
        questions_per_image: questions per image/video in ``vqa`` and ``video_qa``.
        dialog_rounds: rounds per dialogue in ``visual_dialog`` and ``video_dialog``.
        label_by: ``classification`` classes: ``"shape"`` (4 classes) or ``"colour"`` (5 classes).
    """

    def __init__(
        self,
        *args: Any,
        task: str = "image_text",
        num_train: int = 512,
        num_validation: int = 64,
        num_test: int = 64,
        seed: int = 0,
        image_size: int = 64,
        num_frames: int = 8,
        fps: int = 8,
        questions_per_image: int = 2,
        dialog_rounds: int = 3,
        label_by: str = "shape",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.task = task
        self.num_train = num_train
        self.num_validation = num_validation
        self.num_test = num_test
        self.seed = seed
        self.image_size = image_size
        self.num_frames = num_frames
        self.fps = fps
        self.questions_per_image = questions_per_image
        self.dialog_rounds = dialog_rounds
        self.label_by = label_by


class VlHubShapes(datasets.GeneratorBasedBuilder):
    """Synthetic coloured shapes in every vl_hub task schema (see ``VlHubShapesConfig``)."""

    VERSION = _VERSION
    BUILDER_CONFIG_CLASS = VlHubShapesConfig
    BUILDER_CONFIGS = [
        VlHubShapesConfig(name=task, task=task, version=_VERSION, description=SCHEMA_TASKS[task]) for task in SCHEMA_TASKS
    ]
    DEFAULT_CONFIG_NAME = "image_text"

    def _info(self) -> datasets.DatasetInfo:
        self._validate_config()
        task = self.config.task
        if task == "classification":
            features = SCHEMAS[task](synthetic.class_names(self.config.label_by))
        else:
            features = SCHEMAS[task]()
        return datasets.DatasetInfo(
            description=_DESCRIPTION, features=features, homepage=_HOMEPAGE, license=_LICENSE, citation=_CITATION
        )

    def _validate_config(self) -> None:
        c = self.config
        if c.task not in SCHEMAS:
            raise ValueError(f"vl_hub_shapes: unknown task {c.task!r}; valid: {', '.join(SCHEMAS)}")
        for attr in ("num_validation", "num_test"):
            if not isinstance(getattr(c, attr), int) or getattr(c, attr) < 0:
                raise ValueError(f"vl_hub_shapes: {attr} must be an int >= 0, got {getattr(c, attr)!r}")
        checks = {
            "num_train": (c.num_train, 1, "an int >= 1"),
            "image_size": (c.image_size, 32, "an even int >= 32"),
            "num_frames": (c.num_frames, 2, "an int >= 2"),
            "fps": (c.fps, 1, "an int >= 1"),
            "questions_per_image": (c.questions_per_image, 1, "an int >= 1"),
            "dialog_rounds": (c.dialog_rounds, 1, "an int >= 1"),
        }
        for attr, (value, low, allowed) in checks.items():
            if not isinstance(value, int) or value < low or (attr == "image_size" and value % 2):
                raise ValueError(f"vl_hub_shapes: {attr} must be {allowed}, got {value!r}")
        synthetic.class_names(c.label_by)  # raises for an unknown label_by

    def _media_root(self) -> Path:
        if self.config.data_dir:
            return Path(self.config.data_dir).expanduser().absolute()
        # beside the prepared configs, not inside one: all configs of a seed share the files
        return Path(self._cache_dir_root) / self.dataset_name / "_media"

    def _media(self, split: str) -> tuple[list[synthetic.Scene], list[str]]:
        c = self.config
        count = getattr(c, _SPLITS[split])
        kind, scenes = synthetic.scenes_for(c.task, c.seed, split, count, c.image_size)
        if kind == "video":
            key = synthetic.media_key(c.seed, c.image_size, c.num_frames, c.fps)
        else:
            key = synthetic.media_key(c.seed, c.image_size)
        folder = self._media_root() / key / kind / f"{split}-{count}"
        paths = synthetic.ensure_media(
            folder, scenes, "video" if kind == "video" else "image", c.image_size, c.num_frames, c.fps
        )
        return scenes, paths

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        generators = []
        for split, attr in _SPLITS.items():
            if getattr(self.config, attr) == 0:
                continue
            self._media(split)  # writes the files now, so that generation only reads them
            generators.append(datasets.SplitGenerator(name=split, gen_kwargs={"split": str(split)}))
        return generators

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        c = self.config
        scenes, paths = self._media(split)
        yield from synthetic.task_rows(
            c.task,
            split,
            scenes,
            paths,
            c.seed,
            questions_per_image=c.questions_per_image,
            dialog_rounds=c.dialog_rounds,
            label_by=c.label_by,
        )
