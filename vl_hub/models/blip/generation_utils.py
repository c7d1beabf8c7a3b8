"""Generation plumbing shared by the BLIP captioning and VQA heads (and ALBEF's VQA head): default generation
configs, length checks, the plan of a static greedy call, and :func:`_generate`, which runs
``GenerationMixin.generate`` the way LAVIS (transformers 4.26) generated:

* a generate call encodes the images once; the decoder's cache (:class:`vl_hub.layers.med.MedCache`) keeps the
  cross-attention keys/values of the image (question) tokens from the first step on, so they are projected once per
  call, not once per generated token (neither LAVIS nor transformers' BLIP does this);
* beams see the encoder states ``repeat_interleave``'d per beam (transformers expands every model kwarg that way);
* beam search without sampling runs :func:`~vl_hub.models.blip.lavis_beam_search.lavis_beam_search` (transformers
  4.26's ``BeamSearchScorer`` scoring); pass ``beam_search="transformers"`` for transformers 5's own, which ranks
  finished beams differently;
* ``max_length`` / ``min_length`` count the prompt, exactly as LAVIS passes them to ``generate``: LAVIS does *not*
  add the prompt length (``BlipCaption.generate(max_length=12)`` returns 12 ids, 4 of them the prompt
  ``[DEC] a picture of``), and ``BlipVQA`` counts ``[DEC]``;
* nucleus sampling uses LAVIS's ``top_p=0.9`` and ``repetition_penalty=1.1`` (and 4.26's ``top_k=50``) unless
  given; greedy and beam search use ``repetition_penalty=1.0``.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

import torch
from transformers import GenerationConfig, GenerationMixin
from transformers.utils import ModelOutput

from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.lavis_beam_search import lavis_beam_search
from vl_hub.models.blip.modeling_blip import BlipPreTrainedModel

__all__ = ["BEAM_SEARCH_IMPLEMENTATIONS"]

BEAM_SEARCH_IMPLEMENTATIONS = ("lavis", "transformers")

# LAVIS BlipCaption.generate / BlipVQA.predict_answers defaults (the ALBEF VQA head generates with the same)
_CAPTION_GENERATION_DEFAULTS = {"max_length": 30, "min_length": 10, "num_beams": 3}
_VQA_GENERATION_DEFAULTS = {"max_length": 10, "min_length": 1, "num_beams": 3}
# XBertLMHeadDecoder.generate_from_encoder's nucleus-sampling settings (top_k=50 came from transformers 4.26)
_SAMPLING_DEFAULTS = {"top_p": 0.9, "repetition_penalty": 1.1}


def _with_first_token(input_ids: torch.Tensor, token_id: int) -> torch.Tensor:
    """A copy of ``input_ids (B, L)`` whose position 0 is ``token_id`` (LAVIS replaces ``[CLS]`` this way)."""
    ids = input_ids.clone()
    ids[:, 0] = token_id
    return ids


def _required_id(value: int | None, name: str) -> int:
    if value is None:
        raise ValueError(f"config.text_config.{name} is None; the BLIP heads need it (set it to the tokenizer's id)")
    return int(value)


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
