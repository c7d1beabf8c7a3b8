"""Test-only ``PreTrainedModel`` + ``GenerationMixin`` wrapper around :class:`vl_hub.layers.med.MedLMHeadModel`.

It is what a family captioning/VQA model does for ``generate()`` in miniature: the image states travel as the
model kwargs ``encoder_hidden_states``/``encoder_attention_mask`` (``generate`` repeats them per beam), the cache is
the transformers one that ``generate`` creates (the decoder wraps it into a :class:`~vl_hub.layers.med.MedCache` to
keep the image keys/values), and ``logits_to_keep`` lets ``generate`` skip the LM head on the prompt.

``forward`` deliberately takes no ``position_ids``: ``generate`` would then derive them from the attention mask
(``cumsum - 1``), while LAVIS's BLIP decoders always used positions ``0..L-1`` (offset by the cache).

The config class is registered nowhere (no ``AutoConfig``/``AutoModel`` entry).
"""

from __future__ import annotations

import torch
from transformers import GenerationMixin, PreTrainedConfig
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions

from vl_hub.layers.med import MedLMHeadModel, MedSettings, init_med_weights
from vl_hub.modeling_utils import VlHubPreTrainedModel


class TinyDecoderConfig(PreTrainedConfig):
    """Tiny MED decoder config (the fields of :class:`~vl_hub.layers.med.MedSettings` that tests vary)."""

    model_type = "vlhub_test_tiny_decoder"

    vocab_size: int = 48
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 64
    max_position_embeddings: int = 40
    encoder_width: int = 24
    fusion_layer: int | None = None
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    pad_token_id: int | None = 0
    bos_token_id: int | None = 2
    eos_token_id: int | None = 3
    use_cache: bool = True
    tie_word_embeddings: bool = True

    def med_settings(self) -> MedSettings:
        """The decoder architecture."""
        return MedSettings(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
            encoder_width=self.encoder_width,
            fusion_layer=self.fusion_layer,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            initializer_range=self.initializer_range,
            pad_token_id=self.pad_token_id,
        )


class TinyDecoderForGeneration(VlHubPreTrainedModel, GenerationMixin):
    """A :class:`MedLMHeadModel` decoder (``self.decoder``) that ``generate()`` can drive."""

    config_class = TinyDecoderConfig
    base_model_prefix = "decoder"
    _tied_weights_keys = {
        "decoder.cls.predictions.decoder.weight": "decoder.bert.embeddings.word_embeddings.weight",
        "decoder.cls.predictions.decoder.bias": "decoder.cls.predictions.bias",
    }

    def __init__(self, config: TinyDecoderConfig) -> None:
        super().__init__(config)
        self.decoder = MedLMHeadModel(config.med_settings(), is_decoder=True)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        init_med_weights(module, self.config.initializer_range)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.decoder.bert.embeddings.word_embeddings

    def get_output_embeddings(self) -> torch.nn.Linear:
        return self.decoder.cls.predictions.decoder

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> CausalLMOutputWithCrossAttentions:
        """Causal LM logits ``(B, L or logits_to_keep, vocab)`` for ``input_ids (B, L)`` given image states
        ``encoder_hidden_states (B, Lk, encoder_width)``; ``cache`` as in :meth:`MedModel.forward`."""
        return self.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            cache=cache,
            use_cache=use_cache,
            is_decoder=True,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            logits_to_keep=logits_to_keep,
        )
