"""CLIP text tower (OpenAI layout): causal pre-LN transformer pooled at the end-of-text token.

Parameter names are OpenAI's top-level text names — ``token_embedding``, ``positional_embedding``,
``transformer.resblocks.{i}.*``, ``ln_final``, ``text_projection`` — so a CLIP checkpoint's text weights
load into :class:`ClipTextTransformer` as they are (strict; ``visual.*`` and ``logit_scale`` belong to
other modules).
"""

from __future__ import annotations

import torch
from torch import nn

from vl_hub.layers.clip_transformer import ClipTowerOutput, ClipTransformer, set_attn_implementation


class ClipTextTransformer(nn.Module):
    """The text encoder of CLIP (``CLIP.encode_text``).

    ``token_embedding + positional_embedding -> resblocks (causal mask, no padding mask) -> ln_final ->``
    row of the end-of-text token ``@ text_projection``. With a causal mask, trailing padding cannot change
    the states at or before the end-of-text token, which is why the original needs no padding mask.

    Args:
        vocab_size: token vocabulary size (49408 for OpenAI CLIP).
        context_length: number of positional embeddings, the longest accepted input (77 for OpenAI).
        width: model width.
        layers: number of blocks.
        embed_dim: output size of ``text_projection``.
        num_heads: attention heads (``None`` -> ``width // 64``; OpenAI text towers use ``width // 64``).
        mlp_ratio: MLP hidden size over width.
        activation: ``"quick_gelu"`` (OpenAI) or ``"gelu"``.
        layer_norm_eps: LayerNorm epsilon (1e-5).
        eos_token_id: ``None`` pools at ``argmax(input_ids)`` as the original (the end-of-text id must be
            the largest id); an int pools at the first occurrence of that id instead.
        attention_dropout: attention-probability dropout (training only; 0 in CLIP).
        attn_implementation: ``"sdpa"`` or ``"eager"`` for every attention module.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        width: int,
        layers: int,
        embed_dim: int,
        num_heads: int | None = None,
        mlp_ratio: float = 4.0,
        activation: str = "quick_gelu",
        layer_norm_eps: float = 1e-5,
        eos_token_id: int | None = None,
        attention_dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.width = width
        self.embed_dim = embed_dim
        self.eos_token_id = eos_token_id
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = ClipTransformer(
            width, layers, num_heads, mlp_ratio, activation, layer_norm_eps, attention_dropout, attn_implementation
        )
        self.ln_final = nn.LayerNorm(width, eps=layer_norm_eps)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """OpenAI's initialisation: token embedding std 0.02, positions 0.01, projection ``width^-0.5``."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        self.transformer.init_weights()
        nn.init.ones_(self.ln_final.weight)
        nn.init.zeros_(self.ln_final.bias)
        nn.init.normal_(self.text_projection, std=self.width**-0.5)

    def set_attn_implementation(self, value: str) -> None:
        """Switches every attention module to ``"sdpa"`` or ``"eager"``."""
        set_attn_implementation(self, value)

    def eos_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids (batch, len)`` -> ``(batch,)`` index of the token the tower pools at."""
        if self.eos_token_id is None:
            return input_ids.argmax(dim=-1)
        return (input_ids == self.eos_token_id).int().argmax(dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> ClipTowerOutput:
        """Encodes token ids.

        Args:
            input_ids: ``(batch, len)`` int ids, ``len <= context_length`` (``[sot, ..., eot, pad...]``).
            output_hidden_states: also return the input of the first block and every block's output.
            output_attentions: also return every block's ``(batch, heads, len, len)`` probabilities.

        Returns:
            :class:`ClipTowerOutput`: ``embeds (batch, embed_dim)`` (projected, not normalised),
            ``last_hidden_state (batch, len, width)`` after ``ln_final``, ``pooler_output (batch, width)``.
        """
        if input_ids.dim() != 2:
            raise ValueError(
                f"input_ids must be (batch, len) token ids, got shape {tuple(input_ids.shape)}; "
                "add a batch dimension with input_ids[None]"
            )
        length = input_ids.shape[1]
        if length > self.context_length:
            raise ValueError(
                f"input_ids has {length} tokens but the CLIP text tower has context_length={self.context_length}; "
                f"truncate the text to at most {self.context_length} tokens (tokenizer truncation=True, "
                f"max_length={self.context_length})"
            )
        if length == 0:
            raise ValueError("input_ids has 0 tokens; each text needs at least the start and end-of-text tokens")
        hidden = self.token_embedding(input_ids) + self.positional_embedding[:length].to(self.token_embedding.weight.dtype)
        hidden, hidden_states, attentions = self.transformer(
            hidden, None, True, output_hidden_states, output_attentions
        )
        hidden = self.ln_final(hidden)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), self.eos_positions(input_ids)]
        embeds = pooled @ self.text_projection
        return ClipTowerOutput(embeds, hidden, pooled, hidden_states, attentions)
