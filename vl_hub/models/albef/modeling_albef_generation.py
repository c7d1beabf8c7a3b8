"""ALBEF visual question answering (LAVIS ``albef_vqa.AlbefVQA``): answer ranking, generation and the training loss.

The question (``[CLS]`` first) goes through the text encoder, whose fusion layers cross-attend the image; the answer
decoder (``text_decoder``: a causal BERT with cross-attention in *every* layer, ``fusion_layer=0``, and as many layers
as the encoder has fusion layers) cross-attends the question states with the question padding mask. Answers start
with ``[CLS]`` (ALBEF's tokenizer has no ``[DEC]``).

* :meth:`AlbefForQuestionAnswering.rank_answers` -- LAVIS ``rank_answers``, batched: first-token probabilities over
  the answer list keep the top ``k``; each candidate is scored by its label-smoothed LM loss; the ``[CLS]`` step is
  computed once and its cache repeated per candidate.
* :meth:`AlbefForQuestionAnswering.generate_answers` -- free-form answers through ``GenerationMixin.generate`` (LAVIS
  has no ALBEF generation; this uses the BLIP VQA generation plumbing, the question keys/values projected once per
  call).
* ``forward`` with answers -- the training loss. LAVIS trains ALBEF VQA only with momentum distillation
  (``(1 - alpha) * CE_0.1 + alpha * distillation`` per answer, the answer-weighted sum over the batch); with
  ``use_distill=False`` LAVIS's ``forward`` crashes, and here the loss is the label-smoothed CE alone (``alpha = 0``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from transformers import GenerationConfig, GenerationMixin
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput

from vl_hub.layers.med import MedLMHeadModel
from vl_hub.losses import distill_weight, lm_loss
from vl_hub.models._lavis_conversion import TRAINING_STATE_PATTERNS
from vl_hub.models._momentum import MomentumMixin
from vl_hub.models._vqa import (
    AnswerRankingOutput,
    QuestionAnsweringMixin,
    VisualQuestionAnsweringOutput,
    check_answer_list,
)
from vl_hub.models.albef.configuration_albef import AlbefConfig
from vl_hub.models.albef.modeling_albef import (
    AlbefPreTrainedModel,
    check_images,
)
from vl_hub.models.blip.generation_utils import (
    _VQA_GENERATION_DEFAULTS,
    _default_generation_config,
    _generate,
)

__all__ = ["AUTO_CLASSES", "AlbefForQuestionAnswering", "AnswerRankingOutput", "VisualQuestionAnsweringOutput"]

AUTO_CLASSES: dict[str, tuple[str, ...]] = {"AlbefForQuestionAnswering": ("AutoModelForVisualQuestionAnswering",)}

#: state of a pre-training / retrieval checkpoint the VQA head does not have
_NOT_VQA_STATE: tuple[str, ...] = (
    r"^(vision|text)_proj(_m)?\.",
    r"^itm_head\.",
    r"^(image|text|idx)_queue$",
    r"^queue_ptr$",
    r"^temp$",
    r"^text_encoder(_m)?\.cls\.",
)


def _lm_ties(prefix: str) -> dict[str, str]:
    return {
        f"{prefix}.cls.predictions.decoder.weight": f"{prefix}.bert.embeddings.word_embeddings.weight",
        f"{prefix}.cls.predictions.decoder.bias": f"{prefix}.cls.predictions.bias",
    }


class AlbefForQuestionAnswering(QuestionAnsweringMixin, MomentumMixin, AlbefPreTrainedModel, GenerationMixin):
    """ALBEF visual question answering (LAVIS ``AlbefVQA``).

    Submodules (LAVIS names): ``visual_encoder`` (ViT), ``text_encoder`` (question encoder: text layers, then fusion
    layers cross-attending the image), ``text_decoder`` (answer decoder, ``config.num_decoder_layers`` layers, each
    cross-attending the question states; LM head tied to its word embeddings). With ``config.use_distill`` also
    ``visual_encoder_m``, ``text_encoder_m``, ``text_decoder_m`` (EMA copies, no gradient).

    Answers are ranked from a list (:meth:`rank_answers`, ``config.num_answer_candidates`` candidates; what LAVIS's
    ``predict_answers`` does) or generated (:meth:`generate_answers`, also :meth:`generate`). The default
    :attr:`generation_config` generates at most 10 tokens (``[CLS]`` counted) with 3 beams, stopping at ``[SEP]``.
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = _NOT_VQA_STATE
    _momentum_names: ClassVar[tuple[tuple[str, str], ...]] = (
        ("visual_encoder", "visual_encoder_m"),
        ("text_encoder", "text_encoder_m"),
        ("text_decoder", "text_decoder_m"),
    )
    _tied_weights_keys: ClassVar[dict[str, str]] = _lm_ties("text_decoder")

    def __init__(self, config: AlbefConfig) -> None:
        super().__init__(config)
        self.visual_encoder = self.build_vision_encoder(config)
        self.text_encoder = self.build_text_encoder(config)
        self.text_decoder = self._build_answer_decoder(config)
        if config.use_distill:
            self.visual_encoder_m = self.build_vision_encoder(config)
            self.text_encoder_m = self.build_text_encoder(config)
            self.text_decoder_m = self._build_answer_decoder(config)
            self._tied_weights_keys = {**_lm_ties("text_decoder"), **_lm_ties("text_decoder_m")}
        self.generation_config = _default_generation_config(config, _VQA_GENERATION_DEFAULTS)
        self.post_init()
        self.copy_params()

    @staticmethod
    def _build_answer_decoder(config: AlbefConfig) -> MedLMHeadModel:
        # every layer cross-attends the question states, whose width is the text width (LAVIS fusion_layer=0)
        return AlbefPreTrainedModel.build_text_decoder(
            config,
            fusion_layer=0,
            num_hidden_layers=config.num_decoder_layers,
            encoder_width=config.text_config.hidden_size,
        )

    def momentum_names(self) -> tuple[tuple[str, str], ...]:
        """``(online, momentum)`` submodule names; empty without ``config.use_distill``."""
        return self._momentum_names if self.config.use_distill else ()

    @classmethod
    def lavis_unused_state_for(cls, config: AlbefConfig) -> tuple[str, ...]:
        """Without ``use_distill`` the head has no momentum copies: a checkpoint's ``*_m`` are dropped."""
        return () if config.use_distill else TRAINING_STATE_PATTERNS

    def _token_id(self, name: str) -> int:
        value = getattr(self.config.text_config, name)
        if value is None:
            raise ValueError(f"config.text_config.{name} is None; ALBEF VQA needs it (set it to the tokenizer's id)")
        return int(value)

    # ------------------------------------------------------------------ question
    def encode_question(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """LAVIS ``AlbefVQA.forward_encoder``: the question through every text-encoder layer, the fusion layers
        cross-attending every image token.

        Args:
            pixel_values: ``(B, 3, H, W)`` images (or ``image_embeds (B, 1+N, D)``).
            input_ids: ``(B, Lq)`` question ids (``[CLS]`` first); attention_mask: ``(B, Lq)`` padding mask.

        Returns:
            ``(question_states (B, Lq, H), image_embeds (B, 1+N, D))``.
        """
        if image_embeds is None:
            image_embeds = self.visual_encoder(check_images(pixel_values, self.config))
        self.check_text(input_ids, attention_mask, batch_size=image_embeds.shape[0])
        states = self.text_encoder(
            input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds, mode="multimodal"
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
        alpha: float | None = None,
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
        """Training loss (LAVIS ``AlbefVQA.forward``), answer-decoder steps (generation), or the question encoding.

        Modes, by what is given:

        * ``answer_input_ids``: training. The question states of question ``b`` are repeated ``n_answers[b]``
          times; each answer (``[CLS]`` first, ``[PAD]`` labels -> -100) is decoded against them with the question
          padding mask; ``answer_loss`` is the per-answer label-smoothed loss summed over its tokens -- with
          ``config.use_distill`` in training mode mixed with the momentum decoder's soft targets,
          ``(1 - alpha) * CE + alpha * sum_t(-sum_v log p * q_m)`` -- and ``loss = sum(answer_weights * answer_loss)
          / B``.
        * ``decoder_input_ids``: one decoder pass over answer tokens given the question states (what
          :meth:`generate_answers` runs each step; cross-attention mask ``question_attention_mask``).
        * neither: only ``question_states``.

        Args:
            pixel_values: ``(B, 3, H, W)``.
            input_ids: ``(B, Lq)`` question ids; attention_mask: ``(B, Lq)``.
            answer_input_ids: ``(A, La)`` answer ids of all questions, question-major (tokenizer output, ``[CLS]``
                first); answer_attention_mask: ``(A, La)``.
            answer_weights: ``(A,)`` per-answer weights (default 1).
            n_answers: ``(B,)`` answers per question, summing to ``A`` (default: one each, ``A == B``).
            alpha: distillation weight for this step (default ``config.alpha``; LAVIS ramps it over the first epoch).
            decoder_input_ids: ``(B', L)`` answer tokens to decode (``B'`` = ``B`` times beams);
                decoder_attention_mask: ``(B', P+L)``.
            question_states: ``(B', Lq, H)`` precomputed question encoding instead of pixels + question;
                question_attention_mask: ``(B', Lq)`` its padding mask for the decoder's cross-attention.
            image_embeds: ``(B, 1+N, D)`` precomputed vision tokens instead of ``pixel_values``.
            cache, use_cache, logits_to_keep: answer-decoder cache and logits selection (decoding mode).
            output_attentions, output_hidden_states: per-layer answer-decoder outputs.
            return_dict: ``False`` returns a tuple.

        Returns:
            :class:`VisualQuestionAnsweringOutput`.
        """
        self._continues_generation(cache, use_cache, question_states)
        given_states = question_states is not None
        q_states, image_embeds = self._question(pixel_values, input_ids, attention_mask, question_states, image_embeds)
        q_mask = question_attention_mask if given_states else attention_mask
        loss = answer_loss = labels = decoder_out = None
        if answer_input_ids is not None:
            if decoder_input_ids is not None:
                raise ValueError("pass answer_input_ids (training) or decoder_input_ids (decoding), not both")
            batch = q_states.shape[0]
            self.check_text(answer_input_ids, answer_attention_mask, name="answer_input_ids")
            n_answers = self._check_answers(batch, answer_input_ids.shape[0], n_answers, answer_weights)
            labels = answer_input_ids.masked_fill(answer_input_ids == self._token_id("pad_token_id"), -100)
            total = answer_input_ids.shape[0]
            decoder_out, mask = self._decode_training_answers(
                q_states, q_mask, n_answers, answer_input_ids, answer_attention_mask, output_attentions,
                output_hidden_states,
            )
            soft_labels, alpha = None, distill_weight(alpha, self.config.alpha, self.config.use_distill)
            if self.config.use_distill and self.training:
                soft_labels = self._momentum_targets(
                    pixel_values, input_ids, attention_mask, n_answers, answer_input_ids, answer_attention_mask, mask,
                    total,
                )
            answer_loss = lm_loss(
                decoder_out.logits, labels, self.config.label_smoothing, reduction="none",
                soft_labels=soft_labels, alpha=alpha if soft_labels is not None else 0.0,
            )
            loss = self._weighted_answer_loss(answer_loss, answer_weights, batch)
        elif decoder_input_ids is not None:
            decoder_out = self._decode_step(
                q_states, q_mask, decoder_input_ids, decoder_attention_mask, None,
                cache, use_cache, logits_to_keep, output_attentions, output_hidden_states,
            )
        return self._vqa_output(loss, answer_loss, labels, q_states, image_embeds, decoder_out, return_dict)

    @torch.no_grad()
    def _momentum_targets(
        self,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        n_answers: torch.Tensor,
        answer_input_ids: torch.Tensor,
        answer_attention_mask: torch.Tensor | None,
        answer_question_mask: torch.Tensor | None,
        total: int,
    ) -> torch.Tensor:
        """EMA step, then the momentum model's next-token distribution ``(A, La - 1, V)`` over each answer."""
        if pixel_values is None:
            raise ValueError("momentum distillation re-encodes the images: pass pixel_values, not question_states")
        self.momentum_update()
        image_embeds_m = self.visual_encoder_m(pixel_values)
        states_m = self.text_encoder_m(
            input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds_m, mode="multimodal"
        ).last_hidden_state
        states_m = states_m.repeat_interleave(n_answers.to(states_m.device), dim=0, output_size=total)
        logits_m = self.text_decoder_m(
            input_ids=answer_input_ids,
            attention_mask=answer_attention_mask,
            encoder_hidden_states=states_m,
            encoder_attention_mask=answer_question_mask,
            is_decoder=True,
        ).logits
        return F.softmax(logits_m[:, :-1], dim=-1)

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
        """Free-form answers via ``GenerationMixin.generate``: the decoder starts from ``[CLS]`` and cross-attends the
        question states with the question padding mask; their keys/values are projected once per call.

        Args:
            pixel_values, input_ids, attention_mask: images and questions (see :meth:`encode_question`); with
                ``question_states`` given, ``attention_mask`` is their padding mask.
            question_states: ``(B, Lq, H)`` precomputed question encoding instead.
            image_embeds: ``(B, 1+N, D)`` precomputed vision tokens instead of ``pixel_values``.
            generation_config: overrides :attr:`generation_config`.
            beam_search: ``"lavis"`` (transformers 4.26 beam ranking, as every LAVIS generation) or
                ``"transformers"``.
            kwargs: ``max_length`` (counts ``[CLS]``), ``min_length``, ``num_beams`` and other generation settings.

        Returns:
            ``(B * num_return_sequences, L')`` answer ids starting with ``[CLS]``, ``[PAD]`` after ``[SEP]``.
        """
        states, _ = self._question(pixel_values, input_ids, attention_mask, question_states, image_embeds)
        batch = states.shape[0]
        mask = attention_mask if attention_mask is not None else torch.ones(states.shape[:2], dtype=torch.long,
                                                                           device=states.device)
        if mask.shape != states.shape[:2]:
            raise ValueError(f"attention_mask {tuple(mask.shape)} must match the questions {tuple(states.shape[:2])}")
        start = torch.full((batch, 1), self._token_id("bos_token_id"), dtype=torch.long, device=states.device)
        model_kwargs = {"question_states": states, "question_attention_mask": mask}
        return _generate(self, start, None, model_kwargs, generation_config, beam_search, kwargs)

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
        """Picks each question's answer from a list (LAVIS ``AlbefVQA.rank_answers``), batched over questions.

        1. The decoder reads the answers' start token (``[CLS]``) cross-attending the question states with the
           question padding mask; the softmax of its logits at each answer's first token ranks the list; the top
           ``k`` are kept.
        2. Each candidate is scored by its label-smoothed LM loss summed over its tokens (``[PAD]`` ignored); the
           lowest loss wins. The start step of (1) is reused: its cache (question keys/values included) is repeated
           per candidate instead of being recomputed for ``B * k`` rows.

        Args:
            pixel_values, input_ids, attention_mask: images and questions (or ``question_states``; then
                ``attention_mask`` is the questions' padding mask).
            answer_ids: ``(N, La)`` the answer list tokenized with padding, ``[CLS]`` first.
            answer_attention_mask: ``(N, La)`` (default: ``answer_ids != [PAD]``).
            num_candidates: ``k`` (default ``config.num_answer_candidates``), capped at ``N``.
            question_states: ``(B, Lq, H)`` precomputed question encoding.
            image_embeds: ``(B, 1+N, D)`` precomputed vision tokens instead of ``pixel_values``.

        Returns:
            :class:`AnswerRankingOutput` (``pred_index (B,)`` indexes the answer list).
        """
        check_answer_list(answer_ids)
        pad = self._token_id("pad_token_id")
        if answer_attention_mask is None:
            answer_attention_mask = (answer_ids != pad).long()
        self.check_text(answer_ids, answer_attention_mask, name="answer_ids")
        if bool((answer_ids[:, 0] != answer_ids[0, 0]).any()):
            raise ValueError(
                "answer_ids must all start with the same token ([CLS], the decoder's start token); tokenize the answer "
                "list with the model's tokenizer (add_special_tokens=True)"
            )
        q_states, _ = self._question(pixel_values, input_ids, attention_mask, question_states, image_embeds)
        return self._rank_answer_list(q_states, attention_mask, answer_ids, answer_attention_mask, num_candidates, pad)
