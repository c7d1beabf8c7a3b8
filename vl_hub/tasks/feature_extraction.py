"""Feature extraction: the embeddings of a whole dataset as a ``datasets.Dataset`` (LAVIS ``extract_features`` over a
dataset), for search indexes, linear probes or analysis.

One output row per input row, in order:

* the row's id (``image_id`` / ``video_id``), its ``captions`` (image_text / video_text) or ``label``
  (classification);
* ``image_feat``: ``E`` floats, the L2-normalised projected image feature (video: the mean of the frames' features,
  normalised) -- what ITC compares;
* ``text_feat``: one ``E``-float list per caption, L2-normalised projected text features;
* ``multimodal_feat`` (heads with an image-grounded text encoder: BLIP): one ``H``-float list per caption, the fused
  encoder's first (``[ENC]``) state of the image with that caption (LAVIS's multimodal feature, not projected).

Rows are sharded across processes and gathered in order; with ``output_dir`` the main process writes the result
with ``save_to_disk``. :meth:`FeatureExtractionTask.evaluate` extracts and reports ``num_rows`` and
``pair_similarity`` (mean cosine of each image with its captions; primary). There is no training for this task.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, ClassVar

import datasets
import numpy as np
import torch
import torch.nn.functional as F

from vl_hub.tasks import register_task
from vl_hub.tasks._head_calls import tokenize
from vl_hub.tasks._sharding import check_map_style, gather_rows, plan_shards, rows_of
from vl_hub.tasks._task_utils import (
    batch_pixels,
    check_int,
    evaluation_mode,
    model_device,
    require_processor,
    resolve_options,
)
from vl_hub.tasks.base import Task

__all__ = ["FeatureExtractionTask", "extract_features"]

_MODES = ("image", "text", "multimodal")

_DEFAULTS: dict[str, Any] = {
    "modes": None,  # subset of image / text / multimodal; None: every feature the head has
    "num_frames": 8,  # frames per video (video_text rows)
    "max_txt_len": None,  # truncation length in tokens; None: the processor's default
}


def _has_fusion(model: torch.nn.Module) -> bool:
    return callable(getattr(model, "encode_multimodal", None)) and callable(getattr(model, "encode_images", None))


@register_task
class FeatureExtractionTask(Task):
    """Embeddings of every row of a dataset. Options: ``modes`` (subset of image / text / multimodal),
    ``num_frames``, ``max_txt_len``."""

    name: ClassVar[str] = "feature_extraction"
    schemas: ClassVar[tuple[str, ...]] = ("image_text", "video_text", "classification")
    families: ClassVar[dict[str, str]] = {
        "albef": "AlbefModel", "alpro": "AlproModel", "blip": "BlipModel", "clip": "ClipModel"
    }
    primary_metric: ClassVar[str] = "pair_similarity"

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        self.options = resolve_options(self.name, options, _DEFAULTS)
        modes = self.options["modes"]
        if modes is None:
            modes = _MODES if _has_fusion(model) else ("image", "text")
        if isinstance(modes, str) or not modes or not set(modes) <= set(_MODES):
            raise ValueError(f"task {self.name!r}: option modes must be a non-empty subset of {list(_MODES)}, got {modes!r}")
        if "multimodal" in modes and not _has_fusion(model):
            raise ValueError(
                f"modes includes 'multimodal' but {type(model).__name__} has no image-grounded text encoder; "
                "use modes=['image', 'text']"
            )
        self.options["modes"] = tuple(modes)
        check_int(self.name, "num_frames", self.options["num_frames"], 1)
        require_processor(self.name, processor)

    # ------------------------------------------------------------------ no training
    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Not available: feature extraction does not train."""
        raise NotImplementedError(
            "feature_extraction has no training; train the model with another task (retrieval, pretrain) and extract "
            "its features with FeatureExtractionTask.extract"
        )

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Not available: feature extraction does not train."""
        return self.collate_train([])

    # ------------------------------------------------------------------ extraction
    def extract(
        self,
        model: torch.nn.Module,
        dataset: datasets.Dataset,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
        output_dir: str | os.PathLike[str] | None = None,
    ) -> datasets.Dataset:
        """Features of every row (see the module docstring), on every process; saved to ``output_dir`` (by the main
        process) when given."""
        from tqdm.auto import tqdm

        self.check_family(model)
        check_map_style(dataset, self.name)
        schema = self.check_dataset(dataset)
        media = "video" if schema == "video_text" else "image"
        modes = set(self.options["modes"])
        has_text = "captions" in dataset.column_names
        want_text = has_text and "text" in modes
        want_fused = has_text and "multimodal" in modes
        want_image = "image" in modes or want_fused
        captions = [list(c) for c in dataset["captions"]] if has_text else None
        device = accelerator.device if accelerator is not None else model_device(model)

        plan = plan_shards(len(dataset), batch_size, accelerator)
        media_rows = dataset.select_columns([media]) if want_image else None
        outputs: dict[str, list[torch.Tensor]] = {"image_feat": [], "text_feat": [], "multimodal_feat": []}
        with evaluation_mode(model):
            for start, stop in tqdm(plan.batches, desc=self.name, disable=not progress, dynamic_ncols=True):
                texts = [c for caps in captions[start:stop] for c in caps] if has_text else []
                if want_text or want_fused:
                    input_ids, attention_mask = (t.to(device) for t in tokenize(self.processor, texts, self.options["max_txt_len"]))
                if want_text:
                    outputs["text_feat"].append(F.normalize(model.get_text_features(input_ids, attention_mask).float(), dim=-1))
                if not want_image:
                    continue
                pixel_values = batch_pixels(
                    self.processor, rows_of(media_rows, start, stop), media, train=False,
                    num_frames=self.options["num_frames"], sampling="uniform",
                ).to(device)
                if want_fused:
                    tokens, feat = model.encode_images(pixel_values)
                    per_row = torch.tensor([len(c) for c in captions[start:stop]], device=device)
                    fused = model.encode_multimodal(tokens.repeat_interleave(per_row, dim=0), input_ids, attention_mask)
                    outputs["multimodal_feat"].append(fused[:, 0].float())
                else:
                    feat = model.get_image_features(pixel_values)
                if "image" in modes:
                    outputs["image_feat"].append(F.normalize(feat.float(), dim=-1))

        # text rows per process follow from the caption counts, known on every process
        text_counts = [0] * len(plan.counts)
        if has_text:
            ends = np.cumsum([0, *plan.counts])
            per_row = [len(c) for c in captions]
            text_counts = [sum(per_row[ends[r] : ends[r + 1]]) for r in range(len(plan.counts))]
        columns: dict[str, Any] = {}
        id_column = f"{media}_id"
        columns[id_column] = list(dataset[id_column])
        features: dict[str, datasets.features.FeatureType] = {id_column: datasets.Value("string")}
        if has_text:
            columns["captions"] = captions
            features["captions"] = datasets.List(datasets.Value("string"))
        else:
            columns["label"] = list(dataset["label"])
            features["label"] = dataset.features["label"]
        if outputs["image_feat"]:
            feat = gather_rows(accelerator, torch.cat(outputs["image_feat"]), plan.counts).cpu().numpy()
            columns["image_feat"] = list(feat)
            features["image_feat"] = datasets.List(datasets.Value("float32"))
        for name, values in (("text_feat", outputs["text_feat"]), ("multimodal_feat", outputs["multimodal_feat"])):
            if values:
                flat = gather_rows(accelerator, torch.cat(values), text_counts).cpu().numpy()
                bounds = np.cumsum([0, *[len(c) for c in captions]])
                columns[name] = [flat[a:b] for a, b in itertools.pairwise(bounds)]
                features[name] = datasets.List(datasets.List(datasets.Value("float32")))
        result = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
        if output_dir is not None and (accelerator is None or accelerator.is_main_process):
            result.save_to_disk(os.fspath(output_dir))
        return result

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: datasets.Dataset,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """Extracts the features and reports ``num_rows`` and, when rows have captions and both image and text
        features were extracted, ``pair_similarity``: the mean cosine of every (image, own caption) pair."""
        result = self.extract(model, dataset, accelerator, batch_size, progress)
        metrics = {"num_rows": float(len(result))}
        if "image_feat" in result.column_names and "text_feat" in result.column_names:
            table = result.with_format("numpy")
            counts = np.array([len(caps) for caps in result["captions"]])
            texts = np.concatenate(list(table["text_feat"]))
            images = np.repeat(np.stack(list(table["image_feat"])), counts, axis=0)
            # mean over (image, own caption) pairs, as retrieval counts them
            metrics["pair_similarity"] = float((texts * images).sum(axis=1).mean())
        return metrics


def extract_features(
    model: torch.nn.Module,
    processor: Any,
    dataset: datasets.Dataset,
    batch_size: int = 16,
    output_dir: str | os.PathLike[str] | None = None,
    accelerator: Any | None = None,
    progress: bool = True,
    **options: Any,
) -> datasets.Dataset:
    """One call: ``FeatureExtractionTask(model, processor, **options).extract(...)`` (see the module docstring)."""
    task = FeatureExtractionTask(model, processor, **options)
    return task.extract(model, dataset, accelerator, batch_size, progress, output_dir)
