"""BLIP visual (and video) question answering (LAVIS ``blip_vqa.BlipVQA``) driven by transformers'
``GenerationMixin.generate``.

* :class:`BlipForQuestionAnswering`: image + question -> answer. ``visual_encoder``, ``text_encoder`` (question
  with ``[ENC]`` first, cross-attending the image) and ``text_decoder`` (answer decoder cross-attending the question
  states); answers are generated (:meth:`~BlipForQuestionAnswering.generate_answers`) or ranked from a list
  (:meth:`~BlipForQuestionAnswering.rank_answers`).

Answer generation follows LAVIS (transformers 4.26) as :mod:`vl_hub.models.blip.generation_utils` describes;
``max_length`` counts ``[DEC]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import GenerationConfig, GenerationMixin
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput

from vl_hub.losses.lm import lm_loss
from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.generation_utils import (
    _VQA_GENERATION_DEFAULTS,
    _default_generation_config,
    _generate,
    _required_id,
    _with_first_token,
)
from vl_hub.models.blip.inputs import check_text
from vl_hub.models.blip.modeling_blip import BlipPreTrainedModel

__all__ = ["AUTO_CLASSES", "AnswerRankingOutput", "BlipForQuestionAnswering", "VisualQuestionAnsweringOutput"]

#: head class name -> Auto classes that load it
AUTO_CLASSES: dict[str, tuple[str, ...]] = {
    "BlipForQuestionAnswering": ("AutoModelForVisualQuestionAnswering", "AutoModelForVideoQuestionAnswering"),
}


# --------------------------------------------------------------------------- outputs


@dataclass
class VisualQuestionAnsweringOutput(ModelOutput):
    """Output of :meth:`BlipForQuestionAnswering.forward`.

    Attributes:
        loss: ``()`` training loss ``sum(answer_weights * answer_loss) / batch_size`` (LAVIS ``BlipVQA.forward``).
        answer_loss: ``(A,)`` per-answer label-smoothed loss summed over the answer tokens.
        logits: ``(A, La, vocab)`` answer-decoder logits (training), or ``(B', L, vocab)`` when decoding
            ``decoder_input_ids`` (generation); unshifted.
        labels: ``(A, La)`` answer ids with ``[DEC]`` first and ``[PAD]`` -> -100.
        question_states: ``(B, Lq, H)`` image-grounded question encoding (``[ENC]`` first).
        image_embeds: ``(B, 1+N, D)`` vision tokens (video: frames concatenated), when computed.
        cache: the answer decoder's cache when caching.
        hidden_states, attentions, cross_attentions: per-layer answer-decoder outputs when asked for.
    """

    loss: torch.Tensor | None = None
    answer_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    question_states: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    cache: Cache | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor | None, ...] | None = None


@dataclass
class AnswerRankingOutput(ModelOutput):
    """Output of :meth:`BlipForQuestionAnswering.rank_answers` (LAVIS ``BlipVQA._rank_answers``), ``k`` candidates.

    Attributes:
        pred_index: ``(B,)`` index into the answer list of the chosen answer.
        start_logits: ``(B, vocab)`` decoder logits of the first answer token after ``[DEC]``.
        topk_ids: ``(B, k)`` answer-list indices of the candidates, by first-token probability (descending).
        topk_probs: ``(B, k)`` those probabilities.
        candidate_input_ids: ``(B, k, La)`` candidate answer ids (``[DEC]`` first).
        candidate_labels: ``(B, k, La)`` the same with ``[PAD]`` -> -100.
        candidate_loss: ``(B, k)`` label-smoothed LM loss summed over each candidate's tokens; the score is
            ``-candidate_loss`` and the lowest loss wins.
        question_states: ``(B, Lq, H)`` the question encoding the decoder attended.
    """

    pred_index: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    topk_ids: torch.Tensor | None = None
    topk_probs: torch.Tensor | None = None
    candidate_input_ids: torch.Tensor | None = None
    candidate_labels: torch.Tensor | None = None
    candidate_loss: torch.Tensor | None = None
    question_states: torch.Tensor | None = None


# --------------------------------------------------------------------------- VQA


class BlipForQuestionAnswering(BlipPreTrainedModel, GenerationMixin):
    """BLIP visual (and video) question answering (LAVIS ``BlipVQA``).

    Submodules (LAVIS names): ``visual_encoder`` (ViT), ``text_encoder`` (question encoder, ``[ENC]`` first,
    cross-attending the image tokens) and ``text_decoder`` (answer decoder cross-attending the question states;
    its LM head is tied to its word embeddings).

    Answers are generated (:meth:`generate_answers`, also :meth:`generate`) or ranked from a list
    (:meth:`rank_answers`, ``config.num_answer_candidates`` candidates). The default :attr:`generation_config`
    holds LAVIS's ``predict_answers`` defaults (``num_beams=3, max_length=10, min_length=1``, counting ``[DEC]``).
    """

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "text_decoder.cls.predictions.decoder.weight": "text_decoder.bert.embeddings.word_embeddings.weight",
        "text_decoder.cls.predictions.decoder.bias": "text_decoder.cls.predictions.bias",
    }

    def __init__(self, config: BlipConfig) -> None:
        super().__init__(config)
        self.visual_encoder = self.build_vision_encoder(config)
        self.text_encoder = self.build_text_encoder(config)
        # the answer decoder cross-attends the question states, whose width is the text width
        self.text_decoder = self.build_text_decoder(config, encoder_width=config.text_config.hidden_size)
        self.generation_config = _default_generation_config(config, _VQA_GENERATION_DEFAULTS)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        """The question encoder's word embeddings ``(vocab, H)``."""
        return self.text_encoder.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replaces the question encoder's word embeddings."""
        self.text_encoder.embeddings.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        """The answer decoder's LM head (tied to the decoder's word embeddings)."""
        return self.text_decoder.cls.predictions.decoder

    # ------------------------------------------------------------------ pieces
    def _ids(self, name: str) -> int:
        return _required_id(getattr(self.config.text_config, name), name)

    def encode_question(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """LAVIS ``BlipVQA.forward_encoder``: the question (position 0 -> ``[ENC]``) through the text encoder,
        cross-attending every image token.

        Args:
            pixel_values: ``(B, 3, H, W)`` or ``(B, T, 3, H, W)`` (video frames, tokens concatenated).
            input_ids: ``(B, Lq)`` question ids; attention_mask: ``(B, Lq)`` padding mask.
            image_embeds: ``(B, Lk, D)`` instead of ``pixel_values``.

        Returns:
            ``(question_states (B, Lq, H), image_embeds (B, Lk, D))``.
        """
        if image_embeds is None:
            image_embeds = self.get_image_embeds(pixel_values)
        check_text(input_ids, attention_mask, self.config.text_config, batch_size=image_embeds.shape[0])
        ids = _with_first_token(input_ids, self._ids("enc_token_id"))
        states = self.text_encoder(
            input_ids=ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds, mode="multimodal"
        ).last_hidden_state
        return states, image_embeds

    def _question(
        self,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        question_states: torch.Tensor | None,
        image_embeds: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        if question_states is not None:
            if question_states.dim() != 3 or question_states.shape[-1] != self.config.text_config.hidden_size:
                raise ValueError(
                    f"question_states must be (batch, question tokens, {self.config.text_config.hidden_size}), got "
                    f"{tuple(question_states.shape)}"
                )
            return question_states, attention_mask, image_embeds
        states, image_embeds = self.encode_question(pixel_values, input_ids, attention_mask, image_embeds)
        return states, attention_mask, image_embeds

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        answer_input_ids: torch.Tensor | None = None,
        answer_attention_mask: torch.Tensor | None = None,
        answer_weights: torch.Tensor | None = None,
        n_answers: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        question_states: torch.Tensor | None = None,
        question_attention_mask: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> VisualQuestionAnsweringOutput | tuple:
        """Training loss (LAVIS ``BlipVQA.forward``), answer-decoder steps (generation), or the question encoding.

        Modes, by what is given:

        * ``answer_input_ids``: training. The question states of question ``b`` are repeated ``n_answers[b]``
          times; each answer (position 0 -> ``[DEC]``, ``[PAD]`` labels -> -100) is decoded against them with the
          question padding mask; ``answer_loss`` is the label-smoothed loss summed per answer and
          ``loss = sum(answer_weights * answer_loss) / B``.
        * ``decoder_input_ids``: one decoder pass over answer tokens given the question states (what
          :meth:`generate_answers` runs each step; cross-attention mask ``question_attention_mask``, ``None`` = all
          question tokens, as LAVIS's generate mode).
        * neither: only ``question_states``.

        Args:
            pixel_values: ``(B, 3, H, W)`` or ``(B, T, 3, H, W)`` video frames.
            input_ids: ``(B, Lq)`` question ids (position 0 becomes ``[ENC]``); attention_mask: ``(B, Lq)``.
            answer_input_ids: ``(A, La)`` answer ids of all questions, question-major (tokenizer output;
                position 0 becomes ``[DEC]``); answer_attention_mask: ``(A, La)``.
            answer_weights: ``(A,)`` per-answer weights (default 1).
            n_answers: ``(B,)`` answers per question, summing to ``A`` (default: one each, ``A == B``).
            decoder_input_ids: ``(B', L)`` answer tokens to decode (``B'`` = ``B`` times beams);
                decoder_attention_mask: ``(B', P+L)``.
            question_states: ``(B', Lq, H)`` precomputed question encoding instead of pixels + question;
                question_attention_mask: ``(B', Lq)`` its padding mask for the decoder's cross-attention.
            image_embeds: ``(B, Lk, D)`` precomputed vision tokens instead of ``pixel_values``.
            cache, use_cache, logits_to_keep: answer-decoder cache and logits selection (decoding mode).
            output_attentions, output_hidden_states: per-layer answer-decoder outputs.
            return_dict: ``False`` returns a tuple.

        Returns:
            :class:`VisualQuestionAnsweringOutput`.
        """
        cached = cache is not None and use_cache is not False and cache.get_seq_length() > 0
        if question_states is None and cached:
            raise ValueError("question_states must be given with a non-empty cache (continuing a generation)")
        q_states, q_mask, image_embeds = self._question(
            pixel_values, input_ids, attention_mask, question_states, image_embeds
        )
        if question_states is not None and question_attention_mask is not None:
            q_mask = question_attention_mask
        loss = answer_loss = labels = None
        decoder_out = None
        if answer_input_ids is not None:
            if decoder_input_ids is not None:
                raise ValueError("pass answer_input_ids (training) or decoder_input_ids (decoding), not both")
            batch = q_states.shape[0]
            check_text(answer_input_ids, answer_attention_mask, self.config.text_config, name="answer_input_ids")
            n_answers = self._check_answers(batch, answer_input_ids.shape[0], n_answers, answer_weights)
            n_answers = n_answers.to(q_states.device)
            answer_ids = _with_first_token(answer_input_ids, self._ids("bos_token_id"))
            labels = answer_ids.masked_fill(answer_ids == self._ids("pad_token_id"), -100)
            total = answer_ids.shape[0]
            states = q_states.repeat_interleave(n_answers, dim=0, output_size=total)
            mask = None if q_mask is None else q_mask.repeat_interleave(n_answers, dim=0, output_size=total)
            decoder_out = self.text_decoder(
                input_ids=answer_ids,
                attention_mask=answer_attention_mask,
                encoder_hidden_states=states,
                encoder_attention_mask=mask,
                is_decoder=True,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
            )
            answer_loss = lm_loss(decoder_out.logits, labels, self.config.label_smoothing, reduction="none")
            weights = torch.ones_like(answer_loss) if answer_weights is None else answer_weights.to(answer_loss.dtype)
            loss = (weights * answer_loss).sum() / batch
        elif decoder_input_ids is not None:
            if decoder_input_ids.dim() != 2 or decoder_input_ids.shape[0] != q_states.shape[0]:
                raise ValueError(
                    f"decoder_input_ids {tuple(decoder_input_ids.shape)} must be (batch={q_states.shape[0]}, length); "
                    "repeat the question states per beam"
                )
            if not cached:
                decoder_input_ids = _with_first_token(decoder_input_ids, self._ids("bos_token_id"))
            decoder_out = self.text_decoder(
                input_ids=decoder_input_ids,
                attention_mask=decoder_attention_mask,
                encoder_hidden_states=q_states,
                encoder_attention_mask=q_mask,
                cache=cache,
                use_cache=use_cache,
                is_decoder=True,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                logits_to_keep=logits_to_keep,
            )
        output = VisualQuestionAnsweringOutput(
            loss=loss,
            answer_loss=answer_loss,
            logits=None if decoder_out is None else decoder_out.logits,
            labels=labels,
            question_states=q_states,
            image_embeds=image_embeds,
            cache=None if decoder_out is None else decoder_out.cache,
            hidden_states=None if decoder_out is None else decoder_out.hidden_states,
            attentions=None if decoder_out is None else decoder_out.attentions,
            cross_attentions=None if decoder_out is None else decoder_out.cross_attentions,
        )
        return output if return_dict else output.to_tuple()

    @staticmethod
    def _check_answers(
        batch: int, total: int, n_answers: torch.Tensor | None, answer_weights: torch.Tensor | None
    ) -> torch.Tensor:
        if n_answers is None:
            if total != batch:
                raise ValueError(
                    f"{total} answers for {batch} questions: pass n_answers (answers per question, summing to {total})"
                )
            n_answers = torch.ones(batch, dtype=torch.long)
        n_answers = torch.as_tensor(n_answers)
        if n_answers.shape != (batch,):
            raise ValueError(
                f"n_answers must have shape ({batch},) (one count per question), got {tuple(n_answers.shape)}"
            )
        if int(n_answers.sum()) != total or bool((n_answers < 0).any()):
            raise ValueError(
                f"n_answers {n_answers.tolist()} must be non-negative and sum to the {total} rows of answer_input_ids"
            )
        if answer_weights is not None and tuple(answer_weights.shape) != (total,):
            raise ValueError(
                f"answer_weights must have shape ({total},) (one per answer), got {tuple(answer_weights.shape)}"
            )
        return n_answers

    # ------------------------------------------------------------------ generation
    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, **kwargs: Any) -> dict[str, Any]:
        """``GenerationMixin``'s inputs, with the generated ids as ``decoder_input_ids`` (the question is
        ``input_ids`` in :meth:`forward`)."""
        inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        inputs["decoder_input_ids"] = inputs.pop("input_ids")
        if "attention_mask" in inputs:
            inputs["decoder_attention_mask"] = inputs.pop("attention_mask")
        return inputs

    @torch.no_grad()
    def generate_answers(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        question_states: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        beam_search: str = "lavis",
        **kwargs: Any,
    ) -> torch.LongTensor | ModelOutput:
        """Generated answers (LAVIS ``predict_answers(inference_method="generate")``) via ``GenerationMixin.generate``.

        The decoder starts from ``[DEC]`` and cross-attends the question states with an **all-ones** mask (padded
        question positions are attended, as in LAVIS); their keys/values are projected once per call.

        Args:
            pixel_values, input_ids, attention_mask: images/frames and questions (see :meth:`encode_question`).
            question_states: ``(B, Lq, H)`` precomputed question encoding instead.
            image_embeds: ``(B, Lk, D)`` precomputed vision tokens instead of ``pixel_values``.
            generation_config, beam_search: as in
                :meth:`~vl_hub.models.blip.modeling_blip_generation.BlipForConditionalGeneration.generate`.
            kwargs: ``max_length`` (LAVIS ``max_len``, counts ``[DEC]``), ``min_length`` (``min_len``),
                ``num_beams`` and other generation settings.

        Returns:
            ``(B * num_return_sequences, L')`` answer ids starting with ``[DEC]``, ``[PAD]`` after ``[SEP]``.
        """
        if question_states is None:
            question_states, _ = self.encode_question(pixel_values, input_ids, attention_mask, image_embeds)
        batch = question_states.shape[0]
        bos = torch.full((batch, 1), self._ids("bos_token_id"), dtype=torch.long, device=question_states.device)
        return _generate(self, bos, None, {"question_states": question_states}, generation_config, beam_search, kwargs)

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.LongTensor | ModelOutput:
        """Same as :meth:`generate_answers` (``input_ids`` are the questions)."""
        return self.generate_answers(pixel_values, input_ids, attention_mask, **kwargs)

    @torch.no_grad()
    def rank_answers(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        answer_ids: torch.Tensor | None = None,
        answer_attention_mask: torch.Tensor | None = None,
        num_candidates: int | None = None,
        question_states: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
    ) -> AnswerRankingOutput:
        """Picks each question's answer from a list (LAVIS ``BlipVQA._rank_answers``), batched over questions.

        1. The decoder reads ``[DEC]`` (cross-attending the question states with the question padding mask); the
           softmax of its logits at each answer's first token ranks the list; the top ``k`` are kept.
        2. Each candidate is scored by its label-smoothed LM loss summed over its tokens (``[PAD]`` ignored); the
           lowest loss wins. The ``[DEC]`` step of (1) is reused: its cache (question keys/values included) is
           repeated per candidate instead of being recomputed for ``B * k`` rows.

        Args:
            pixel_values, input_ids, attention_mask: images/frames and questions (or ``question_states``; then
                ``attention_mask`` is the questions' padding mask).
            answer_ids: ``(N, La)`` the answer list, tokenized with padding (position 0 becomes ``[DEC]``).
            answer_attention_mask: ``(N, La)``.
            num_candidates: ``k`` (default ``config.num_answer_candidates``), capped at ``N``.
            question_states: ``(B, Lq, H)`` precomputed question encoding.
            image_embeds: ``(B, Lk, D)`` precomputed vision tokens instead of ``pixel_values``.

        Returns:
            :class:`AnswerRankingOutput` (``pred_index (B,)`` indexes the answer list).
        """
        if answer_ids is None or answer_ids.dim() != 2 or answer_ids.shape[1] < 2:
            shape = None if answer_ids is None else tuple(answer_ids.shape)
            raise ValueError(
                f"answer_ids must be the tokenized answer list (num_answers, length >= 2), got {shape}; tokenize "
                "the answer list with padding='longest'"
            )
        if answer_attention_mask is None:
            answer_attention_mask = (answer_ids != self._ids("pad_token_id")).long()
        check_text(answer_ids, answer_attention_mask, self.config.text_config, name="answer_ids")
        q_states, q_mask, _ = self._question(pixel_values, input_ids, attention_mask, question_states, image_embeds)
        batch, n_answers = q_states.shape[0], answer_ids.shape[0]
        k = min(self.config.num_answer_candidates if num_candidates is None else int(num_candidates), n_answers)
        if k < 1:
            raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
        bos = self._ids("bos_token_id")
        answer_ids = _with_first_token(answer_ids, bos)

        start = self.text_decoder(
            input_ids=torch.full((batch, 1), bos, dtype=torch.long, device=q_states.device),
            encoder_hidden_states=q_states,
            encoder_attention_mask=q_mask,
            use_cache=True,
            is_decoder=True,
        )
        start_logits = start.logits[:, 0, :]
        first_token_probs = start_logits.softmax(dim=-1).index_select(1, answer_ids[:, 1])
        topk_probs, topk_ids = first_token_probs.topk(k, dim=1)

        cand_ids = answer_ids[topk_ids]  # (B, k, La)
        cand_mask = answer_attention_mask[topk_ids]
        cand_labels = cand_ids.masked_fill(cand_ids == self._ids("pad_token_id"), -100)
        cache = start.cache
        cache.batch_repeat_interleave(k)
        flat_ids = cand_ids.flatten(0, 1)
        rest = self.text_decoder(
            input_ids=flat_ids[:, 1:],
            attention_mask=cand_mask.flatten(0, 1),
            # the question keys/values come from the cache; the states only fix the batch size
            encoder_hidden_states=q_states.repeat_interleave(k, dim=0),
            encoder_attention_mask=None if q_mask is None else q_mask.repeat_interleave(k, dim=0),
            cache=cache,
            is_decoder=True,
        )
        logits = torch.cat([start.logits.repeat_interleave(k, dim=0), rest.logits], dim=1)
        cand_loss = lm_loss(logits, cand_labels.flatten(0, 1), self.config.label_smoothing, reduction="none")
        cand_loss = cand_loss.view(batch, k)
        pred_index = topk_ids.gather(1, cand_loss.argmin(dim=1, keepdim=True)).squeeze(1)
        return AnswerRankingOutput(
            pred_index=pred_index,
            start_logits=start_logits,
            topk_ids=topk_ids,
            topk_probs=topk_probs,
            candidate_input_ids=cand_ids,
            candidate_labels=cand_labels,
            candidate_loss=cand_loss,
            question_states=q_states,
        )
