"""Generative BLIP heads (LAVIS ``blip_caption.BlipCaption``, ``blip_vqa.BlipVQA``) driven by transformers'
``GenerationMixin.generate``.

* :class:`BlipForConditionalGeneration`: image (or video frames) -> caption. ``visual_encoder`` (ViT) +
  ``text_decoder`` (MED decoder with cross-attention to the image tokens, tied LM head).
* :class:`BlipForQuestionAnswering`: image + question -> answer. ``visual_encoder``, ``text_encoder`` (question
  with ``[ENC]`` first, cross-attending the image) and ``text_decoder`` (answer decoder cross-attending the question
  states); answers are generated (:meth:`~BlipForQuestionAnswering.generate_answers`) or ranked from a list
  (:meth:`~BlipForQuestionAnswering.rank_answers`).

Generation reproduces LAVIS (which ran transformers 4.26):

* a generate call encodes the images once; the decoder's cache (:class:`vl_hub.layers.med.MedCache`) keeps the
  cross-attention keys/values of the image (question) tokens from the first step on, so they are projected once per
  call, not once per generated token (neither LAVIS nor transformers' BLIP does this);
* beams see the encoder states ``repeat_interleave``'d per beam (transformers expands every model kwarg that way);
* beam search follows transformers 4.26's ``BeamSearchScorer`` (see :func:`lavis_beam_search`): finished
  hypotheses are normalised by their full length *including the prompt* and *excluding* ``[SEP]``, and the
  ``early_stopping=False`` heuristic compares with the best candidate of the step. transformers 5's own beam search
  normalises by the generated length only, which ranks finished beams differently; pass
  ``beam_search="transformers"`` to use it anyway;
* ``max_length`` / ``min_length`` count the prompt, exactly as LAVIS passes them to ``generate``: LAVIS does *not*
  add the prompt length (``BlipCaption.generate(max_length=12)`` returns 12 ids, 4 of them the prompt
  ``[DEC] a picture of``), and ``BlipVQA`` counts ``[DEC]``;
* nucleus sampling uses LAVIS's ``top_p=0.9`` and ``repetition_penalty=1.1`` (and 4.26's ``top_k=50``) unless
  given; greedy and beam search use ``repetition_penalty=1.0``.
"""

from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationConfig, GenerationMixin
from transformers.cache_utils import Cache
from transformers.generation import (
    GenerateBeamDecoderOnlyOutput,
    LogitsProcessorList,
    StoppingCriteriaList,
)
from transformers.utils import ModelOutput

from vl_hub.layers.med_greedy import GreedyShape, StaticGreedyDecoder, static_greedy_unsupported
from vl_hub.losses.lm import lm_loss
from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.inputs import check_text
from vl_hub.models.blip.modeling_blip import BlipPreTrainedModel

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

#: head class name -> Auto classes that load it (transformers 5 has no ``AutoModelForVision2Seq`` any more)
AUTO_CLASSES: dict[str, tuple[str, ...]] = {
    "BlipForConditionalGeneration": ("AutoModelForImageTextToText",),
    "BlipForQuestionAnswering": ("AutoModelForVisualQuestionAnswering", "AutoModelForVideoQuestionAnswering"),
}

BEAM_SEARCH_IMPLEMENTATIONS = ("lavis", "transformers")

# LAVIS BlipCaption.generate / BlipVQA.predict_answers defaults
_CAPTION_GENERATION_DEFAULTS = {"max_length": 30, "min_length": 10, "num_beams": 3}
_VQA_GENERATION_DEFAULTS = {"max_length": 10, "min_length": 1, "num_beams": 3}
# XBertLMHeadDecoder.generate_from_encoder's nucleus-sampling settings (top_k=50 came from transformers 4.26)
_SAMPLING_DEFAULTS = {"top_p": 0.9, "repetition_penalty": 1.1}


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


def _with_first_token(input_ids: torch.Tensor, token_id: int) -> torch.Tensor:
    """A copy of ``input_ids (B, L)`` whose position 0 is ``token_id`` (LAVIS replaces ``[CLS]`` this way)."""
    ids = input_ids.clone()
    ids[:, 0] = token_id
    return ids


def _required_id(value: int | None, name: str) -> int:
    if value is None:
        raise ValueError(f"config.text_config.{name} is None; the BLIP heads need it (set it to the tokenizer's id)")
    return int(value)


# --------------------------------------------------------------------------- LAVIS (transformers 4.26) beam search


def _merge_hypotheses(
    seqs: torch.Tensor,
    scores: torch.Tensor,
    lengths: torch.Tensor,
    new_seqs: torch.Tensor,
    new_scores: torch.Tensor,
    new_lengths: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keeps the ``K`` best of ``K`` kept + ``M`` new hypotheses per input (4.26 ``BeamHypotheses.add``).

    Shapes: ``seqs (B, K, T)``, ``scores``/``lengths (B, K)``; ``new_* (B, M, T)``/``(B, M)``. Empty or rejected
    entries carry score ``-inf``. The stable sort keeps an old hypothesis over a new one of equal score, as 4.26
    only adds a hypothesis that is strictly better than the worst kept one.
    """
    k = scores.shape[1]
    all_scores = torch.cat([scores, new_scores], dim=1)
    order = torch.sort(all_scores, dim=1, descending=True, stable=True).indices[:, :k]
    all_seqs = torch.cat([seqs, new_seqs], dim=1)
    seqs = all_seqs.gather(1, order[:, :, None].expand(-1, -1, all_seqs.shape[2]))
    return seqs, all_scores.gather(1, order), torch.cat([lengths, new_lengths], dim=1).gather(1, order)


def lavis_beam_search(
    model: GenerationMixin,
    input_ids: torch.LongTensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    **model_kwargs: Any,
) -> torch.LongTensor | GenerateBeamDecoderOnlyOutput:
    """Beam search with transformers 4.26's ``BeamSearchScorer`` semantics, vectorised over the batch.

    Pass it as ``model.generate(..., custom_generate=lavis_beam_search)`` (the BLIP heads do by default for
    beam search without sampling); ``generate`` prepares the inputs, processors and cache, then calls this loop.

    Differences from transformers 5's ``_beam_search`` that change results, all as in 4.26 (LAVIS):

    * a hypothesis finished by ``eos`` scores ``sum_logprobs / cur_len ** length_penalty`` where ``cur_len`` is
      the length *before* the eos token, prompt included; unfinished beams at ``max_length`` score
      ``sum_logprobs / max_length ** length_penalty``;
    * with ``early_stopping=False`` an input is done once it has ``num_beams`` hypotheses and the worst of them is
      at least ``best_candidate_score / cur_len ** length_penalty`` (the step's best candidate, eos or not);
    * finished rows are padded with ``pad_token_id`` after their eos.

    With a cache, the first step runs each prompt once instead of ``num_beams`` times (every tensor model kwarg whose
    first dimension is the expanded batch is sliced to one copy, as ``generate`` expanded them with
    ``repeat_interleave``) and the cache (image keys/values included) is then repeated per beam.

    Args:
        model: the model (``generate`` passes itself).
        input_ids: ``(B * num_beams, L)`` prompts, each repeated ``num_beams`` times.
        logits_processor, stopping_criteria, generation_config: as prepared by ``generate``.
        model_kwargs: the forward's kwargs (``cache``, ``attention_mask``, encoder states, ``use_cache``, ...).

    Returns:
        ``(B * num_return_sequences, L')`` ids, best first per input (or a ``GenerateBeamDecoderOnlyOutput`` with
        ``sequences_scores`` when ``return_dict_in_generate``).
    """
    config = generation_config
    for flag in ("output_scores", "output_logits", "output_attentions", "output_hidden_states"):
        if getattr(config, flag, False):
            raise ValueError(
                f"{flag}=True is not supported by the LAVIS beam search; pass beam_search='transformers' "
                "(transformers 5 beam search, which ranks finished beams differently from LAVIS)"
            )
    if config.eos_token_id is None or config.pad_token_id is None:
        raise ValueError("beam search needs eos_token_id and pad_token_id in the generation config")
    num_beams = int(config.num_beams)
    num_return = int(config.num_return_sequences or 1)
    if num_return > num_beams:
        raise ValueError(f"num_return_sequences={num_return} must be <= num_beams={num_beams}")
    length_penalty = 1.0 if config.length_penalty is None else float(config.length_penalty)
    early_stopping = False if config.early_stopping is None else config.early_stopping
    max_length = int(config.max_length)
    pad_id = int(config.pad_token_id)
    eos_ids = config.eos_token_id if isinstance(config.eos_token_id, (list, tuple)) else [config.eos_token_id]
    device = input_ids.device
    eos = torch.tensor(eos_ids, device=device)
    use_cache = model_kwargs.get("use_cache", True)

    flat, cur_len = input_ids.shape
    batch = flat // num_beams
    n_cand = max(2, 1 + len(eos_ids)) * num_beams  # 4.26 took the top 2 * num_beams (one eos id)
    rank = torch.arange(n_cand, device=device)
    batch_offset = (torch.arange(batch, device=device) * num_beams)[:, None]
    own_beams = torch.arange(num_beams, device=device).expand(batch, num_beams)

    beam_scores = torch.zeros(batch, num_beams, device=device)
    beam_scores[:, 1:] = -1e9  # only the first copy of each prompt may start a beam
    beam_scores = beam_scores.view(-1)
    hyp_seqs = torch.full((batch, num_beams, max_length), pad_id, dtype=input_ids.dtype, device=device)
    hyp_scores = torch.full((batch, num_beams), -math.inf, device=device)
    hyp_lens = torch.zeros(batch, num_beams, dtype=torch.long, device=device)
    hyp_count = torch.zeros(batch, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)

    first = True
    while True:
        if first and use_cache and num_beams > 1 and hasattr(model_kwargs.get("cache"), "batch_repeat_interleave"):
            # the num_beams copies of a prompt are identical before the first step: run the prompt (and project
            # the encoder keys/values) once per input, then repeat the cache and logits per beam
            once = {
                k: v[::num_beams] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == flat else v
                for k, v in model_kwargs.items()
            }
            model_inputs = model.prepare_inputs_for_generation(
                input_ids[::num_beams], next_sequence_length=None, is_first_iteration=True, **once
            )
            outputs = model(**model_inputs, return_dict=True)
            outputs.cache.batch_repeat_interleave(num_beams)
            logits = outputs.logits[:, -1, :].float().repeat_interleave(num_beams, dim=0)
        else:
            model_inputs = model.prepare_inputs_for_generation(
                input_ids, next_sequence_length=None if first or not use_cache else 1, is_first_iteration=first,
                **model_kwargs,
            )
            outputs = model(**model_inputs, return_dict=True)
            logits = outputs.logits[:, -1, :].float()
        model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)
        first = False
        del outputs
        log_probs = logits_processor(input_ids, F.log_softmax(logits, dim=-1))
        vocab = log_probs.shape[-1]
        scores = (log_probs + beam_scores[:, None]).view(batch, num_beams * vocab)
        top_scores, top_idx = torch.topk(scores, n_cand, dim=1, largest=True, sorted=True)
        top_beam, top_tok = top_idx // vocab, top_idx % vocab
        is_eos = torch.isin(top_tok, eos)

        # finished hypotheses: eos among the best num_beams candidates of an input that is not done
        was_done = done.clone()
        add = (is_eos & (rank < num_beams) & ~was_done[:, None])[:, :num_beams]
        denominator = float(cur_len) ** length_penalty
        new_scores = torch.where(add, top_scores[:, :num_beams] / denominator, -math.inf)
        running = input_ids.view(batch, num_beams, cur_len)
        new_seqs = running.gather(1, top_beam[:, :num_beams, None].expand(-1, -1, cur_len))
        new_seqs = F.pad(new_seqs, (0, max_length - cur_len), value=pad_id)
        new_lens = torch.full_like(add, cur_len, dtype=torch.long)
        hyp_seqs, hyp_scores, hyp_lens = _merge_hypotheses(hyp_seqs, hyp_scores, hyp_lens, new_seqs, new_scores,
                                                           new_lens)
        hyp_count = hyp_count + add.sum(dim=1)

        # the next beams: the first num_beams candidates that are not eos, in rank order
        keep = ~is_eos & (torch.cumsum(~is_eos, dim=1) <= num_beams)
        chosen = torch.where(keep, rank, rank + n_cand).argsort(dim=1)[:, :num_beams]
        next_scores = top_scores.gather(1, chosen)
        next_tok = top_tok.gather(1, chosen)
        next_beam = top_beam.gather(1, chosen)

        full = hyp_count >= num_beams
        if early_stopping is True:
            newly_done = full
        else:
            best = top_scores[:, 0]
            if early_stopping == "never" and length_penalty > 0.0:
                attainable = best / float(max_length) ** length_penalty
            else:
                attainable = best / denominator
            newly_done = full & (hyp_scores.min(dim=1).values >= attainable)
        done = was_done | newly_done

        # inputs done before this step idle on [PAD] (4.26 did the same; their hypotheses are final)
        next_tok = torch.where(was_done[:, None], pad_id, next_tok)
        next_beam = torch.where(was_done[:, None], own_beams, next_beam)
        next_scores = torch.where(was_done[:, None], 0.0, next_scores)

        beam_idx = (next_beam + batch_offset).view(-1)
        input_ids = torch.cat([input_ids[beam_idx], next_tok.reshape(-1, 1)], dim=1)
        beam_scores = next_scores.reshape(-1)
        cache = model_kwargs.get("cache")
        if cache is not None:
            cache.reorder_cache(beam_idx)
        cur_len += 1
        if bool(done.all()) or bool(stopping_criteria(input_ids, None).all()):
            break

    # open beams of inputs that are not done join the hypotheses with their final scores
    final_scores = beam_scores.view(batch, num_beams) / float(cur_len) ** length_penalty
    final_scores = torch.where(done[:, None], -math.inf, final_scores)
    final_seqs = F.pad(input_ids.view(batch, num_beams, cur_len), (0, max_length - cur_len), value=pad_id)
    final_lens = torch.full((batch, num_beams), cur_len, dtype=torch.long, device=device)
    hyp_seqs, hyp_scores, hyp_lens = _merge_hypotheses(hyp_seqs, hyp_scores, hyp_lens, final_seqs, final_scores,
                                                       final_lens)

    # hypotheses are kept sorted by score (descending): the best num_return of each input, padded after eos
    best_seqs = hyp_seqs[:, :num_return].reshape(batch * num_return, max_length)
    best_lens = hyp_lens[:, :num_return].reshape(-1)
    out_len = min(int(best_lens.max()) + 1, max_length)
    positions = torch.arange(out_len, device=device)[None, :]
    sequences = best_seqs[:, :out_len].masked_fill(positions >= best_lens[:, None], pad_id)
    sequences = torch.where(positions == best_lens[:, None], eos_ids[0], sequences)
    if config.return_dict_in_generate:
        return GenerateBeamDecoderOnlyOutput(
            sequences=sequences,
            sequences_scores=hyp_scores[:, :num_return].reshape(-1),
            cache=model_kwargs.get("cache"),
        )
    return sequences


# --------------------------------------------------------------------------- shared generate plumbing


def _default_generation_config(config: BlipConfig, defaults: dict[str, int]) -> GenerationConfig:
    text = config.text_config
    return GenerationConfig(
        bos_token_id=text.bos_token_id,
        eos_token_id=text.sep_token_id,
        pad_token_id=text.pad_token_id,
        length_penalty=1.0,
        early_stopping=False,
        **defaults,
    )


def _check_lengths(model: BlipPreTrainedModel, prompt_length: int, effective: Any) -> tuple[int | None, int | None]:
    """``(max_length, min_length)`` of a call (both counting the prompt; ``max_new_tokens`` wins), validated
    against the prompt and the decoder's positions. ``effective(name)`` reads a setting (call kwargs first)."""
    max_positions = model.config.text_config.max_position_embeddings
    max_new_tokens = effective("max_new_tokens")
    max_length = prompt_length + max_new_tokens if max_new_tokens is not None else effective("max_length")
    min_length = effective("min_length")
    if max_length is not None:
        if max_length <= prompt_length:
            raise ValueError(
                f"max_length={max_length} leaves no room to generate after the {prompt_length}-token prompt; "
                "max_length counts the prompt (as in LAVIS): pass a larger max_length"
            )
        if max_length > max_positions:
            raise ValueError(
                f"max_length={max_length} exceeds the decoder's max_position_embeddings={max_positions}; "
                f"pass max_length <= {max_positions}"
            )
    if min_length is not None and max_length is not None and min_length > max_length:
        raise ValueError(
            f"min_length={min_length} is larger than max_length={max_length}; both count the prompt "
            f"({prompt_length} tokens). Pass min_length <= max_length"
        )
    return max_length, min_length


#: generation arguments a static greedy call may carry; every other setting must keep its neutral value below
_STATIC_GREEDY_KWARGS = frozenset(
    {"max_length", "min_length", "max_new_tokens", "num_beams", "do_sample", "use_cache", "num_return_sequences"}
)
#: settings that change greedy search's tokens or output type -> the values under which it is plain greedy search
_GREEDY_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "num_beams": (None, 1), "do_sample": (None, False), "num_return_sequences": (None, 1), "use_cache": (None, True),
    "repetition_penalty": (None, 1.0), "encoder_repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0), "bad_words_ids": (None,), "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,), "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
    "sequence_bias": (None,), "min_new_tokens": (None,), "max_time": (None,), "stop_strings": (None,),
    "exponential_decay_length_penalty": (None,), "renormalize_logits": (None, False),
    "remove_invalid_values": (None, False), "return_dict_in_generate": (None, False), "output_scores": (None, False),
    "output_logits": (None, False), "output_attentions": (None, False), "output_hidden_states": (None, False),
    "num_beam_groups": (None, 1), "penalty_alpha": (None,), "guidance_scale": (None, 1.0),
    "watermarking_config": (None,), "prompt_lookup_num_tokens": (None,), "dola_layers": (None,),
    "token_healing": (None, False), "cache_implementation": (None,),
}
#: model -> (key, StaticGreedyDecoder): buffers and captured graph reused while shapes and weights stay the same
_STATIC_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _static_greedy_plan(
    model: BlipPreTrainedModel, prompt_length: int, generation_config: GenerationConfig | None, kwargs: dict[str, Any]
) -> tuple[int, int, int, int] | str:
    """``(max_length, min_length, eos_token_id, pad_token_id)`` when the call is plain greedy search (what
    :class:`~vl_hub.layers.med_greedy.StaticGreedyDecoder` reproduces), else the reason it is not."""
    extra = sorted(set(kwargs) - _STATIC_GREEDY_KWARGS)
    if extra:
        return f"generation arguments {extra} are not plain greedy settings"
    config = copy.deepcopy(generation_config if generation_config is not None else model.generation_config)
    config.update(**kwargs)
    for name, neutral in _GREEDY_NEUTRAL.items():
        value = getattr(config, name, None)
        if value not in neutral:
            return f"{name}={value!r}"
    eos, pad = config.eos_token_id, config.pad_token_id
    if not isinstance(eos, int) or not isinstance(pad, int):
        return f"eos_token_id={eos!r} and pad_token_id={pad!r} must be single ids"
    max_length, min_length = _check_lengths(model, prompt_length, lambda name: getattr(config, name, None))
    if max_length is None:
        return "max_length is not set"
    return max_length, min_length or 0, eos, pad


def _generate(
    model: BlipPreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    model_kwargs: dict[str, Any],
    generation_config: GenerationConfig | None,
    beam_search: str,
    kwargs: dict[str, Any],
) -> torch.LongTensor | ModelOutput:
    """Checks lengths, applies LAVIS's sampling defaults, picks the beam search, runs ``GenerationMixin.generate``."""
    if beam_search not in BEAM_SEARCH_IMPLEMENTATIONS:
        raise ValueError(f"beam_search={beam_search!r} is not one of {BEAM_SEARCH_IMPLEMENTATIONS}")
    base = generation_config if generation_config is not None else model.generation_config

    def effective(name: str) -> Any:
        return kwargs[name] if name in kwargs else getattr(base, name, None)

    if effective("do_sample"):
        for name, value in _SAMPLING_DEFAULTS.items():
            if effective(name) is None:
                kwargs[name] = value
    _check_lengths(model, input_ids.shape[1], effective)
    num_beams = effective("num_beams") or 1
    if (
        beam_search == "lavis"
        and num_beams > 1
        and not effective("do_sample")
        and kwargs.get("custom_generate") is None
    ):
        kwargs["custom_generate"] = lavis_beam_search
    return GenerationMixin.generate(
        model,
        input_ids=input_ids,
        attention_mask=attention_mask,
        generation_config=generation_config,
        **model_kwargs,
        **kwargs,
    )


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
            generation_config, beam_search: as in :meth:`BlipForConditionalGeneration.generate`.
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

