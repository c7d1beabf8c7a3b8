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

from typing import Any, ClassVar

import torch
from transformers import GenerationConfig, GenerationMixin
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput

from vl_hub.losses.lm import lm_loss
from vl_hub.models._vqa import (
    AnswerRankingOutput,
    QuestionAnsweringMixin,
    VisualQuestionAnsweringOutput,
    check_answer_list,
)
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


# --------------------------------------------------------------------------- VQA


class BlipForQuestionAnswering(QuestionAnsweringMixin, BlipPreTrainedModel, GenerationMixin):
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
        cached = self._continues_generation(cache, use_cache, question_states)
        q_states, image_embeds = self._question(pixel_values, input_ids, attention_mask, question_states, image_embeds)
        q_mask = attention_mask
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
            answer_ids = _with_first_token(answer_input_ids, self._ids("bos_token_id"))
            labels = answer_ids.masked_fill(answer_ids == self._ids("pad_token_id"), -100)
            decoder_out, _ = self._decode_training_answers(
                q_states, q_mask, n_answers, answer_ids, answer_attention_mask, output_attentions, output_hidden_states
            )
            answer_loss = lm_loss(decoder_out.logits, labels, self.config.label_smoothing, reduction="none")
            loss = self._weighted_answer_loss(answer_loss, answer_weights, batch)
        elif decoder_input_ids is not None:
            decoder_out = self._decode_step(
                q_states, q_mask, decoder_input_ids, decoder_attention_mask,
                None if cached else self._ids("bos_token_id"),
                cache, use_cache, logits_to_keep, output_attentions, output_hidden_states,
            )
        return self._vqa_output(loss, answer_loss, labels, q_states, image_embeds, decoder_out, return_dict)

    # ------------------------------------------------------------------ generation
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
        check_answer_list(answer_ids)
        if answer_attention_mask is None:
            answer_attention_mask = (answer_ids != self._ids("pad_token_id")).long()
        check_text(answer_ids, answer_attention_mask, self.config.text_config, name="answer_ids")
        q_states, _ = self._question(pixel_values, input_ids, attention_mask, question_states, image_embeds)
        answer_ids = _with_first_token(answer_ids, self._ids("bos_token_id"))
        return self._rank_answer_list(
            q_states, attention_mask, answer_ids, answer_attention_mask, num_candidates, self._ids("pad_token_id")
        )
