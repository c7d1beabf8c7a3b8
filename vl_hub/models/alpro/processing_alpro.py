"""ALPRO processor: the video processor plus the plain BERT WordPiece tokenizer (LAVIS ``AlproBase.init_tokenizer``,
``bert-base-uncased`` with no added tokens).

Text is normalised as LAVIS's ALPRO configs do -- with the ``blip_caption`` processor (:func:`pre_caption`) for
captions *and* questions -- and padded to ``max_length`` (``max_txt_len``: 35 for retrieval, 40 for QA), as ALPRO's
heads tokenise with ``padding="max_length"``.

``register_processing()`` registers :class:`AlproProcessor` with ``AutoProcessor`` for ``AlproConfig`` and, when
transformers' ``AutoVideoProcessor`` is usable (it needs torchvision), the video processor with it. Because that Auto
class is a placeholder without torchvision, :class:`AlproProcessor` resolves its video processor itself (see
:mod:`vl_hub.models.alpro.video_processing_alpro` for the reasons).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import AutoProcessor, BertTokenizerFast, PreTrainedTokenizerBase
from transformers.image_processing_base import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import is_torchvision_available
from transformers.video_processing_utils import VideoProcessorMixin

from vl_hub.models.alpro.configuration_alpro import AlproConfig
from vl_hub.models.alpro.video_processing_alpro import AlproVideoProcessor
from vl_hub.processing.text import pre_caption

__all__ = ["AlproProcessor", "build_alpro_tokenizer", "register_processing"]

TextMode = Literal["caption", "question"] | None
_TEXT_MODES = ("caption", "question", None)


def _read_vocab(vocab_file: Path) -> dict[str, int]:
    """WordPiece ``vocab.txt``: one token per line, id = line number."""
    with open(vocab_file, encoding="utf-8") as handle:
        vocab = {line.rstrip("\n"): index for index, line in enumerate(handle)}
    if not vocab:
        raise ValueError(f"vocab file {vocab_file} is empty; expected one WordPiece token per line")
    return vocab


def build_alpro_tokenizer(vocab_file_or_dir: str | os.PathLike[str], do_lower_case: bool = True) -> PreTrainedTokenizerBase:
    """The ALPRO tokenizer: BERT WordPiece, lower-case, nothing added (``[CLS]`` ... ``[SEP]``, ``[PAD]``).

    Args:
        vocab_file_or_dir: a WordPiece ``vocab.txt`` (``bert-base-uncased``'s for real checkpoints), or a folder
            holding a saved tokenizer (``tokenizer.json`` / ``tokenizer_config.json``) or a ``vocab.txt``.
        do_lower_case: lower-case and strip accents before WordPiece (the uncased vocabulary).

    Returns:
        a ``BertTokenizerFast``.

    Raises:
        FileNotFoundError: the path does not exist, or the folder holds no tokenizer files.
    """
    path = Path(vocab_file_or_dir)
    if not path.exists():
        raise FileNotFoundError(f"tokenizer vocab {str(path)!r} does not exist; pass a WordPiece vocab.txt or a folder")
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


class AlproProcessor(ProcessorMixin):
    """Video processor + BERT tokenizer in one call, with LAVIS's caption normaliser.

    Args:
        video_processor: an :class:`~vl_hub.models.alpro.video_processing_alpro.AlproVideoProcessor`.
        tokenizer: the plain BERT tokenizer (:func:`build_alpro_tokenizer`).
        max_txt_len: ``max_length`` of every text (padding and truncation): 35 for retrieval, 40 for QA.
        max_words: words kept by the normaliser (LAVIS ``blip_caption``'s ``max_words``, 50).
    """

    def __init__(
        self,
        video_processor: AlproVideoProcessor,
        tokenizer: PreTrainedTokenizerBase,
        max_txt_len: int = 35,
        max_words: int = 50,
    ) -> None:
        if isinstance(max_txt_len, bool) or not isinstance(max_txt_len, int) or max_txt_len < 2:
            raise ValueError(f"max_txt_len must be an int >= 2 (room for [CLS] and [SEP]); got {max_txt_len!r}")
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
            raise ValueError(f"max_words must be a positive int; got {max_words!r}")
        super().__init__(video_processor, tokenizer)
        self.max_txt_len = max_txt_len
        self.max_words = max_words

    # ------------------------------------------------------------------ transformers plumbing
    def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> type:
        """As ``ProcessorMixin``'s, but checks the video processor against ``VideoProcessorMixin`` directly: without
        torchvision transformers resolves that name through a placeholder that cannot be used."""
        if argument_name == "video_processor":
            if not isinstance(argument, VideoProcessorMixin):
                raise TypeError(
                    f"video_processor must be a video processor (e.g. AlproVideoProcessor), got {type(argument).__name__}"
                )
            return VideoProcessorMixin
        return super().check_argument_for_proper_class(argument_name, argument)

    @classmethod
    def _get_arguments_from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike[str], processor_dict: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """``[video_processor, tokenizer]`` of a saved processor: the tokenizer through ``AutoTokenizer``, the video
        processor as :class:`AlproVideoProcessor` (it reads the nested ``processor_config.json`` entry or
        ``video_preprocessor_config.json``) instead of the torchvision-only ``AutoVideoProcessor``."""
        subfolder = kwargs.pop("subfolder", "")
        tokenizer = cls._load_tokenizer_from_pretrained("tokenizer", pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        video_processor = AlproVideoProcessor.from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        return [video_processor, tokenizer]

    # ------------------------------------------------------------------ properties
    @property
    def model_input_names(self) -> list[str]:
        """``["pixel_values", "input_ids", "attention_mask"]``."""
        return ["pixel_values", "input_ids", "attention_mask"]

    @property
    def num_frames(self) -> int:
        """Frames sampled per video file (the video processor's ``num_frames``)."""
        return int(self.video_processor.num_frames)

    @property
    def image_size(self) -> int:
        """Frame side ``S`` of ``pixel_values``."""
        return int(self.video_processor.image_size)

    # ------------------------------------------------------------------ text
    def normalize_text(self, text: str | Sequence[str], text_mode: TextMode = None) -> list[str]:
        """The strings that get tokenised. ``text_mode="caption"`` and ``"question"`` both apply LAVIS's
        ``pre_caption`` (ALPRO's configs use the ``blip_caption`` processor for questions too); ``None`` keeps the
        text as is."""
        if text_mode not in _TEXT_MODES:
            raise ValueError(f"text_mode must be 'caption', 'question' or None; got {text_mode!r}")
        texts = _as_text_list(text)
        if text_mode is not None:
            texts = [pre_caption(t, self.max_words) for t in texts]
        return texts

    def __call__(
        self,
        videos: Any = None,
        text: str | Sequence[str] | None = None,
        images: Any = None,
        padding: bool | str = "max_length",
        truncation: bool = True,
        max_length: int | None = None,
        return_tensors: Literal["pt", "np"] | None = "pt",
        text_mode: TextMode = None,
        do_augment: bool | None = None,
        num_frames: int | None = None,
        sampling: str | None = None,
        generator: np.random.Generator | None = None,
    ) -> BatchFeature:
        """Prepares videos and text for an ALPRO head.

        Args:
            videos: one video or a list (file paths, ``uint8 (T, H, W, 3)`` arrays or lists of frames; see
                :meth:`AlproVideoProcessor.preprocess`).
            text: one string or a list.
            images: not supported (ALPRO takes videos); raises with the fix.
            padding, truncation: as the tokenizer's (``"max_length"`` and ``True``: ALPRO's settings).
            max_length: text length in tokens (default :attr:`max_txt_len`).
            return_tensors: ``"pt"``, ``"np"`` or ``None``.
            text_mode: ``"caption"`` / ``"question"`` (LAVIS ``pre_caption``) or ``None``.
            do_augment: training transform and training frame sampling for this call.
            num_frames, sampling: override the video processor's for files in this call.
            generator: randomness of training sampling and augmentation for this call.

        Returns:
            ``BatchFeature`` with ``pixel_values`` float32 ``(B, T, 3, S, S)`` when videos are given and
            ``input_ids`` / ``attention_mask`` ``(N, max_length)`` int64 when text is (``[CLS]`` first; no
            ``token_type_ids``: ALPRO's are all zero). Video and text counts are not tied (retrieval pairs one video
            with many texts).
        """
        if images is not None:
            raise ValueError(
                "ALPRO takes videos, not images: pass videos=... (paths or frames); a still image can be given as a "
                "one-frame video repeated num_frames times"
            )
        if videos is None and text is None:
            raise ValueError("nothing to process: pass videos=... and/or text=...")
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None; got {return_tensors!r}")
        data: dict[str, Any] = {}
        if videos is not None:
            data.update(
                self.video_processor(
                    videos, return_tensors=return_tensors, do_augment=do_augment, num_frames=num_frames,
                    sampling=sampling, generator=generator,
                )
            )
        if text is not None:
            max_length = self.max_txt_len if max_length is None else max_length
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
                raise ValueError(f"max_length must be an int >= 2 (room for [CLS] and [SEP]); got {max_length!r}")
            encoded = self.tokenizer(
                self.normalize_text(text, text_mode),
                padding=padding,
                truncation=truncation,
                max_length=max_length,
                return_tensors=return_tensors,
                return_token_type_ids=False,
            )
            data["input_ids"] = encoded["input_ids"]
            data["attention_mask"] = encoded["attention_mask"]
        return BatchFeature(data, tensor_type=return_tensors)

    def batch_decode(self, sequences: torch.Tensor | Sequence[Sequence[int]], skip_special_tokens: bool = True,
                     **kwargs: Any) -> list[str]:
        """Ids ``(N, L)`` -> N strings (special tokens removed by default)."""
        return [t.strip() for t in self.tokenizer.batch_decode(sequences, skip_special_tokens=skip_special_tokens, **kwargs)]

    def decode(self, token_ids: torch.Tensor | Sequence[int], skip_special_tokens: bool = True, **kwargs: Any) -> str:
        """One id sequence ``(L,)`` -> string."""
        return self.tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens, **kwargs).strip()


def register_processing() -> None:
    """Registers :class:`AlproProcessor` with ``AutoProcessor`` and, when torchvision makes transformers'
    ``AutoVideoProcessor`` usable, :class:`AlproVideoProcessor` with it (idempotent)."""
    AutoProcessor.register(AlproConfig, AlproProcessor, exist_ok=True)
    if is_torchvision_available():
        from transformers.models.auto.video_processing_auto import AutoVideoProcessor

        AutoVideoProcessor.register(
            AlproConfig,
            video_processor_classes={"torchvision": AlproVideoProcessor, "pil": AlproVideoProcessor},
            exist_ok=True,
        )
