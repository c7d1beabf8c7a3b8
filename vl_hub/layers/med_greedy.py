"""Greedy decoding of a MED decoder with a preallocated cache, captured as one CUDA graph per step on a GPU.

``GenerationMixin.generate`` runs a Python loop that re-enters every module of the decoder for each new token: for
a BERT-base decoder that is a few hundred small kernel launches plus the generation bookkeeping per token, so on a
GPU a batch of captions is bound by the host, not by the device. :class:`StaticGreedyDecoder` decodes the same
tokens as ``generate(num_beams=1, do_sample=False, min_length=..., max_length=...)`` with:

* the prompt run once through the regular cached forward (:class:`~vl_hub.layers.med.MedLMHeadModel`), whose
  self-attention keys/values and image keys/values are copied into preallocated buffers;
* one decoding step that writes its keys/values at position ``pos`` (a device tensor) and attends all
  ``max_length`` positions under a mask, chooses the next token (``[SEP]`` suppressed below ``min_length``, finished
  rows padded) and advances ``pos`` — fixed shapes and no host synchronisation, so on CUDA it is captured once as a
  CUDA graph and replayed per token;
* a host check per token that stops when every row has emitted ``eos``, as ``generate`` does.

Rules are those of transformers' greedy search: ``min_length``/``max_length`` count the prompt; the token chosen at
index ``n`` cannot be ``eos`` while ``n < min_length``; after a row's ``eos`` it receives ``pad``; decoding stops at
``max_length`` tokens or when every row has finished. The decoder is reusable: a later call with the same shapes
copies its inputs into the buffers and replays the captured graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vl_hub.layers.attention import merge_heads, scaled_dot_product_attention
from vl_hub.layers.med import SELF_ATTENTION_MASK_VALUE, MedLMHeadModel
from vl_hub.layers.med_attention import MedCrossAttention

__all__ = ["GreedyShape", "StaticGreedyDecoder", "static_greedy_unsupported"]


@dataclass(frozen=True)
class GreedyShape:
    """Everything a :class:`StaticGreedyDecoder`'s buffers (and captured graph) depend on."""

    batch_size: int
    prompt_length: int
    max_length: int
    min_length: int
    encoder_length: int
    eos_token_id: int
    pad_token_id: int
    dtype: torch.dtype
    device: torch.device


def static_greedy_unsupported(lm: MedLMHeadModel) -> str | None:
    """Why ``lm`` cannot use :class:`StaticGreedyDecoder` (``None`` when it can): every layer must cross-attend
    with the default :class:`~vl_hub.layers.med_attention.MedCrossAttention`, and dropout must be off (eval mode)."""
    settings = lm.settings
    if lm.training:
        return "the decoder is in training mode (dropout on); call model.eval()"
    if list(settings.layer_range("multimodal")) != list(range(settings.num_hidden_layers)):
        return "the decoder does not run every layer in multimodal mode"
    for layer in lm.bert.encoder.layer:
        if type(layer.crossattention) is not MedCrossAttention:
            return "a decoder layer has no (or a custom) cross-attention"
    return None


class StaticGreedyDecoder:
    """Greedy decoding of ``lm`` for one :class:`GreedyShape` (see the module docstring).

    Args:
        lm: the decoder (eval mode; see :func:`static_greedy_unsupported`).
        shape: batch size, lengths, special ids, dtype and device of the calls this decoder serves.
        cuda_graph: capture the decoding step as a CUDA graph (default: when ``shape.device`` is CUDA).
    """

    def __init__(self, lm: MedLMHeadModel, shape: GreedyShape, cuda_graph: bool | None = None) -> None:
        reason = static_greedy_unsupported(lm)
        if reason is not None:
            raise ValueError(f"static greedy decoding is not possible: {reason}")
        if not 0 < shape.prompt_length < shape.max_length:
            raise ValueError(
                f"max_length={shape.max_length} must exceed the prompt length {shape.prompt_length} (both count the "
                "prompt)"
            )
        self.lm, self.shape = lm, shape
        self.cuda_graph = shape.device.type == "cuda" if cuda_graph is None else cuda_graph
        if self.cuda_graph and shape.device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs a CUDA device, got {shape.device}")
        settings = lm.settings
        heads = settings.num_attention_heads
        head_dim = settings.hidden_size // heads
        layers, b, length = settings.num_hidden_layers, shape.batch_size, shape.max_length
        # normal tensors even when created under inference_mode, so that later calls may update them in place
        with torch.inference_mode(False), torch.no_grad():
            kw = {"dtype": shape.dtype, "device": shape.device}
            self.self_keys = torch.zeros(layers, b, heads, length, head_dim, **kw)
            self.self_values = torch.zeros_like(self.self_keys)
            self.cross_keys = torch.zeros(layers, b, heads, shape.encoder_length, head_dim, **kw)
            self.cross_values = torch.zeros_like(self.cross_keys)
            self.keep = torch.ones(b, length, dtype=torch.bool, device=shape.device)  # prompt padding mask
            self.positions = torch.arange(length, device=shape.device)
            self.ids = torch.full((b, length), shape.pad_token_id, dtype=torch.long, device=shape.device)
            self.token = torch.zeros(b, dtype=torch.long, device=shape.device)
            self.pos = torch.zeros((), dtype=torch.long, device=shape.device)  # index of ``token`` in the sequence
            self.unfinished = torch.ones(b, dtype=torch.bool, device=shape.device)
        self.graph: torch.cuda.CUDAGraph | None = None

    # ------------------------------------------------------------------ the step
    def _choose(self, logits: torch.Tensor) -> None:
        """Picks the token at index ``pos`` from ``logits (B, V)`` (the prediction for that index)."""
        shape = self.shape
        scores = logits.float()
        if shape.min_length > 0:
            eos_scores = scores[:, shape.eos_token_id]
            scores[:, shape.eos_token_id] = torch.where(self.pos < shape.min_length, float("-inf"), eos_scores)
        chosen = torch.where(self.unfinished, scores.argmax(dim=-1), shape.pad_token_id)
        self.ids.index_copy_(1, self.pos.view(1), chosen[:, None])
        self.unfinished &= chosen != shape.eos_token_id
        self.token.copy_(chosen)

    def _step(self) -> None:
        """Feeds ``token`` at index ``pos``, then chooses the token at ``pos + 1``. Fixed shapes, no host sync."""
        lm = self.lm
        embeddings = lm.bert.embeddings
        hidden = embeddings.word_embeddings(self.token[:, None]) + embeddings.position_embeddings(self.pos.view(1, 1))
        if embeddings.token_type_embeddings is not None:
            hidden = hidden + embeddings.token_type_embeddings.weight[0]
        hidden = embeddings.LayerNorm(hidden)  # (B, 1, H); dropout is off in eval mode
        visible = self.keep & (self.positions <= self.pos)  # (B, max_length)
        mask = torch.where(visible, 0.0, SELF_ATTENTION_MASK_VALUE).to(hidden.dtype)[:, None, None, :]
        slot = self.pos.view(1)
        for i, layer in enumerate(lm.bert.encoder.layer):
            attention = layer.attention.self
            key, value = attention.project_key_value(hidden)
            self.self_keys[i].index_copy_(2, slot, key)
            self.self_values[i].index_copy_(2, slot, value)
            context, _ = scaled_dot_product_attention(
                attention.project_query(hidden), self.self_keys[i], self.self_values[i], attn_mask=mask,
                implementation=attention.attn_implementation,
            )
            hidden = layer.attention.output(merge_heads(context), hidden)
            cross = layer.crossattention.self
            context, _ = scaled_dot_product_attention(
                cross.project_query(hidden), self.cross_keys[i], self.cross_values[i],
                implementation=cross.attn_implementation,
            )
            hidden = layer.crossattention.output(merge_heads(context), hidden)
            hidden = layer.output(layer.intermediate(hidden), hidden)
        self.pos += 1
        self._choose(lm.cls(hidden)[:, 0])

    def _capture(self) -> None:
        """Runs one real step eagerly on a side stream (warm-up: kernels chosen, workspaces allocated), then records
        the step as a CUDA graph (recording executes nothing)."""
        stream = torch.cuda.Stream(self.shape.device)
        stream.wait_stream(torch.cuda.current_stream(self.shape.device))
        with torch.cuda.stream(stream):
            self._step()
        torch.cuda.current_stream(self.shape.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        self.graph = graph

    # ------------------------------------------------------------------ decoding
    @torch.no_grad()
    def decode(
        self,
        input_ids: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.LongTensor:
        """Greedy continuation of the prompts ``input_ids (B, P)`` cross-attending ``encoder_hidden_states (B, Lk,
        D)``; ``attention_mask (B, P)`` marks left padding of the prompts (``None``: none).

        Returns:
            ``(B, L')`` ids including the prompt, ``P < L' <= max_length`` (shorter when every row has ended).
        """
        shape = self.shape
        expected = (shape.batch_size, shape.prompt_length)
        if tuple(input_ids.shape) != expected or encoder_hidden_states.shape[:2] != (shape.batch_size,
                                                                                     shape.encoder_length):
            raise ValueError(
                f"this decoder serves prompts {expected} and encoder states ({shape.batch_size}, "
                f"{shape.encoder_length}, D); got {tuple(input_ids.shape)} and {tuple(encoder_hidden_states.shape)}"
            )
        prompt = self.lm(
            input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=encoder_hidden_states,
            use_cache=True, is_decoder=True, logits_to_keep=1,
        )
        cache, p = prompt.cache, shape.prompt_length
        for i in range(len(self.lm.bert.encoder.layer)):
            own, image = cache.self_attention_cache.layers[i], cache.cross_attention_cache.layers[i]
            self.self_keys[i, :, :, :p].copy_(own.keys)
            self.self_values[i, :, :, :p].copy_(own.values)
            self.cross_keys[i].copy_(image.keys)
            self.cross_values[i].copy_(image.values)
        self.keep.fill_(True)
        if attention_mask is not None:
            self.keep[:, :p].copy_(attention_mask.bool())
        self.ids[:, :p].copy_(input_ids)
        self.unfinished.fill_(True)
        self.pos.fill_(p)
        self._choose(prompt.logits[:, -1])
        length = p + 1
        while length < shape.max_length and bool(self.unfinished.any()):
            if self.graph is not None:
                self.graph.replay()
            elif self.cuda_graph and shape.max_length - length >= 2:
                self._capture()  # one real step, then the recorded one is replayed below
                length += 1
                if length == shape.max_length or not bool(self.unfinished.any()):
                    break
                self.graph.replay()
            else:
                self._step()
            length += 1
        return self.ids[:, :length].clone()
