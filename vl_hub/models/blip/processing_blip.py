"""BLIP processor: the image processor plus the BERT WordPiece tokenizer with BLIP's ``[DEC]``/``[ENC]`` tokens.

``register_processing()`` registers both with ``AutoImageProcessor``/``AutoProcessor`` for
``BlipConfig`` (model type ``vlhub_blip``); ``import vl_hub`` runs it. The processor class is named
``VlHubBlipProcessor`` because transformers resolves a saved ``processor_class`` of ``"BlipProcessor"``
to its own class before any registered one; ``BlipProcessor`` is kept as an alias here.

Ids are returned as LAVIS's tokenizer gives them, starting with ``[CLS]``: the heads replace position 0
with ``[ENC]`` (ITM, multimodal features, VQA questions, NLVR) or ``[DEC]`` (decoder inputs), as LAVIS's
models do, using :attr:`VlHubBlipProcessor.enc_token_id` / :attr:`VlHubBlipProcessor.bos_token_id`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoProcessor, BertTokenizerFast, PreTrainedTokenizerBase
from transformers.image_processing_base import BatchFeature
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
from transformers.processing_utils import ProcessorMixin

from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor
from vl_hub.processing.text import pre_caption, pre_question

__all__ = [
    "DEC_TOKEN",
    "ENC_TOKEN",
    "BlipProcessor",
    "VlHubBlipProcessor",
    "build_blip_tokenizer",
    "register_processing",
]

#: Decoder start token (the tokenizer's ``bos_token``), LAVIS ``init_tokenizer``.
DEC_TOKEN = "[DEC]"
#: Token that replaces ``[CLS]`` for image-grounded encoding (ITM, VQA questions, NLVR).
ENC_TOKEN = "[ENC]"

TextMode = Literal["caption", "question"] | None
_TEXT_MODES = ("caption", "question", None)


def _read_vocab(vocab_file: Path) -> dict[str, int]:
    """WordPiece ``vocab.txt``: one token per line, id = line number (a repeated token keeps its last line)."""
    with open(vocab_file, encoding="utf-8") as handle:
        vocab = {line.rstrip("\n"): index for index, line in enumerate(handle)}
    if not vocab:
        raise ValueError(f"vocab file {vocab_file} is empty; expected one WordPiece token per line")
    return vocab


def build_blip_tokenizer(vocab_file_or_dir: str | os.PathLike, do_lower_case: bool = True) -> PreTrainedTokenizerBase:
    """The BLIP tokenizer (LAVIS ``BlipBase.init_tokenizer``): BERT WordPiece, lower-case, plus two tokens.

    ``[DEC]`` is added as ``bos_token`` and ``[ENC]`` as an additional special token, so they get the ids
    ``len(vocab)`` and ``len(vocab) + 1`` (30522/30523 for ``bert-base-uncased``). The tokenizer also gets an
    ``enc_token_id`` attribute, as in LAVIS. Tokens already present are not added twice.

    Args:
        vocab_file_or_dir: a WordPiece ``vocab.txt``, or a folder holding a saved tokenizer
            (``tokenizer.json``/``tokenizer_config.json``) or a ``vocab.txt``.
        do_lower_case: lower-case (and strip accents) before WordPiece; BLIP uses the uncased vocab.

    Returns:
        a ``BertTokenizerFast`` (transformers 5's ``BertTokenizer``).

    Raises:
        FileNotFoundError: the path does not exist, or the folder holds no tokenizer files.
    """
    path = Path(vocab_file_or_dir)
    if not path.exists():
        raise FileNotFoundError(
            f"tokenizer vocab {path} does not exist; pass a WordPiece vocab.txt or a tokenizer folder"
        )
    if path.is_dir():
        if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
            tokenizer = BertTokenizerFast.from_pretrained(str(path), do_lower_case=do_lower_case)
        elif (path / "vocab.txt").is_file():
            tokenizer = BertTokenizerFast(vocab=_read_vocab(path / "vocab.txt"), do_lower_case=do_lower_case)
        else:
            raise FileNotFoundError(
                f"{path} holds no tokenizer.json, tokenizer_config.json or vocab.txt; pass a folder saved by "
                "save_pretrained or a WordPiece vocab.txt"
            )
    else:
        # BertTokenizerFast(vocab_file=...) ignores the file on transformers 5 (every token becomes [UNK]).
        tokenizer = BertTokenizerFast(vocab=_read_vocab(path), do_lower_case=do_lower_case)
    vocab = tokenizer.get_vocab()
    if DEC_TOKEN not in vocab or tokenizer.bos_token != DEC_TOKEN:
        tokenizer.add_special_tokens({"bos_token": DEC_TOKEN})
    if ENC_TOKEN not in tokenizer.all_special_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": [ENC_TOKEN]})
    tokenizer.enc_token_id = tokenizer.convert_tokens_to_ids(ENC_TOKEN)
    return tokenizer


def _special_id(tokenizer: PreTrainedTokenizerBase, token: str, role: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ValueError(
            f"the tokenizer has no {token} token ({role}); BLIP needs [DEC] and [ENC]: build it with "
            "vl_hub.models.blip.processing_blip.build_blip_tokenizer(vocab_file_or_dir)"
        )
    return int(token_id)


def _as_text_list(text: Any) -> list[str]:
    if isinstance(text, str):
        return [text]
    if isinstance(text, (list, tuple)):
        if len(text) == 0:
            raise ValueError("text is an empty list; pass at least one string")
        for i, item in enumerate(text):
            if not isinstance(item, str):
                raise TypeError(f"text[{i}] must be a string; got {type(item).__name__}: {item!r}")
        return list(text)
    raise TypeError(f"text must be a string or a list of strings; got {type(text).__name__}")


class VlHubBlipProcessor(ProcessorMixin):
    """Image processor + BLIP tokenizer in one call, with LAVIS's caption/question normalisers.

    Args:
        image_processor: a :class:`~vl_hub.models.blip.image_processing_blip.VlHubBlipImageProcessor`.
        tokenizer: a BERT tokenizer holding ``[DEC]`` (its ``bos_token``) and ``[ENC]``
            (see :func:`build_blip_tokenizer`).
        max_txt_len: default ``max_length`` for truncation (LAVIS ``max_txt_len``: 35; 40 for captioning).
        prompt: captioning prompt put before each caption in ``text_mode="caption"`` (``"a picture of "``
            for BLIP captioning checkpoints, ``""`` otherwise).
        max_words: words kept by the caption/question normalisers (LAVIS ``max_words``).
    """

    def __init__(
        self,
        image_processor: VlHubBlipImageProcessor,
        tokenizer: PreTrainedTokenizerBase,
        max_txt_len: int = 35,
        prompt: str = "",
        max_words: int = 50,
    ) -> None:
        if isinstance(max_txt_len, bool) or not isinstance(max_txt_len, int) or max_txt_len < 2:
            raise ValueError(f"max_txt_len must be an int >= 2 (room for [CLS] and [SEP]); got {max_txt_len!r}")
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string; got {type(prompt).__name__}: {prompt!r}")
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
            raise ValueError(f"max_words must be a positive int; got {max_words!r}")
        super().__init__(image_processor, tokenizer)
        if tokenizer.bos_token != DEC_TOKEN:
            raise ValueError(
                f"the tokenizer's bos_token is {tokenizer.bos_token!r}, BLIP needs {DEC_TOKEN!r}; build it with "
                "vl_hub.models.blip.processing_blip.build_blip_tokenizer(vocab_file_or_dir)"
            )
        # LAVIS's heads read tokenizer.enc_token_id; a tokenizer reloaded from disk lacks the attribute.
        tokenizer.enc_token_id = _special_id(tokenizer, ENC_TOKEN, "image-grounded encoder start")
        self.max_txt_len = max_txt_len
        self.prompt = prompt
        self.max_words = max_words

    # ------------------------------------------------------------------ special ids

    @property
    def enc_token_id(self) -> int:
        """Id of ``[ENC]``: replaces ``[CLS]`` at position 0 for image-grounded encoding."""
        return _special_id(self.tokenizer, ENC_TOKEN, "image-grounded encoder start")

    @property
    def bos_token_id(self) -> int:
        """Id of ``[DEC]``, the decoder's start token (replaces ``[CLS]`` at position 0 of decoder inputs)."""
        return _special_id(self.tokenizer, DEC_TOKEN, "decoder start")

    @property
    def dec_token_id(self) -> int:
        """Same as :attr:`bos_token_id`."""
        return self.bos_token_id

    @property
    def sep_token_id(self) -> int:
        """Id of ``[SEP]``, which ends every sequence (the end-of-sequence token of generation)."""
        return int(self.tokenizer.sep_token_id)

    @property
    def eos_token_id(self) -> int:
        """Same as :attr:`sep_token_id` (BLIP's decoder stops at ``[SEP]``)."""
        return self.sep_token_id

    @property
    def pad_token_id(self) -> int:
        """Id of ``[PAD]``."""
        return int(self.tokenizer.pad_token_id)

    @property
    def cls_token_id(self) -> int:
        """Id of ``[CLS]``, which the tokenizer puts at position 0."""
        return int(self.tokenizer.cls_token_id)

    @property
    def model_input_names(self) -> list[str]:
        """``["pixel_values", "input_ids", "attention_mask"]``."""
        return ["pixel_values", "input_ids", "attention_mask"]

    # ------------------------------------------------------------------ text

    def normalize_text(
        self, text: str | Sequence[str], text_mode: TextMode = None, prompt: str | None = None
    ) -> list[str]:
        """The strings that get tokenised: ``prompt + normaliser(text)``.

        Args:
            text: one string or a list.
            text_mode: ``"caption"`` (LAVIS ``pre_caption``), ``"question"`` (``pre_question``) or ``None``
                (text kept as is).
            prompt: put before each text; ``None`` means :attr:`prompt` in caption mode and nothing otherwise.
        """
        if text_mode not in _TEXT_MODES:
            raise ValueError(f"text_mode must be 'caption', 'question' or None; got {text_mode!r}")
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string or None; got {type(prompt).__name__}: {prompt!r}")
        texts = _as_text_list(text)
        if text_mode == "caption":
            texts = [pre_caption(t, self.max_words) for t in texts]
        elif text_mode == "question":
            texts = [pre_question(t, self.max_words) for t in texts]
        if prompt is None:
            prompt = self.prompt if text_mode == "caption" else ""
        return [prompt + t for t in texts] if prompt else texts

    def __call__(
        self,
        images: Any = None,
        text: str | Sequence[str] | None = None,
        videos: Any = None,
        padding: bool | str = "longest",
        truncation: bool = True,
        max_length: int | None = None,
        return_tensors: Literal["pt", "np"] | None = "pt",
        text_mode: TextMode = None,
        prompt: str | None = None,
        do_augment: bool | None = None,
    ) -> BatchFeature:
        """Prepares images/videos and text for a BLIP head.

        Args:
            images: one image or a list (paths, PIL images of any mode, arrays); see the image processor.
            text: one string or a list. With ``text=None`` and an explicit ``prompt``, the prompt alone is
                tokenised once per image (the start of caption generation).
            videos: one video or a list of videos (each a list of frames or a ``(T, H, W, 3)`` uint8 array).
            padding, truncation: as the tokenizer's (``"longest"`` and ``True``: LAVIS's settings).
            max_length: truncation length in tokens, ``[CLS]``/``[SEP]`` included (default :attr:`max_txt_len`).
                Truncated texts keep ``[SEP]`` last.
            return_tensors: ``"pt"``, ``"np"`` or ``None`` (lists for the text, numpy for the pixels).
            text_mode: ``"caption"``, ``"question"`` or ``None``; see :meth:`normalize_text`.
            prompt: see :meth:`normalize_text`.
            do_augment: overrides the image processor's ``do_augment`` for this call.

        Returns:
            ``BatchFeature`` with ``pixel_values`` float32 ``(B, 3, S, S)`` (``(B, T, 3, S, S)`` for videos)
            when images/videos are given, and ``input_ids``/``attention_mask`` ``(N, L)`` int64 when text is
            (``input_ids[:, 0]`` is ``[CLS]``; no ``token_type_ids``). The image and text counts are not tied:
            retrieval and zero-shot classification pair one image with many texts.
        """
        if images is None and videos is None and text is None:
            raise ValueError("nothing to process: pass images=..., videos=... and/or text=...")
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None; got {return_tensors!r}")
        data: dict[str, Any] = {}
        if images is not None or videos is not None:
            data.update(
                self.image_processor(images, videos=videos, return_tensors=return_tensors, do_augment=do_augment)
            )
        if text is None and prompt is not None:
            count = len(data["pixel_values"]) if "pixel_values" in data else 1
            text = [""] * count
            if text_mode is None:
                text_mode = "caption"
        if text is not None:
            max_length = self.max_txt_len if max_length is None else max_length
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
                raise ValueError(f"max_length must be an int >= 2 (room for [CLS] and [SEP]); got {max_length!r}")
            encoded = self.tokenizer(
                self.normalize_text(text, text_mode, prompt),
                padding=padding,
                truncation=truncation,
                max_length=max_length,
                return_tensors=return_tensors,
                return_token_type_ids=False,
            )
            data["input_ids"] = encoded["input_ids"]
            data["attention_mask"] = encoded["attention_mask"]
        return BatchFeature(data, tensor_type=return_tensors)

    # ------------------------------------------------------------------ decoding

    def _strip_prompt(self, texts: list[str], prompt: str | bool | None) -> list[str]:
        if prompt is None or prompt is False:
            return texts
        prompt_text = self.prompt if prompt is True else prompt
        if not isinstance(prompt_text, str):
            raise TypeError(f"prompt must be a string, a bool or None; got {type(prompt).__name__}: {prompt!r}")
        if not prompt_text.strip():
            return texts
        # Compare with the prompt as the tokenizer renders it (lower-cased, WordPiece-joined).
        rendered = self.tokenizer.decode(self.tokenizer(prompt_text, add_special_tokens=False)["input_ids"]).strip()
        return [t[len(rendered) :].lstrip() if t.startswith(rendered) else t for t in texts]

    def batch_decode(
        self,
        sequences: torch.Tensor | Sequence[Sequence[int]],
        skip_special_tokens: bool = True,
        prompt: str | bool | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Ids ``(N, L)`` -> N strings, special tokens removed.

        Args:
            sequences: generated or tokenised ids.
            skip_special_tokens: drop ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[DEC]``, ``[ENC]``.
            prompt: strip a leading caption prompt: ``True`` strips :attr:`prompt`, a string strips that
                string, ``None``/``False`` strips nothing (LAVIS's captioner returns captions without it).
            kwargs: passed to the tokenizer's ``batch_decode``.
        """
        texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=skip_special_tokens, **kwargs)
        return self._strip_prompt([t.strip() for t in texts], prompt)

    def decode(
        self,
        token_ids: torch.Tensor | Sequence[int],
        skip_special_tokens: bool = True,
        prompt: str | bool | None = None,
        **kwargs: Any,
    ) -> str:
        """One id sequence ``(L,)`` -> string; arguments as :meth:`batch_decode`."""
        text = self.tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens, **kwargs)
        return self._strip_prompt([text.strip()], prompt)[0]


#: The name the BLIP brief uses; the class itself is named ``VlHubBlipProcessor`` (see the module docstring).
BlipProcessor = VlHubBlipProcessor


def register_processing() -> None:
    """Registers the BLIP image processor and processor for ``BlipConfig`` (idempotent)."""
    # Same entry as AutoImageProcessor.register(BlipConfig, ...), written on its mapping directly: that
    # method first merges with the mapping it finds for the config, found by class *name*, and
    # "BlipConfig" names transformers' BLIP, whose processors it would import (warning about torchvision
    # on every `import vl_hub`). The class works on PIL/numpy whatever backend transformers picks; listing
    # it under both backend names avoids a "falling back to pil" warning when torchvision is installed.
    IMAGE_PROCESSOR_MAPPING.register(
        BlipConfig, {"pil": VlHubBlipImageProcessor, "torchvision": VlHubBlipImageProcessor}, exist_ok=True
    )
    AutoProcessor.register(BlipConfig, VlHubBlipProcessor, exist_ok=True)
