"""Image classification with image-text heads (LAVIS ``multimodal_classification`` for CLIP on ImageNet): zero-shot
from class-name prompts, optionally fine-tuned on labelled images.

Zero-shot scoring: every class name is put into prompt templates (``"a picture of {}."``), each prompt is encoded by
the text tower and the class embedding is the renormalised mean of its templates' normalised features (CLIP's
prompt ensembling, :func:`vl_hub.models.clip.zero_shot.ensemble_text_classifier`); an image's class scores are the
cosine similarities of its ITC feature with the class embeddings. Heads with their own cached classifier
(``text_classifier``: CLIP's OpenAI templates by default) provide it; the others (BLIP, ALBEF) get it from
``get_text_features``. Heads with an image-text matching head can re-score each image's ``itm_rerank_k`` best classes
with ITM (``itm_logit + sim`` on the first template, LAVIS's retrieval rule).

Fine-tuning: the cross-entropy of the image-vs-class logits computed through the head's ``forward`` on the batch's
images and one prompt per class (the first template): CLIP's ``logits_per_image`` (``exp(logit_scale) * cos``) or
the ITC similarity divided by the head's temperature ``temp`` (BLIP, ALBEF), so both towers are fine-tuned as in
contrastive training, with the class prompts as the texts.

Metrics: ``top1`` (primary) and ``top5`` accuracy in percent (:func:`vl_hub.metrics.topk_accuracy`); rows labelled
-1 (unlabelled test splits) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import datasets
import torch
import torch.nn.functional as F

from vl_hub.metrics import topk_accuracy
from vl_hub.models.clip.zero_shot import (
    check_class_names,
    check_templates,
    ensemble_text_classifier,
    imagenet_classnames,
    openai_imagenet_templates,
)
from vl_hub.retrieval_scoring import rerank_top_k
from vl_hub.tasks import register_task
from vl_hub.tasks._head_calls import accepted_arguments, tokenize
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

__all__ = ["DEFAULT_TEMPLATES", "ClassificationTask"]

#: templates of heads without a classifier of their own (the prompt of LAVIS's BLIP zero-shot classification demo)
DEFAULT_TEMPLATES: tuple[str, ...] = ("a picture of {}.",)

_DEFAULTS: dict[str, Any] = {
    "class_names": None,  # list or "imagenet"; default: the names of the evaluated dataset's ClassLabel
    "templates": None,  # default: the head's own (CLIP: OpenAI's 80), else DEFAULT_TEMPLATES
    "itm_rerank_k": 0,  # re-score each image's k best classes with ITM (heads with ITM only); 0: off
    "pairs_per_call": 1024,  # ITM pairs per forward
    "text_batch_size": 256,  # prompts per text-encoder forward
    "topk": (1, 5),  # the k of the top-k accuracies
    "train_augment": True,  # the processor's training transform
}


@register_task
class ClassificationTask(Task):
    """Zero-shot (and prompt-fine-tuned) image classification; top-1/top-5 accuracy.

    Options: ``class_names`` (a list in label order, or ``"imagenet"``; default the evaluation dataset's label names;
    needed for training), ``templates``, ``itm_rerank_k``,
    ``pairs_per_call``, ``text_batch_size``, ``topk``, ``train_augment``.
    """

    name: ClassVar[str] = "classification"
    schemas: ClassVar[tuple[str, ...]] = ("classification",)
    families: ClassVar[dict[str, str]] = {
        "albef": "AlbefForImageTextRetrieval",
        "blip": "BlipForImageTextRetrieval",
        "clip": "ClipForZeroShotClassification",
    }
    primary_metric: ClassVar[str] = "top1"

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        self.options = resolve_options(self.name, options, _DEFAULTS)
        check_int(self.name, "itm_rerank_k", self.options["itm_rerank_k"], 0)
        check_int(self.name, "pairs_per_call", self.options["pairs_per_call"], 1)
        check_int(self.name, "text_batch_size", self.options["text_batch_size"], 1)
        topk = self.options["topk"]
        if not isinstance(topk, (list, tuple)) or not topk or not all(isinstance(k, int) and k >= 1 for k in topk):
            raise ValueError(f"task 'classification': option topk must be a list of positive ints, got {topk!r}")
        if isinstance(self.options["class_names"], str) and self.options["class_names"] == "imagenet":
            self.options["class_names"] = imagenet_classnames()
        if self.options["class_names"] is not None:
            self.options["class_names"] = check_class_names(self.options["class_names"])
        if self.options["templates"] is not None:
            self.options["templates"] = check_templates(self.options["templates"])
        require_processor(self.name, processor)
        self._train_prompts: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ classes and prompts
    def class_names_for(self, dataset: datasets.Dataset | None) -> tuple[str, ...]:
        """The ``class_names`` option, else the names of the dataset's ``label`` ClassLabel."""
        if self.options["class_names"] is not None:
            names = self.options["class_names"]
            labels = None if dataset is None else dataset.features["label"]
            if labels is not None and len(names) != labels.num_classes:
                raise ValueError(
                    f"class_names has {len(names)} names but the dataset's label has {labels.num_classes} classes; "
                    "give one name per label, in label order"
                )
            return names
        if dataset is None:
            raise ValueError("no class names: pass the class_names option or a dataset with a ClassLabel 'label'")
        return check_class_names(dataset.features["label"].names)

    def _templates(self, model: torch.nn.Module) -> tuple[str, ...] | None:
        """The templates option; ``None`` lets a head with its own classifier use its default templates."""
        if self.options["templates"] is not None:
            return self.options["templates"]
        return None if callable(getattr(model, "text_classifier", None)) else DEFAULT_TEMPLATES

    def class_embeddings(self, model: torch.nn.Module, class_names: Sequence[str]) -> torch.Tensor:
        """``(C, E)`` normalised prompt-ensembled class embeddings (no gradient)."""
        templates = self._templates(model)
        with torch.no_grad():
            text_classifier = getattr(model, "text_classifier", None)
            if callable(text_classifier):
                return text_classifier(list(class_names), self.processor, templates, self.options["text_batch_size"])
            device = model_device(model)

            def encode(texts: list[str]) -> torch.Tensor:
                ids, mask = tokenize(self.processor, texts)
                return model.get_text_features(ids.to(device), mask.to(device))

            return ensemble_text_classifier(encode, class_names, templates, self.options["text_batch_size"])

    def _first_prompts(self, model: torch.nn.Module, class_names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(C, L)`` ids and mask of each class's first template (what ITM and fine-tuning read)."""
        templates = self._templates(model)
        if templates is None:  # the head's own default (CLIP: OpenAI's templates): its first template
            templates = openai_imagenet_templates()
        return tokenize(self.processor, [templates[0].format(name) for name in class_names])

    # ------------------------------------------------------------------ training
    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> ``pixel_values (B, 3, S, S)``, ``labels (B,)`` and the class prompts ``class_input_ids`` /
        ``class_attention_mask (C, L)`` (one per class of the ``class_names`` option, the first template)."""
        names = self.options["class_names"]
        if names is None:
            raise ValueError(
                "task 'classification' trains on class-name prompts and needs the class_names option (the training "
                "labels' names in label order, or 'imagenet'): task_options: {class_names: [...]}"
            )
        if self._train_prompts is None:
            self._train_prompts = self._first_prompts(self.model, names)
        labels = torch.tensor([int(row["label"]) for row in rows], dtype=torch.long)
        if int(labels.min()) < 0 or int(labels.max()) >= len(names):
            raise ValueError(
                f"training labels must lie in [0, {len(names)}) (one per class name); got {labels.tolist()}"
            )
        pixel_values = batch_pixels(self.processor, rows, "image", train=self.options["train_augment"])
        return {
            "pixel_values": pixel_values,
            "labels": labels,
            "class_input_ids": self._train_prompts[0],
            "class_attention_mask": self._train_prompts[1],
        }

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": CE}`` of the image-vs-class-prompt logits (see the module docstring)."""
        clamp = getattr(self.model, "clamp_logit_scale_", None)
        if callable(clamp):
            clamp()
        out = model(
            pixel_values=batch["pixel_values"],
            input_ids=batch["class_input_ids"],
            attention_mask=batch["class_attention_mask"],
            **accepted_arguments(type(self.model).forward, {"match_head": "itc"}),
        )
        logits = out.get("logits_per_image")
        if logits is None:
            sim, temp = out.get("itc_sim"), getattr(self.model, "temp", None)
            if sim is None or temp is None:
                raise TypeError(
                    f"{type(self.model).__name__}.forward returned neither logits_per_image nor itc_sim (with a temp "
                    "parameter); it cannot be fine-tuned for classification"
                )
            with torch.no_grad():
                temp.clamp_(0.001, 0.5)  # LAVIS's ITC temperature range
            logits = sim / temp
        return {"loss": F.cross_entropy(logits, batch["labels"].to(logits.device))}

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: datasets.Dataset,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """Top-k accuracies over the labelled rows of the split."""
        logits, labels = self.compute_logits(model, dataset, accelerator, batch_size, progress)
        labelled = labels >= 0
        if not bool(labelled.any()):
            raise ValueError("every row of the split is unlabelled (label -1); evaluate on a labelled split")
        return topk_accuracy(logits[labelled], labels[labelled], ks=tuple(self.options["topk"]))

    def compute_logits(
        self,
        model: torch.nn.Module,
        dataset: datasets.Dataset,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores (N, C), labels (N,))`` of the whole split, on every process: cosine similarities to the class
        embeddings, or ``itm + sim`` on the ``itm_rerank_k`` best classes (-100 elsewhere) with ITM re-ranking."""
        from tqdm.auto import tqdm

        self.check_family(model)
        check_map_style(dataset, self.name)
        self.check_dataset(dataset)
        names = self.class_names_for(dataset)
        rerank = self.options["itm_rerank_k"] > 0
        if rerank and not callable(getattr(model, "itm_match_logits", None)):
            raise ValueError(
                f"itm_rerank_k={self.options['itm_rerank_k']} needs a head with image-text matching (BLIP, ALBEF); "
                f"{type(model).__name__} has none -- set itm_rerank_k=0"
            )
        device = accelerator.device if accelerator is not None else model_device(model)
        plan = plan_shards(len(dataset), batch_size, accelerator)
        with evaluation_mode(model):
            class_embeds = self.class_embeddings(model, names).to(device)
            if rerank:
                prompt_ids, prompt_mask = (t.to(device) for t in self._first_prompts(model, names))
            scores, labels = [], []
            for start, stop in tqdm(plan.batches, desc=self.name, disable=not progress, dynamic_ncols=True):
                rows = rows_of(dataset, start, stop)
                pixel_values = batch_pixels(self.processor, rows, "image", train=False).to(device)
                labels.append(torch.tensor([int(r["label"]) for r in rows], dtype=torch.long, device=device))
                if not rerank:
                    feat = F.normalize(model.get_image_features(pixel_values).float(), dim=-1)
                    scores.append(feat @ class_embeds.t())
                    continue
                embeds, feat = model.encode_images(pixel_values)
                sim = feat.float() @ class_embeds.t()

                def itm(image_index: torch.Tensor, class_index: torch.Tensor, embeds: torch.Tensor = embeds) -> torch.Tensor:
                    return model.itm_match_logits(embeds[image_index], prompt_ids[class_index], prompt_mask[class_index])

                scores.append(
                    rerank_top_k(
                        sim, itm, self.options["itm_rerank_k"], self.options["pairs_per_call"], text_queries=slice(0, 0)
                    ).score_i2t
                )
        return gather_rows(accelerator, torch.cat(scores), plan.counts), gather_rows(accelerator, torch.cat(labels), plan.counts)
