"""ALBEF processor: BLIP's image processor plus the plain BERT WordPiece tokenizer.

ALBEF's LAVIS configs use exactly BLIP's image transforms (``blip_image_train``: random-resized crop, flip,
RandAugment; ``blip_image_eval``: bicubic resize; OpenAI CLIP normalisation), so the image processor *is*
:class:`~vl_hub.models.blip.image_processing_blip.VlHubBlipImageProcessor` (at 384 px for the fine-tuned heads, 224
for the pre-trained model). The tokenizer is ``bert-base-uncased`` without added tokens: ``[CLS]`` starts every
sequence and stays there (no ``[ENC]``/``[DEC]``), also as the VQA decoder's start token.

``register_processing()`` registers both with ``AutoImageProcessor``/``AutoProcessor`` for :class:`AlbefConfig`
(model type ``vlhub_albef``); ``import vl_hub`` runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import AutoProcessor, BertTokenizerFast, PreTrainedTokenizerBase
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
from transformers.processing_utils import ProcessorMixin

from vl_hub.models.albef.configuration_albef import AlbefConfig
from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor
from vl_hub.models.blip.processing_blip import VlHubBlipProcessor, _read_vocab

__all__ = ["AlbefImageProcessor", "AlbefProcessor", "build_albef_tokenizer", "register_processing"]

#: ALBEF's image processor: BLIP's (identical LAVIS transforms), see the module docstring.
AlbefImageProcessor = VlHubBlipImageProcessor

_REQUIRED_TOKENS = ("cls", "sep", "pad", "mask")


def build_albef_tokenizer(vocab_file_or_dir: str | os.PathLike, do_lower_case: bool = True) -> PreTrainedTokenizerBase:
    """The ALBEF tokenizer (LAVIS ``AlbefBase.init_tokenizer``): BERT WordPiece, lower-case, no added tokens.

    Args:
        vocab_file_or_dir: a WordPiece ``vocab.txt`` (``bert-base-uncased``'s), or a folder holding a saved tokenizer
            (``tokenizer.json``/``tokenizer_config.json``) or a ``vocab.txt``.
        do_lower_case: lower-case (and strip accents) before WordPiece; ALBEF uses the uncased vocab.

    Returns:
        a ``BertTokenizerFast``.

    Raises:
        FileNotFoundError: the path does not exist, or the folder holds no tokenizer files.
    """
    path = Path(vocab_file_or_dir)
    if not path.exists():
        raise FileNotFoundError(f"tokenizer vocab {path} does not exist; pass a WordPiece vocab.txt or a tokenizer folder")
    if path.is_dir():
        if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
            return BertTokenizerFast.from_pretrained(str(path), do_lower_case=do_lower_case)
        if not (path / "vocab.txt").is_file():
            raise FileNotFoundError(
                f"{path} holds no tokenizer.json, tokenizer_config.json or vocab.txt; pass a folder saved by "
                "save_pretrained or a WordPiece vocab.txt"
            )
        path = path / "vocab.txt"
    # BertTokenizerFast(vocab_file=...) ignores the file on transformers 5 (every token becomes [UNK]).
    return BertTokenizerFast(vocab=_read_vocab(path), do_lower_case=do_lower_case)


class AlbefProcessor(VlHubBlipProcessor):
    """Image processor + BERT tokenizer in one call, with LAVIS's caption (``blip_caption``) and question
    (``blip_question``) normalisers -- BLIP's processor without ``[DEC]``/``[ENC]`` and without a caption prompt.

    Args:
        image_processor: a :class:`~vl_hub.models.blip.image_processing_blip.VlHubBlipImageProcessor`
            (``AlbefImageProcessor``).
        tokenizer: a BERT tokenizer with ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]`` (see :func:`build_albef_tokenizer`).
        max_txt_len: default ``max_length`` for truncation (LAVIS ``max_txt_len``: retrieval and pre-training 30,
            VQA 25, NLVR and SNLI-VE 40; LAVIS's retrieval evaluation pads/truncates to 35).
        max_words: words kept by the caption/question normalisers (LAVIS ``max_words``).

    Calling it: ``processor(images=..., text=..., text_mode="caption"|"question"|None)`` -> ``pixel_values
    (B, 3, S, S)``, ``input_ids``/``attention_mask`` ``(N, L)`` with ``[CLS]`` first (see
    :meth:`VlHubBlipProcessor.__call__`); ``batch_decode`` turns generated answer ids back into text.
    """

    def __init__(
        self,
        image_processor: VlHubBlipImageProcessor,
        tokenizer: PreTrainedTokenizerBase,
        max_txt_len: int = 30,
        max_words: int = 50,
    ) -> None:
        if isinstance(max_txt_len, bool) or not isinstance(max_txt_len, int) or max_txt_len < 2:
            raise ValueError(f"max_txt_len must be an int >= 2 (room for [CLS] and [SEP]); got {max_txt_len!r}")
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
            raise ValueError(f"max_words must be a positive int; got {max_words!r}")
        # BLIP's __init__ insists on [DEC]/[ENC]; ALBEF's tokenizer has neither.
        ProcessorMixin.__init__(self, image_processor, tokenizer)
        missing = [name for name in _REQUIRED_TOKENS if getattr(tokenizer, f"{name}_token_id", None) is None]
        if missing:
            raise ValueError(
                f"the tokenizer has no {', '.join(f'[{m.upper()}]' for m in missing)} token; ALBEF needs a BERT "
                "tokenizer: build it with vl_hub.models.albef.processing_albef.build_albef_tokenizer(vocab.txt)"
            )
        self.max_txt_len = max_txt_len
        self.max_words = max_words
        self.prompt = ""

    @property
    def enc_token_id(self) -> int:
        """ALBEF has no ``[ENC]`` token (image-grounded encoding keeps ``[CLS]``)."""
        raise AttributeError("ALBEF has no [ENC] token: its image-grounded encoder keeps [CLS] at position 0")

    @property
    def bos_token_id(self) -> int:
        """The decoder start token: ``[CLS]`` (ALBEF's VQA decoder starts from it)."""
        return self.cls_token_id

    @property
    def dec_token_id(self) -> int:
        """Same as :attr:`bos_token_id` (``[CLS]``)."""
        return self.cls_token_id

    @property
    def mask_token_id(self) -> int:
        """Id of ``[MASK]`` (the MLM corruption of pre-training)."""
        return int(self.tokenizer.mask_token_id)


def register_processing() -> None:
    """Registers the ALBEF image processor (BLIP's class) and processor for :class:`AlbefConfig` (idempotent)."""
    # Written on the mapping directly, as BLIP's registration does (see processing_blip.register_processing).
    IMAGE_PROCESSOR_MAPPING.register(
        AlbefConfig, {"pil": VlHubBlipImageProcessor, "torchvision": VlHubBlipImageProcessor}, exist_ok=True
    )
    AutoProcessor.register(AlbefConfig, AlbefProcessor, exist_ok=True)
