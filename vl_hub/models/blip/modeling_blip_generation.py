"""BLIP image (or video) captioning (LAVIS ``blip_caption.BlipCaption``) driven by transformers'
``GenerationMixin.generate``.

* :class:`BlipForConditionalGeneration`: image (or video frames) -> caption. ``visual_encoder`` (ViT) +
  ``text_decoder`` (MED decoder with cross-attention to the image tokens, tied LM head).

Generation reproduces LAVIS (which ran transformers 4.26), as :mod:`vl_hub.models.blip.generation_utils` describes:
the images are encoded once per call and their cross-attention keys/values projected once; beam search scores as
4.26 did (:func:`~vl_hub.models.blip.lavis_beam_search.lavis_beam_search`); ``max_length`` / ``min_length`` count
the prompt (``BlipCaption.generate(max_length=12)`` returns 12 ids, 4 of them the prompt ``[DEC] a picture of``).

The VQA head and its outputs live in :mod:`vl_hub.models.blip.modeling_blip_vqa` and the beam search in
:mod:`vl_hub.models.blip.lavis_beam_search`; this module re-exports them, so imports from here keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import GenerationConfig, GenerationMixin
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput

from vl_hub.layers.med_greedy import GreedyShape, StaticGreedyDecoder, static_greedy_unsupported
from vl_hub.losses.lm import lm_loss
from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.generation_utils import (
    _CAPTION_GENERATION_DEFAULTS,
    _STATIC_DECODERS,
    _default_generation_config,
    _generate,
    _required_id,
    _static_greedy_plan,
    _with_first_token,
)
from vl_hub.models.blip.inputs import check_text
from vl_hub.models.blip.lavis_beam_search import lavis_beam_search
from vl_hub.models.blip.modeling_blip import BlipPreTrainedModel
from vl_hub.models.blip.modeling_blip_vqa import (
    AnswerRankingOutput,
    BlipForQuestionAnswering,
    VisualQuestionAnsweringOutput,
)

__all__ = [
    "AUTO_CLASSES",
    "AnswerRankingOutput",
    "BlipForConditionalGeneration",
    "BlipForQuestionAnswering",
    "ImageCaptioningOutput",
    "VisualQuestionAnsweringOutput",
    "caption_labels",
    "caption_prompt_ids",
    "lavis_beam_search",
]

#: head class name -> Auto classes that load it (transformers 5 has no ``AutoModelForVision2Seq`` any more); the VQA
#: head declares its own in :mod:`~vl_hub.models.blip.modeling_blip_vqa`
AUTO_CLASSES: dict[str, tuple[str, ...]] = {
    "BlipForConditionalGeneration": ("AutoModelForImageTextToText",),
}


# --------------------------------------------------------------------------- outputs


@dataclass
class ImageCaptioningOutput(ModelOutput):
    """Output of :meth:`BlipForConditionalGeneration.forward`.

    Attributes:
        loss: ``()`` mean label-smoothed next-token loss over the non-ignored labels (when labels were given or
            ``return_loss=True``).
        logits: ``(B, L, vocab)`` decoder logits for every position (or the last ``logits_to_keep``), unshifted:
            position ``t`` predicts token ``t + 1``.
        labels: ``(B, L)`` the labels the loss used (LAVIS ``decoder_labels`` with ``return_loss=True``).
        image_embeds: ``(B, 1+N, D)`` vision tokens the decoder attended (video: ``(B, T*(1+N), D)``).
        cache: the decoder cache (a :class:`~vl_hub.layers.med.MedCache`) when caching.
        hidden_states, attentions, cross_attentions: per-layer decoder outputs when asked for.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    cache: Cache | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor | None, ...] | None = None


# --------------------------------------------------------------------------- token helpers


def caption_prompt_ids(tokenizer: Any, prompt: str, bos_token_id: int | None = None) -> list[int]:
    """The decoder prompt LAVIS generates from: ``tokenizer(prompt)`` with ``[CLS]`` -> ``[DEC]`` and the
    trailing ``[SEP]`` removed (``"a picture of "`` -> ``[DEC] a picture of``, 4 ids).

    Store the result in ``BlipConfig.prompt_input_ids``; its length is LAVIS's ``prompt_length`` (the number of
    leading label positions set to -100).

    Args:
        tokenizer: the BLIP BERT tokenizer (with ``[DEC]`` as ``bos_token``).
        prompt: the prompt text (``config.prompt``).
        bos_token_id: ``[DEC]``; defaults to ``tokenizer.bos_token_id``.
    """
    bos = tokenizer.bos_token_id if bos_token_id is None else bos_token_id
    if bos is None:
        raise ValueError(
            "the tokenizer has no bos_token ([DEC]); add it or pass bos_token_id=config.text_config.bos_token_id"
        )
    ids = list(tokenizer(prompt).input_ids)
    if len(ids) < 2:
        raise ValueError(f"tokenizer({prompt!r}) gave {ids}; expected [CLS] ... [SEP] (a BERT tokenizer)")
    return [int(bos)] + ids[1:-1]


def caption_labels(input_ids: torch.Tensor, prompt_length: int, pad_token_id: int) -> torch.Tensor:
    """LAVIS captioning targets: ``input_ids (B, L)`` with ``[PAD]`` and the first ``prompt_length`` positions
    (``[DEC]`` + prompt) set to -100 -> ``(B, L)``."""
    labels = input_ids.masked_fill(input_ids == pad_token_id, -100)
    labels[:, :prompt_length] = -100
    return labels


# --------------------------------------------------------------------------- captioning


class BlipForConditionalGeneration(BlipPreTrainedModel, GenerationMixin):
    """BLIP image (or video) captioning (LAVIS ``BlipCaption``).

    Submodules (LAVIS names): ``visual_encoder`` (ViT), ``text_decoder`` (MED decoder cross-attending the image
    tokens; ``text_decoder.cls.predictions.decoder`` is tied to the word embeddings).

    Config: ``config.prompt`` / ``config.prompt_input_ids`` (the decoder ids of the prompt, see
    :func:`caption_prompt_ids`; their count is LAVIS's ``prompt_length``), ``config.label_smoothing``. The default
    :attr:`generation_config` holds LAVIS's ``BlipCaption.generate`` defaults (``num_beams=3, max_length=30,
    min_length=10``; eos = ``[SEP]``, pad = ``[PAD]``).
    """

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "text_decoder.cls.predictions.decoder.weight": "text_decoder.bert.embeddings.word_embeddings.weight",
        "text_decoder.cls.predictions.decoder.bias": "text_decoder.cls.predictions.bias",
    }

    def __init__(self, config: BlipConfig) -> None:
        super().__init__(config)
        self.visual_encoder = self.build_vision_encoder(config)
        self.text_decoder = self.build_text_decoder(config)
        self.generation_config = _default_generation_config(config, _CAPTION_GENERATION_DEFAULTS)
        self.post_init()

    # ------------------------------------------------------------------ embeddings / prompt
    def get_input_embeddings(self) -> nn.Embedding:
        """The decoder's word embeddings ``(vocab, H)``."""
        return self.text_decoder.bert.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replaces the decoder's word embeddings (the LM head stays tied to them)."""
        self.text_decoder.bert.embeddings.word_embeddings = value
        self.text_decoder.tie_weights()

    def get_output_embeddings(self) -> nn.Linear:
        """The LM head's output projection (tied to the word embeddings)."""
        return self.text_decoder.cls.predictions.decoder

    @property
    def prompt_ids(self) -> list[int]:
        """Decoder ids of the prompt (``[DEC]`` + ``config.prompt`` tokens, no ``[SEP]``): ``config.prompt_input_ids``,
        or ``[DEC]`` alone when ``config.prompt`` is empty."""
        ids = getattr(self.config, "prompt_input_ids", None)
        if ids:
            return [int(i) for i in ids]
        if not self.config.prompt:
            return [_required_id(self.config.text_config.bos_token_id, "bos_token_id")]
        raise ValueError(
            f"config.prompt={self.config.prompt!r} but config.prompt_input_ids is not set, so the prompt tokens are "
            "unknown: set config.prompt_input_ids = caption_prompt_ids(tokenizer, config.prompt) (the processor "
            "does), or pass input_ids / labels explicitly"
        )

    @property
    def prompt_length(self) -> int:
        """LAVIS ``prompt_length``: the label positions the captioning loss ignores (4 for ``"a picture of "``)."""
        return len(self.prompt_ids)

    def caption_labels(self, input_ids: torch.Tensor) -> torch.Tensor:
        """LAVIS ``decoder_targets`` of ``input_ids (B, L)``: ``[PAD]`` and the prompt positions -> -100."""
        pad = _required_id(self.config.text_config.pad_token_id, "pad_token_id")
        return caption_labels(input_ids, self.prompt_length, pad)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_loss: bool = False,
        image_embeds: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> ImageCaptioningOutput | tuple:
        """Teacher-forced captioning (LAVIS ``BlipCaption.forward``) and the decoding step of :meth:`generate`.

        Args:
            pixel_values: ``(B, 3, H, W)`` images or ``(B, T, 3, H, W)`` video frames (tokens concatenated).
            input_ids: ``(B, L)`` caption ids as the tokenizer gives them (``[CLS] prompt caption [SEP] [PAD]...``);
                when the forward starts a sequence (nothing cached) position 0 is replaced by ``[DEC]``, as LAVIS
                does. During cached generation: the new tokens only.
            attention_mask: ``(B, L)`` padding mask (``(B, P+L)`` with ``P`` cached tokens); the decoder adds the
                causal mask. ``None``: no padding.
            labels: ``(B, L)`` targets (-100 = ignored), used unshifted as given; the loss shifts them.
            return_loss: compute LAVIS's labels (:meth:`caption_labels`: ``[PAD]`` and the ``prompt_length`` prompt
                positions -> -100) and the loss when ``labels`` is not given.
            image_embeds: ``(B, Lk, D)`` precomputed vision tokens instead of ``pixel_values`` (``generate`` passes
                them, repeated per beam).
            cache, use_cache: the decoder's KV cache (see :meth:`vl_hub.layers.med.MedModel.forward`); the image
                keys/values are stored at the first call and reused.
            logits_to_keep: only compute the last ``n`` positions' logits (0 = all; no loss then).
            output_attentions, output_hidden_states: per-layer decoder outputs.
            return_dict: ``False`` returns a tuple.

        Returns:
            :class:`ImageCaptioningOutput` (``loss`` = mean over non-ignored targets with
            ``config.label_smoothing``).
        """
        past_length = cache.get_seq_length() if cache is not None and use_cache is not False else 0
        if image_embeds is None:
            image_embeds = self.get_image_embeds(pixel_values)
        batch = image_embeds.shape[0]
        if past_length == 0:
            check_text(input_ids, attention_mask, self.config.text_config, batch_size=batch)
            input_ids = _with_first_token(input_ids, _required_id(self.config.text_config.bos_token_id, "bos_token_id"))
        elif input_ids is None or input_ids.shape[0] != batch:
            shape = None if input_ids is None else tuple(input_ids.shape)
            raise ValueError(f"input_ids {shape} must hold the new tokens of the {batch} cached sequences")
        if labels is None and return_loss:
            labels = self.caption_labels(input_ids)
        if labels is not None and (labels.shape != input_ids.shape or logits_to_keep):
            raise ValueError(
                f"labels {tuple(labels.shape)} must match input_ids {tuple(input_ids.shape)} and need logits for "
                f"every position (logits_to_keep=0, got {logits_to_keep})"
            )
        out = self.text_decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image_embeds,
            cache=cache,
            use_cache=use_cache,
            is_decoder=True,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            logits_to_keep=logits_to_keep,
        )
        loss = None
        if labels is not None:
            loss = lm_loss(out.logits, labels, label_smoothing=self.config.label_smoothing)
        output = ImageCaptioningOutput(
            loss=loss,
            logits=out.logits,
            labels=labels,
            image_embeds=image_embeds,
            cache=out.cache,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            cross_attentions=out.cross_attentions,
        )
        return output if return_dict else output.to_tuple()

    # ------------------------------------------------------------------ generation
    def _prompt(
        self, batch: int, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        text = self.config.text_config
        if input_ids is None:
            ids = torch.tensor(self.prompt_ids, dtype=torch.long, device=device)
            return ids.expand(batch, -1).contiguous(), None
        check_text(input_ids, attention_mask, text, batch_size=batch)
        input_ids = _with_first_token(input_ids.to(device), _required_id(text.bos_token_id, "bos_token_id"))
        attention_mask = None if attention_mask is None else attention_mask.to(device)
        sep = text.sep_token_id
        # tokenizer output ends with [SEP]: LAVIS generates from the prompt without it
        if input_ids.shape[1] > 1 and sep is not None and bool((input_ids[:, -1] == sep).all()):
            input_ids = input_ids[:, :-1]
            attention_mask = None if attention_mask is None else attention_mask[:, :-1]
        return input_ids, attention_mask

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        beam_search: str = "lavis",
        static_cache: bool | None = None,
        **kwargs: Any,
    ) -> torch.LongTensor | ModelOutput:
        """Captions (LAVIS ``BlipCaption.generate``) through ``GenerationMixin.generate``, or for plain greedy search
        through :class:`~vl_hub.layers.med_greedy.StaticGreedyDecoder` (same tokens; one CUDA graph per step).

        The images are encoded once; the decoder cache keeps the image keys/values for the whole call.

        Args:
            pixel_values: ``(B, 3, H, W)`` images or ``(B, T, 3, H, W)`` video frames.
            input_ids: ``(B, L)`` prompt ids; the tokenizer's ``[CLS] ... [SEP]`` form is accepted (``[CLS]`` ->
                ``[DEC]``, a trailing ``[SEP]`` column dropped). Default: :attr:`prompt_ids` (``config.prompt``).
            attention_mask: ``(B, L)`` mask of ``input_ids`` (left padding only, as for any decoder-only model).
            image_embeds: ``(B, Lk, D)`` precomputed vision tokens instead of ``pixel_values``.
            generation_config: overrides :attr:`generation_config`.
            beam_search: ``"lavis"`` (default; :func:`lavis_beam_search`, transformers 4.26 scoring, reproduces
                LAVIS's captions) or ``"transformers"`` (transformers 5 beam search).
            static_cache: ``None`` (default): plain greedy calls (``num_beams=1``, no sampling, no processors or extra
                outputs) of an eval-mode model on CUDA use the static decoder, everything else ``generate``;
                ``True``: use the static decoder on any device (error if the call is not plain greedy); ``False``:
                always ``GenerationMixin.generate``.
            kwargs: generation settings (``max_length``, ``min_length`` — both counting the prompt —
                ``num_beams``, ``do_sample``, ``top_p``, ``repetition_penalty``, ``num_return_sequences``,
                ``use_cache``, ...). Sampling defaults to LAVIS's ``top_p=0.9, repetition_penalty=1.1``.

        Returns:
            ``(B * num_return_sequences, L')`` ids including the prompt; rows that ended early are padded with
            ``[PAD]`` after ``[SEP]`` (or a ``ModelOutput`` when ``return_dict_in_generate``). Decode with
            ``tokenizer.batch_decode(ids, skip_special_tokens=True)`` and strip ``len(config.prompt)`` characters,
            or use :meth:`caption`.
        """
        if image_embeds is None:
            image_embeds = self.get_image_embeds(pixel_values)
        prompt, prompt_mask = self._prompt(image_embeds.shape[0], input_ids, attention_mask, image_embeds.device)
        decoder = self._static_greedy_decoder(prompt, image_embeds, generation_config, kwargs, static_cache)
        if decoder is not None:
            return decoder.decode(prompt, image_embeds, prompt_mask)
        return _generate(
            self, prompt, prompt_mask, {"image_embeds": image_embeds}, generation_config, beam_search, kwargs
        )

    def _static_greedy_decoder(
        self,
        prompt: torch.Tensor,
        image_embeds: torch.Tensor,
        generation_config: GenerationConfig | None,
        kwargs: dict[str, Any],
        static_cache: bool | None,
    ) -> StaticGreedyDecoder | None:
        """The static decoder serving this call (built or reused), or ``None`` for ``GenerationMixin.generate``."""
        if static_cache is False or (static_cache is None and image_embeds.device.type != "cuda"):
            return None
        plan = _static_greedy_plan(self, prompt.shape[1], generation_config, kwargs)
        reason = plan if isinstance(plan, str) else static_greedy_unsupported(self.text_decoder)
        if reason is not None:
            if static_cache:
                raise ValueError(
                    f"static_cache=True needs plain greedy decoding (num_beams=1, no sampling, no logits processors "
                    f"or extra outputs) of an eval-mode model, but {reason}; pass static_cache=None to use "
                    "GenerationMixin.generate for such calls"
                )
            return None
        max_length, min_length, eos, pad = plan
        weights = self.text_decoder.bert.embeddings.word_embeddings.weight
        shape = GreedyShape(
            batch_size=prompt.shape[0], prompt_length=prompt.shape[1], max_length=max_length, min_length=min_length,
            encoder_length=image_embeds.shape[1], eos_token_id=eos, pad_token_id=pad, dtype=weights.dtype,
            device=weights.device,
        )
        key = (shape, tuple(p.data_ptr() for p in self.text_decoder.parameters()))
        cached = _STATIC_DECODERS.get(self)
        if cached is None or cached[0] != key:
            cached = (key, StaticGreedyDecoder(self.text_decoder, shape))
            _STATIC_DECODERS[self] = cached
        return cached[1]

    @torch.no_grad()
    def caption(self, pixel_values: torch.Tensor, tokenizer: Any, **generate_kwargs: Any) -> list[str]:
        """Caption strings for ``pixel_values (B, 3, H, W)`` / ``(B, T, 3, H, W)``, decoded as LAVIS does
        (special tokens skipped, the prompt text removed).

        Args:
            pixel_values: images or video frames.
            tokenizer: the BLIP tokenizer (or a processor with a ``tokenizer`` attribute).
            generate_kwargs: passed to :meth:`generate`.
        """
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
        ids = self.generate(pixel_values, **generate_kwargs)
        ids = ids.sequences if isinstance(ids, ModelOutput) else ids
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
        # LAVIS cuts len(prompt) characters; with a caller's own prompt ids the config prompt does not apply
        cut = 0 if generate_kwargs.get("input_ids") is not None else len(self.config.prompt or "")
        return [text[cut:] for text in texts]
