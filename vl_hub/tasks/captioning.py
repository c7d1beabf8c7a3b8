"""Image and video captioning (LAVIS ``CaptionTask`` with BLIP's ``BlipCaption``).

Training (LAVIS ``BlipCaption.forward``): each image (or video) row contributes one of its reference captions,
drawn with torch's global RNG (which the trainer seeds per batch, so the draw is reproducible); the text is
``prompt + pre_caption(caption)`` (prompt ``"a picture of "``), truncated to ``max_txt_len`` tokens; the labels
ignore ``[PAD]`` and the ``[DEC] + prompt`` positions, and the head returns the label-smoothed LM loss.

Evaluation (LAVIS ``CaptionTask.valid_step`` + COCO caption eval): beam search from the prompt (``num_beams=3,
max_len=20, min_len=5``; both lengths count the prompt tokens, as LAVIS passes them to ``generate``), the prompt
stripped from the decoded text, then :func:`vl_hub.metrics.caption_metrics` against every reference caption:
BLEU-1..4, METEOR (when Java is present; otherwise the reason lands in :attr:`CaptioningTask.unavailable_metrics`),
ROUGE-L and CIDEr (and SPICE with ``spice=True``). Scores are fractions, as pycocoevalcap returns them.

Video rows (``video_text`` schema) are decoded to ``num_frames`` frames (``frame_sampling`` at evaluation,
``train_frame_sampling`` in training) and fed as ``(B, T, 3, S, S)``; the BLIP head concatenates the frames' tokens.

Head contract (any family serving captioning): ``forward(pixel_values, input_ids, attention_mask, labels) -> .loss``
and ``generate(pixel_values, input_ids=<prompt ids>, num_beams, max_length, min_length) -> ids`` (prompt included).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from vl_hub.tasks import register_task
from vl_hub.tasks._task_utils import (
    ROW_INDEX,
    batch_pixels,
    capped_length,
    check_choice,
    check_int,
    check_mapping,
    evaluation_mode,
    evaluation_records,
    main_process_metrics,
    media_column,
    require_processor,
    resolve_options,
    split_unavailable,
)
from vl_hub.tasks.base import Task

__all__ = ["DEFAULT_PROMPT", "CaptioningTask", "caption_targets"]

#: LAVIS's captioning prompt (``BlipCaption`` / ``blip_caption`` text processor)
DEFAULT_PROMPT = "a picture of "


def caption_targets(input_ids: torch.Tensor, prompt_length: int, pad_token_id: int) -> torch.Tensor:
    """LAVIS's captioning labels: ``input_ids (B, L)`` with ``[PAD]`` and the first ``prompt_length`` positions
    (``[CLS]``/``[DEC]`` + prompt tokens) set to -100 -> ``(B, L)``."""
    labels = input_ids.masked_fill(input_ids == pad_token_id, -100)
    labels[:, :prompt_length] = -100
    return labels


@register_task
class CaptioningTask(Task):
    """Image / video captioning.

    Options (``task_options``):
        prompt: text put before every caption (default: the model's ``config.prompt``, else ``"a picture of "``).
        max_txt_len: training caption length in tokens, prompt included (default ``config.max_txt_len``; capped at
            the decoder's position limit).
        num_beams, max_len, min_len: beam search settings of evaluation (LAVIS: 3, 20, 5; lengths count the prompt).
        num_frames: frames per video; frame_sampling / train_frame_sampling: how they are picked at evaluation /
            in training (``vl_hub.processing.video.SAMPLING_MODES``).
        augment: training image augmentation (the processor's ``do_augment``).
        meteor, spice: compute METEOR (needs Java) / SPICE (needs Java and its models).
        generate_kwargs: extra keyword arguments of ``model.generate`` (e.g. ``{"repetition_penalty": 1.0}``).
    """

    name: ClassVar[str] = "captioning"
    schemas: ClassVar[tuple[str, ...]] = ("image_text", "video_text")
    families: ClassVar[dict[str, str]] = {"blip": "BlipForConditionalGeneration"}
    primary_metric: ClassVar[str] = "cider"

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        require_processor(self.name, processor)
        config = model.config
        opts = resolve_options(
            self.name,
            options,
            {
                "prompt": None,
                "max_txt_len": getattr(config, "max_txt_len", 40),
                "num_beams": 3,
                "max_len": 20,
                "min_len": 5,
                "num_frames": 8,
                "frame_sampling": "uniform",
                "train_frame_sampling": "random",
                "augment": True,
                "meteor": True,
                "spice": False,
                "generate_kwargs": {},
            },
        )
        from vl_hub.processing.video import SAMPLING_MODES

        prompt = opts["prompt"]
        if prompt is None:
            prompt = getattr(config, "prompt", None) or DEFAULT_PROMPT
        if not isinstance(prompt, str):
            raise TypeError(f"task 'captioning': option prompt must be a string, got {prompt!r}")
        self.prompt: str = prompt
        self.max_txt_len = capped_length(check_int(self.name, "max_txt_len", opts["max_txt_len"], 2), model)
        self.num_beams = check_int(self.name, "num_beams", opts["num_beams"], 1)
        self.max_len = check_int(self.name, "max_len", opts["max_len"], 2)
        self.min_len = check_int(self.name, "min_len", opts["min_len"], 0)
        if self.min_len > self.max_len:
            raise ValueError(f"task 'captioning': min_len={self.min_len} must be <= max_len={self.max_len}")
        self.num_frames = check_int(self.name, "num_frames", opts["num_frames"], 1)
        self.frame_sampling = check_choice(self.name, "frame_sampling", opts["frame_sampling"], SAMPLING_MODES)
        self.train_frame_sampling = check_choice(
            self.name, "train_frame_sampling", opts["train_frame_sampling"], SAMPLING_MODES
        )
        self.augment = bool(opts["augment"])
        self.meteor, self.spice = bool(opts["meteor"]), bool(opts["spice"])
        self.generate_kwargs = check_mapping(self.name, "generate_kwargs", opts["generate_kwargs"])

        tokenizer = processor.tokenizer
        prompt_ids = tokenizer(self.prompt, return_tensors="pt").input_ids  # [CLS] prompt [SEP]
        #: LAVIS ``prompt_length``: [CLS] (-> [DEC]) + the prompt's tokens
        self.prompt_length = int(prompt_ids.shape[1]) - 1
        if self.prompt_length >= self.max_txt_len:
            raise ValueError(
                f"task 'captioning': the prompt {self.prompt!r} takes {self.prompt_length} tokens, leaving no room "
                f"for a caption within max_txt_len={self.max_txt_len}"
            )
        if self.prompt_length >= self.max_len:
            raise ValueError(
                f"task 'captioning': max_len={self.max_len} counts the {self.prompt_length} prompt tokens; "
                "pass a larger max_len"
            )
        #: ``(1, P + 1)`` generation prompt as the tokenizer gives it; the head turns [CLS] into [DEC], drops [SEP]
        self._prompt_ids = prompt_ids
        self._pad_id = int(tokenizer.pad_token_id)
        #: metric name -> why it was not computed (e.g. METEOR without Java), filled by :meth:`evaluate`
        self.unavailable_metrics: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------------ training
    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> ``pixel_values`` ``(B, 3, S, S)`` / ``(B, T, 3, S, S)``, ``input_ids``, ``attention_mask`` and
        ``labels`` ``(B, L)`` (one random reference caption per row)."""
        column = media_column(rows, self.name)
        counts = []
        for row in rows:
            if not row["captions"]:
                raise ValueError(f"a {column} row ({row.get(column + '_id')!r}) has no captions; captioning needs at least one")
            counts.append(len(row["captions"]))
        # one draw per batch; the trainer seeds torch's RNG per batch, so the chosen captions are reproducible
        choice = (torch.rand(len(rows)) * torch.tensor(counts)).long().tolist()
        captions = [row["captions"][i] for row, i in zip(rows, choice, strict=True)]
        text = self.processor(
            text=captions, text_mode="caption", prompt=self.prompt, max_length=self.max_txt_len, return_tensors="pt"
        )
        pixels = batch_pixels(
            self.processor, rows, column, train=self.augment, num_frames=self.num_frames,
            sampling=self.train_frame_sampling,
        )
        return {
            "pixel_values": pixels,
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
            "labels": caption_targets(text["input_ids"], self.prompt_length, self._pad_id),
        }

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": label-smoothed LM loss}`` of the head."""
        out = model(
            pixel_values=batch["pixel_values"],
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
        return {"loss": out.loss}

    # ------------------------------------------------------------------------------------------------ evaluation
    def collate_eval(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Rows -> ``pixel_values`` (no augmentation, ``frame_sampling``), ``row_index`` and ``references``."""
        column = media_column(rows, self.name)
        return {
            "pixel_values": batch_pixels(
                self.processor, rows, column, train=False, num_frames=self.num_frames, sampling=self.frame_sampling
            ),
            "row_index": [int(row.get(ROW_INDEX, -1)) for row in rows],
            "ids": [str(row.get(column + "_id", "")) for row in rows],
            "references": [list(row["captions"]) for row in rows],
        }

    def generate_captions(self, model: torch.nn.Module, pixel_values: torch.Tensor) -> list[str]:
        """Captions of ``pixel_values`` ``(B, 3, S, S)`` / ``(B, T, 3, S, S)`` with the task's beam settings,
        prompt removed (LAVIS ``BlipCaption.generate``)."""
        batch = pixel_values.shape[0]
        prompt = self._prompt_ids.to(pixel_values.device).expand(batch, -1)
        ids = model.generate(
            pixel_values=pixel_values,
            input_ids=prompt,
            num_beams=self.num_beams,
            max_length=self.max_len,
            min_length=self.min_len,
            **self.generate_kwargs,
        )
        ids = getattr(ids, "sequences", ids)
        return self.processor.batch_decode(ids, skip_special_tokens=True, prompt=self.prompt or None)

    def predict(
        self,
        model: torch.nn.Module,
        dataset: Any,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> list[dict[str, Any]]:
        """Generated captions of every row: ``[{"id": image/video id, "caption": str, "references": [...]}]`` in
        row order (sharded across processes, gathered on all)."""
        if hasattr(dataset, "features"):
            self.check_dataset(dataset)

        def run(batch: dict[str, Any]) -> list[tuple[Any, ...]]:
            captions = self.generate_captions(model, batch["pixel_values"])
            return list(zip(batch["row_index"], batch["ids"], captions, batch["references"], strict=True))

        with evaluation_mode(model):
            records = evaluation_records(
                dataset, self.collate_eval, run, model, accelerator, batch_size, progress, desc="captioning"
            )
        return [{"id": r[1], "caption": r[2], "references": r[3]} for r in records]

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: Any,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """Generates a caption per row and returns ``bleu_1``..``bleu_4``, ``meteor``, ``rouge_l``, ``cider``
        (``spice`` on request); a metric that cannot run here is left out and explained in
        :attr:`unavailable_metrics`."""
        predictions = self.predict(model, dataset, accelerator, batch_size, progress)

        def compute() -> dict[str, float]:
            from vl_hub.metrics import caption_metrics

            scores = caption_metrics(
                [p["caption"] for p in predictions],
                [p["references"] for p in predictions],
                meteor=self.meteor,
                spice=self.spice,
            )
            return split_unavailable(scores, self.unavailable_metrics)

        return main_process_metrics(accelerator, compute)
