"""Image-text and video-text retrieval (LAVIS ``RetrievalTask``): train a retrieval head, evaluate recall@K in both
directions.

Evaluation follows LAVIS ``compute_sim_matrix``: every image (video) and every caption of the split is encoded, the
ITC similarity ranks all pairs, and heads with an image-text matching (ITM) head re-score each query's ``k_test``
best candidates (``itm_logit + sim``; -100 elsewhere); heads without ITM (CLIP) rank by the similarity alone.
The ITM stage runs through :func:`vl_hub.retrieval_scoring.rerank_top_k`: candidates of several queries go through
one batched ITM forward (``pairs_per_call`` pairs at most) instead of one forward per query, and a pair in the top-k
of both directions is scored once.

Under Accelerate with ``P`` processes, the images and the captions are encoded in shards and gathered on every
process, then each process re-scores a contiguous ``1/P`` of the image queries and of the text queries; the rows
of the score matrices are gathered in order, so the metrics equal a one-process run.

Rows: the ``image_text`` schema (``image`` + ``captions``; text ``j`` of the split is caption ``c`` of image ``i`` in
row order, as LAVIS's ``img2txt`` / ``txt2img``), or ``video_text`` for :class:`VideoRetrievalTask` (videos decoded
with ``num_frames`` uniformly sampled frames: BLIP uses the frames' concatenated tokens for ITM and the mean frame
feature for ITC, CLIP the mean frame feature).

Metrics (:func:`vl_hub.metrics.retrieval_metrics`): ``txt_r1/5/10`` (image -> text), ``img_r1/5/10`` (text -> image),
``txt_r_mean``, ``img_r_mean``, mean and median ranks of both directions and ``r_mean`` (primary).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import datasets
import torch
import torch.nn.functional as F

from vl_hub.metrics import retrieval_metrics
from vl_hub.modeling_outputs import RetrievalScores
from vl_hub.retrieval_scoring import itc_similarity, length_bucketed_scorer, rerank_top_k
from vl_hub.tasks import register_task
from vl_hub.tasks._head_calls import (
    check_ramp_epochs,
    forward_losses,
    image_index,
    ramped_alpha,
    tokenize,
)
from vl_hub.tasks._sharding import (
    check_map_style,
    even_split,
    gather_rows,
    plan_shards,
    rows_of,
)
from vl_hub.tasks._task_utils import (
    batch_pixels,
    check_choice,
    check_int,
    evaluation_mode,
    media_column,
    model_device,
    require_processor,
    resolve_options,
)
from vl_hub.tasks.base import Task

__all__ = ["RetrievalTask", "VideoRetrievalTask", "caption_index"]

_DEFAULTS: dict[str, Any] = {
    # evaluation
    "k_test": None,  # candidates re-scored by ITM per query; None: the head's config.k_test (BLIP: 256), else 256
    "use_itm": True,  # re-rank with the ITM head when the head has one
    "pairs_per_call": 1024,  # ITM pairs per forward (memory bound of the re-ranking)
    "text_batch_size": 256,  # captions per text-encoder forward (LAVIS text_bs)
    "similarity_chunk_size": 4096,  # image rows per matmul of the similarity matrix
    "offload_image_embeds": False,  # keep every image's tokens on the CPU during re-ranking (saves device memory)
    "max_txt_len": None,  # truncation length in tokens; None: the processor's default (BLIP 35)
    # training
    "caption_sampling": "random",  # "random": one random caption per row and step; "first": always the first
    "train_augment": True,  # the processor's training transform (LAVIS blip_image_train)
    "alpha_ramp_epochs": 2,  # distillation weight ramped up over this many epochs (LAVIS); 0/None: config.alpha
    # video
    "num_frames": 8,  # frames per video (video_text rows)
    "train_frame_sampling": "random",  # frame sampling for training batches ("uniform" in evaluation)
}

_CAPTION_SAMPLING = ("random", "first")


def caption_index(captions: Sequence[Sequence[str]]) -> tuple[list[str], list[list[int]], list[int]]:
    """Flattens per-row captions into LAVIS's retrieval index.

    Args:
        captions: for each image (row), its captions.

    Returns:
        ``(texts, img2txt, txt2img)``: every caption in row order, each image's text indices, each text's image.
    """
    texts: list[str] = []
    img2txt: list[list[int]] = []
    txt2img: list[int] = []
    for i, caps in enumerate(captions):
        if not caps:
            raise ValueError(
                f"row {i} has no caption; retrieval evaluation needs at least one caption per image/video "
                "(drop such rows with dataset.filter(lambda r: len(r['captions']) > 0))"
            )
        img2txt.append(list(range(len(texts), len(texts) + len(caps))))
        txt2img.extend([i] * len(caps))
        texts.extend(caps)
    return texts, img2txt, txt2img


def _has_itm(model: torch.nn.Module) -> bool:
    """Whether the head can re-score pairs: ITM logits from image tokens (``encode_images`` + ``itm_match_logits``)."""
    return callable(getattr(model, "itm_match_logits", None)) and callable(getattr(model, "encode_images", None))


@register_task
class RetrievalTask(Task):
    """Image-text retrieval: ITC (+ ITM) training, recall@K evaluation in both directions.

    Options (``task_options``): ``k_test`` (ITM candidates per query; default the head's ``config.k_test``),
    ``use_itm`` (re-rank with ITM when the head has it), ``pairs_per_call`` (ITM batch), ``text_batch_size``,
    ``similarity_chunk_size``, ``offload_image_embeds``, ``max_txt_len``; training: ``caption_sampling``
    (``"random"``/``"first"`` caption per row), ``train_augment``, ``alpha_ramp_epochs`` (ramp of the
    distillation weight, read from the trainer's ``training_progress``); video: ``num_frames``,
    ``train_frame_sampling``.
    """

    name: ClassVar[str] = "retrieval"
    schemas: ClassVar[tuple[str, ...]] = ("image_text",)
    families: ClassVar[dict[str, str]] = {
        "albef": "AlbefForImageTextRetrieval", "blip": "BlipForImageTextRetrieval", "clip": "ClipModel"
    }
    primary_metric: ClassVar[str] = "r_mean"

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        self.options = resolve_options(self.name, options, _DEFAULTS)
        check_choice(self.name, "caption_sampling", self.options["caption_sampling"], _CAPTION_SAMPLING)
        for key, minimum in (("pairs_per_call", 1), ("text_batch_size", 1), ("similarity_chunk_size", 1), ("num_frames", 1)):
            check_int(self.name, key, self.options[key], minimum)
        if self.options["k_test"] is not None:
            check_int(self.name, "k_test", self.options["k_test"], 1)
        require_processor(self.name, processor)
        check_ramp_epochs(self.name, self.options["alpha_ramp_epochs"])

    # ------------------------------------------------------------------ training
    def _captions(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        counts = [len(row["captions"]) for row in rows]
        if min(counts) == 0:
            raise ValueError(f"row {counts.index(0)} of the batch has no caption; every training row needs one")
        if self.options["caption_sampling"] == "first":
            return [row["captions"][0] for row in rows]
        # torch's RNG: the trainer seeds it per batch, so the choice is reproducible
        draws = torch.randint(0, 2**62, (len(rows),)).tolist()
        return [row["captions"][d % n] for row, d, n in zip(rows, draws, counts, strict=True)]

    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> ``pixel_values (B, 3, S, S)`` (video ``(B, T, 3, S, S)``), one caption per row as ``input_ids`` /
        ``attention_mask (B, L)``, and ``idx (B,)``: an id per image so that its captions are ITC positives."""
        media = media_column(rows, self.name)
        pixel_values = batch_pixels(
            self.processor, rows, media, train=self.options["train_augment"],
            num_frames=self.options["num_frames"], sampling=self.options["train_frame_sampling"],
        )
        input_ids, attention_mask = tokenize(self.processor, self._captions(rows), self.options["max_txt_len"])
        idx = image_index([row[f"{media}_id"] for row in rows])
        return {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask, "idx": idx}

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The head's contrastive (+ matching) loss: ``{"loss", "itc", "itm"}`` for BLIP (ITC with ``idx`` positives,
        momentum distillation, ITM on hard negatives), ``{"loss"}`` for CLIP."""
        clamp = getattr(self.model, "clamp_logit_scale_", None)
        if callable(clamp):  # CLIP keeps exp(logit_scale) <= 100 after every optimiser step
            clamp()
        inputs = {k: batch[k] for k in ("pixel_values", "input_ids", "attention_mask")}
        return forward_losses(
            self.model, model, inputs, idx=batch.get("idx"), return_loss=True,
            alpha=ramped_alpha(self.model, self.training_progress, self.options["alpha_ramp_epochs"]),
        )

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: datasets.Dataset,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """Recall@K of both directions over the whole split (see the module docstring)."""
        check_map_style(dataset, self.name)
        self.check_dataset(dataset)
        captions = [list(c) for c in dataset["captions"]]
        _, img2txt, txt2img = caption_index(captions)
        scores = self.compute_scores(model, dataset, accelerator, batch_size, progress)
        return retrieval_metrics(scores.score_i2t, scores.score_t2i, img2txt, txt2img)

    def _k_test(self, model: torch.nn.Module) -> int:
        k = self.options["k_test"]
        if k is None:
            k = getattr(getattr(model, "config", None), "k_test", None) or 256
        return int(k)

    def _encode_media(
        self, model: torch.nn.Module, dataset: datasets.Dataset, accelerator: Any | None, batch_size: int,
        progress: bool, with_tokens: bool, device: torch.device,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(tokens (N, Lv, D) or None, feat (N, E))`` of every image/video, on every process."""
        from tqdm.auto import tqdm

        media = "video" if "video" in dataset.column_names else "image"
        only_media = dataset.select_columns([media])
        plan = plan_shards(len(dataset), batch_size, accelerator)
        tokens, feats = [], []
        store = torch.device("cpu") if self.options["offload_image_embeds"] else device
        for start, stop in tqdm(plan.batches, desc=f"{self.name}: {media}s", disable=not progress, dynamic_ncols=True):
            rows = rows_of(only_media, start, stop)
            pixel_values = batch_pixels(
                self.processor, rows, media, train=False, num_frames=self.options["num_frames"], sampling="uniform"
            ).to(device)
            if with_tokens:
                embeds, feat = model.encode_images(pixel_values)
                tokens.append(embeds.to(store))
            else:
                feat = F.normalize(model.get_image_features(pixel_values), dim=-1)
            feats.append(feat.float())
        feat = gather_rows(accelerator, torch.cat(feats), plan.counts)
        if not with_tokens:
            return None, feat
        # offloaded tokens travel through the device a few batches at a time, so they never all sit there
        chunk = 4 * batch_size if self.options["offload_image_embeds"] else None
        return gather_rows(accelerator, torch.cat(tokens), plan.counts, chunk_rows=chunk), feat

    def _encode_texts(
        self, model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
        accelerator: Any | None, progress: bool,
    ) -> torch.Tensor:
        """``(M, E)`` normalised features of every caption, on every process."""
        from tqdm.auto import tqdm

        plan = plan_shards(input_ids.shape[0], self.options["text_batch_size"], accelerator)
        feats = [
            F.normalize(model.get_text_features(input_ids[a:b], attention_mask[a:b]), dim=-1).float()
            for a, b in tqdm(plan.batches, desc=f"{self.name}: texts", disable=not progress, dynamic_ncols=True)
        ]
        return gather_rows(accelerator, torch.cat(feats), plan.counts)

    def compute_scores(
        self,
        model: torch.nn.Module,
        dataset: datasets.Dataset,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> RetrievalScores:
        """Score matrices of the whole split: ``score_i2t (N, M)``, ``score_t2i (M, N)`` and the ITC ``sim (N, M)``
        (``N`` rows, ``M`` captions in row order), identical on every process."""
        from tqdm.auto import tqdm

        self.check_family(model)
        check_map_style(dataset, self.name)
        texts, _, _ = caption_index([list(c) for c in dataset["captions"]])
        use_itm = bool(self.options["use_itm"]) and _has_itm(model)
        device = accelerator.device if accelerator is not None else model_device(model)
        with evaluation_mode(model):
            image_embeds, image_feat = self._encode_media(
                model, dataset, accelerator, batch_size, progress, use_itm, device
            )
            input_ids, attention_mask = tokenize(self.processor, texts, self.options["max_txt_len"])
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
            text_feat = self._encode_texts(model, input_ids, attention_mask, accelerator, progress)
            sim = itc_similarity(image_feat, text_feat, self.options["similarity_chunk_size"])
            if not use_itm:
                return RetrievalScores(score_i2t=sim, score_t2i=sim.t().contiguous(), sim=sim)

            image_queries, image_counts = even_split(sim.shape[0], accelerator)
            text_queries, text_counts = even_split(sim.shape[1], accelerator)
            k = self._k_test(model)
            bar = tqdm(
                total=(image_queries.stop - image_queries.start) * min(k, sim.shape[1])
                + (text_queries.stop - text_queries.start) * min(k, sim.shape[0]),
                desc=f"{self.name}: ITM pairs (at most)", disable=not progress, dynamic_ncols=True,
            )

            shared_kv = "image_key_values" in inspect.signature(model.itm_match_logits).parameters

            def prepare(unique: torch.Tensor) -> tuple[torch.Tensor, list | None]:
                images = image_embeds[unique.to(image_embeds.device)].to(device)
                # each distinct image's cross-attention keys/values projected once per call (BLIP)
                return images, model.text_encoder.project_encoder_states(images) if shared_kv else None

            def pair_logits(
                images: tuple, slot: torch.Tensor, text_index: torch.Tensor, length: int | None
            ) -> torch.Tensor:
                ids, mask = input_ids[text_index, :length], attention_mask[text_index, :length]
                bar.update(text_index.numel())
                if shared_kv:
                    return model.itm_match_logits(images[0], ids, mask, image_index=slot.to(device),
                                                  image_key_values=images[1])
                return model.itm_match_logits(images[0][slot.to(device)], ids, mask)

            local = rerank_top_k(
                sim, length_bucketed_scorer(pair_logits, attention_mask, prepare=prepare), k,
                self.options["pairs_per_call"],
                image_queries=image_queries, text_queries=text_queries,
            )
            bar.close()
            return RetrievalScores(
                score_i2t=gather_rows(accelerator, local.score_i2t, image_counts),
                score_t2i=gather_rows(accelerator, local.score_t2i, text_counts),
                sim=sim,
            )


@register_task
class VideoRetrievalTask(RetrievalTask):
    """Video-text retrieval on ``video_text`` rows: the same training and evaluation as :class:`RetrievalTask` on
    ``num_frames`` frames per video (ALPRO: its TimeSformer video features and VTM head; BLIP and CLIP: zero-shot from
    image checkpoints, frames' features averaged)."""

    name: ClassVar[str] = "video_retrieval"
    schemas: ClassVar[tuple[str, ...]] = ("video_text",)
    families: ClassVar[dict[str, str]] = {
        "alpro": "AlproForVideoTextRetrieval",
        "blip": "BlipForImageTextRetrieval",
        "clip": "ClipModel",
    }
