"""The visual-question-answering pieces shared by the BLIP and ALBEF VQA heads (LAVIS ``BlipVQA`` / ``AlbefVQA``).

Both heads encode the question (cross-attending the image) with ``text_encoder`` and decode answers with
``text_decoder``, a :class:`~vl_hub.layers.med.MedLMHeadModel` cross-attending the question states. They differ in
how the question is encoded and which start token the answers carry (BLIP ``[DEC]``, ALBEF ``[CLS]``); what is the
same lives here:

* :class:`VisualQuestionAnsweringOutput`, :class:`AnswerRankingOutput`: what ``forward`` and ``rank_answers`` return;
* :class:`QuestionAnsweringMixin`: the ``(n_answers, answer_weights)`` checks, the training-mode and decoding-mode
  answer-decoder calls, the output packing, the ``GenerationMixin`` plumbing and the batched answer-list ranking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput

from vl_hub.layers.med import MedLMHeadModel
from vl_hub.losses.lm import lm_loss

__all__ = ["AnswerRankingOutput", "QuestionAnsweringMixin", "VisualQuestionAnsweringOutput", "check_answer_list"]


# --------------------------------------------------------------------------- outputs


@dataclass
class VisualQuestionAnsweringOutput(ModelOutput):
    """Output of the VQA heads' ``forward`` (:class:`~vl_hub.models.blip.modeling_blip_vqa.BlipForQuestionAnswering`,
    :class:`~vl_hub.models.albef.modeling_albef_generation.AlbefForQuestionAnswering`).

    Attributes:
        loss: ``()`` training loss ``sum(answer_weights * answer_loss) / batch_size`` (LAVIS ``BlipVQA.forward``).
        answer_loss: ``(A,)`` per-answer label-smoothed loss summed over the answer tokens.
        logits: ``(A, La, vocab)`` answer-decoder logits (training), or ``(B', L, vocab)`` when decoding
            ``decoder_input_ids`` (generation); unshifted.
        labels: ``(A, La)`` answer ids with the start token first and ``[PAD]`` -> -100.
        question_states: ``(B, Lq, H)`` image-grounded question encoding.
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
    """Output of the VQA heads' ``rank_answers`` (LAVIS ``BlipVQA._rank_answers``, ``AlbefVQA.rank_answers``),
    ``k`` candidates.

    Attributes:
        pred_index: ``(B,)`` index into the answer list of the chosen answer.
        start_logits: ``(B, vocab)`` decoder logits of the first answer token after the start token.
        topk_ids: ``(B, k)`` answer-list indices of the candidates, by first-token probability (descending).
        topk_probs: ``(B, k)`` those probabilities.
        candidate_input_ids: ``(B, k, La)`` candidate answer ids (start token first).
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


# --------------------------------------------------------------------------- checks


def check_answer_list(answer_ids: torch.Tensor | None) -> None:
    """Raises unless ``answer_ids`` is a tokenized answer list ``(N, La)`` with ``La >= 2`` (start token + answer)."""
    if answer_ids is None or answer_ids.dim() != 2 or answer_ids.shape[1] < 2:
        shape = None if answer_ids is None else tuple(answer_ids.shape)
        raise ValueError(
            f"answer_ids must be the tokenized answer list (num_answers, length >= 2), got {shape}; tokenize "
            "the answer list with padding='longest'"
        )


# --------------------------------------------------------------------------- mixin


class QuestionAnsweringMixin:
    """What the BLIP and ALBEF VQA heads share, for a ``PreTrainedModel`` that also derives from
    ``GenerationMixin`` (listed after this mixin).

    The head provides ``text_encoder`` (question encoder), ``text_decoder`` (answer decoder, a
    :class:`~vl_hub.layers.med.MedLMHeadModel` cross-attending the question states), ``config.label_smoothing``,
    ``config.num_answer_candidates``, ``encode_question`` and ``generate_answers``.
    """

    text_encoder: nn.Module
    text_decoder: MedLMHeadModel

    def get_input_embeddings(self) -> nn.Embedding:
        """The question encoder's word embeddings ``(vocab, H)``."""
        return self.text_encoder.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replaces the question encoder's word embeddings."""
        self.text_encoder.embeddings.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        """The answer decoder's LM head (tied to the decoder's word embeddings)."""
        return self.text_decoder.cls.predictions.decoder

    # ------------------------------------------------------------------ question
    def _question(
        self,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        question_states: torch.Tensor | None,
        image_embeds: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(question_states (B, Lq, H), image_embeds)``: the given ``question_states`` (checked), else the head's
        ``encode_question`` of ``pixel_values`` (or ``image_embeds``) and the question ``input_ids (B, Lq)``."""
        if question_states is None:
            return self.encode_question(pixel_values, input_ids, attention_mask, image_embeds)
        hidden = self.config.text_config.hidden_size
        if question_states.dim() != 3 or question_states.shape[-1] != hidden:
            raise ValueError(
                f"question_states must be (batch, question tokens, {hidden}), got {tuple(question_states.shape)}"
            )
        return question_states, image_embeds

    @staticmethod
    def _continues_generation(
        cache: Cache | None, use_cache: bool | None, question_states: torch.Tensor | None
    ) -> bool:
        """Whether ``forward`` continues a generation (a non-empty cache in use), which needs ``question_states``."""
        cached = cache is not None and use_cache is not False and cache.get_seq_length() > 0
        if question_states is None and cached:
            raise ValueError("question_states must be given with a non-empty cache (continuing a generation)")
        return cached

    # ------------------------------------------------------------------ training
    @staticmethod
    def _check_answers(
        batch: int, total: int, n_answers: torch.Tensor | None, answer_weights: torch.Tensor | None
    ) -> torch.Tensor:
        """Validates the training answers' grouping; returns ``n_answers (B,)`` (default: one answer each)."""
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

    def _decode_training_answers(
        self,
        question_states: torch.Tensor,
        question_mask: torch.Tensor | None,
        n_answers: torch.Tensor,
        answer_ids: torch.Tensor,
        answer_attention_mask: torch.Tensor | None,
        output_attentions: bool,
        output_hidden_states: bool,
    ) -> tuple[ModelOutput, torch.Tensor | None]:
        """Decodes every answer against its question's states (repeated ``n_answers[b]`` times, question-major).

        Args:
            question_states: ``(B, Lq, H)``; question_mask: ``(B, Lq)`` padding mask or ``None``.
            n_answers: ``(B,)`` answers per question, summing to ``A``.
            answer_ids: ``(A, La)`` answers, start token first; answer_attention_mask: ``(A, La)``.
            output_attentions, output_hidden_states: per-layer decoder outputs.

        Returns:
            ``(decoder output (logits (A, La, vocab)), the repeated question mask (A, Lq) or None)``.
        """
        total = answer_ids.shape[0]
        states = question_states.repeat_interleave(n_answers.to(question_states.device), dim=0, output_size=total)
        mask = None
        if question_mask is not None:
            mask = question_mask.repeat_interleave(n_answers.to(question_mask.device), dim=0, output_size=total)
        decoder_out = self.text_decoder(
            input_ids=answer_ids,
            attention_mask=answer_attention_mask,
            encoder_hidden_states=states,
            encoder_attention_mask=mask,
            is_decoder=True,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        return decoder_out, mask

    @staticmethod
    def _weighted_answer_loss(
        answer_loss: torch.Tensor, answer_weights: torch.Tensor | None, batch: int
    ) -> torch.Tensor:
        """``sum(answer_weights * answer_loss) / batch`` (weights default 1): ``answer_loss (A,)`` -> ``()``."""
        weights = torch.ones_like(answer_loss) if answer_weights is None else answer_weights.to(answer_loss)
        return (weights * answer_loss).sum() / batch

    # ------------------------------------------------------------------ decoding
    def _decode_step(
        self,
        question_states: torch.Tensor,
        question_mask: torch.Tensor | None,
        decoder_input_ids: torch.Tensor,
        decoder_attention_mask: torch.Tensor | None,
        first_token: int | None,
        cache: Cache | None,
        use_cache: bool | None,
        logits_to_keep: int,
        output_attentions: bool,
        output_hidden_states: bool,
    ) -> ModelOutput:
        """One answer-decoder pass over ``decoder_input_ids (B', L)`` given ``question_states (B', Lq, H)`` (what
        ``generate_answers`` runs each step); ``first_token`` (when not ``None``) replaces position 0."""
        if decoder_input_ids.dim() != 2 or decoder_input_ids.shape[0] != question_states.shape[0]:
            raise ValueError(
                f"decoder_input_ids {tuple(decoder_input_ids.shape)} must be (batch={question_states.shape[0]}, "
                "length); repeat the question states per beam"
            )
        if first_token is not None:
            decoder_input_ids = decoder_input_ids.clone()
            decoder_input_ids[:, 0] = first_token
        return self.text_decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=question_states,
            encoder_attention_mask=question_mask,
            cache=cache,
            use_cache=use_cache,
            is_decoder=True,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            logits_to_keep=logits_to_keep,
        )

    @staticmethod
    def _vqa_output(
        loss: torch.Tensor | None,
        answer_loss: torch.Tensor | None,
        labels: torch.Tensor | None,
        question_states: torch.Tensor,
        image_embeds: torch.Tensor | None,
        decoder_out: ModelOutput | None,
        return_dict: bool,
    ) -> VisualQuestionAnsweringOutput | tuple:
        """Packs ``forward``'s results (the decoder's, when it ran) into a :class:`VisualQuestionAnsweringOutput`."""
        output = VisualQuestionAnsweringOutput(
            loss=loss,
            answer_loss=answer_loss,
            logits=None if decoder_out is None else decoder_out.logits,
            labels=labels,
            question_states=question_states,
            image_embeds=image_embeds,
            cache=None if decoder_out is None else decoder_out.cache,
            hidden_states=None if decoder_out is None else decoder_out.hidden_states,
            attentions=None if decoder_out is None else decoder_out.attentions,
            cross_attentions=None if decoder_out is None else decoder_out.cross_attentions,
        )
        return output if return_dict else output.to_tuple()

    # ------------------------------------------------------------------ generation
    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, **kwargs: Any) -> dict[str, Any]:
        """``GenerationMixin``'s inputs, with the generated ids as ``decoder_input_ids`` (the question is
        ``input_ids`` in ``forward``)."""
        inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        inputs["decoder_input_ids"] = inputs.pop("input_ids")
        if "attention_mask" in inputs:
            inputs["decoder_attention_mask"] = inputs.pop("attention_mask")
        return inputs

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.LongTensor | ModelOutput:
        """Same as ``generate_answers`` (``input_ids`` are the questions)."""
        return self.generate_answers(pixel_values, input_ids, attention_mask, **kwargs)

    # ------------------------------------------------------------------ ranking
    def _rank_answer_list(
        self,
        question_states: torch.Tensor,
        question_mask: torch.Tensor | None,
        answer_ids: torch.Tensor,
        answer_attention_mask: torch.Tensor,
        num_candidates: int | None,
        pad_token_id: int,
    ) -> AnswerRankingOutput:
        """The batched ranking of ``rank_answers``: first-token probabilities keep the top ``k`` answers, each is
        scored by its label-smoothed LM loss, the lowest wins. The start step runs once; its cache (question
        keys/values included) is repeated per candidate.

        Args:
            question_states: ``(B, Lq, H)``; question_mask: ``(B, Lq)`` or ``None`` (all attended).
            answer_ids: ``(N, La)`` the answer list, every row starting with the decoder's start token.
            answer_attention_mask: ``(N, La)``.
            num_candidates: ``k`` (default ``config.num_answer_candidates``), capped at ``N``.
            pad_token_id: ``[PAD]``, which carries no loss.

        Returns:
            :class:`AnswerRankingOutput`.
        """
        batch, n_list = question_states.shape[0], answer_ids.shape[0]
        k = min(self.config.num_answer_candidates if num_candidates is None else int(num_candidates), n_list)
        if k < 1:
            raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")

        start = self.text_decoder(
            input_ids=answer_ids[:1, :1].expand(batch, 1),
            encoder_hidden_states=question_states,
            encoder_attention_mask=question_mask,
            use_cache=True,
            is_decoder=True,
        )
        start_logits = start.logits[:, 0, :]
        first_token_probs = start_logits.softmax(dim=-1).index_select(1, answer_ids[:, 1])
        topk_probs, topk_ids = first_token_probs.topk(k, dim=1)

        cand_ids = answer_ids[topk_ids]  # (B, k, La)
        cand_mask = answer_attention_mask[topk_ids]
        cand_labels = cand_ids.masked_fill(cand_ids == pad_token_id, -100)
        cache = start.cache
        cache.batch_repeat_interleave(k)
        rest = self.text_decoder(
            input_ids=cand_ids.flatten(0, 1)[:, 1:],
            attention_mask=cand_mask.flatten(0, 1),
            # the question keys/values come from the cache; the states only fix the batch size
            encoder_hidden_states=question_states.repeat_interleave(k, dim=0),
            encoder_attention_mask=None if question_mask is None else question_mask.repeat_interleave(k, dim=0),
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
            question_states=question_states,
        )
