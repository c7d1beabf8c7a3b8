"""LAVIS's beam search: transformers 4.26's ``BeamSearchScorer`` (what LAVIS's BLIP and ALBEF generation ran on),
vectorised over the batch, as a ``custom_generate`` loop for transformers 5's ``GenerationMixin.generate``.

transformers 4.26 normalises a finished hypothesis by its full length *including the prompt* and *excluding*
``[SEP]``, and its ``early_stopping=False`` heuristic compares with the best candidate of the step. transformers 5's
own beam search normalises by the generated length only, which ranks finished beams differently, so only
:func:`lavis_beam_search` reproduces LAVIS's captions and answers. The BLIP (and ALBEF) heads run it for beam search
without sampling unless called with ``beam_search="transformers"``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from transformers import GenerationConfig, GenerationMixin
from transformers.generation import (
    GenerateBeamDecoderOnlyOutput,
    LogitsProcessorList,
    StoppingCriteriaList,
)

__all__ = ["lavis_beam_search"]


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
