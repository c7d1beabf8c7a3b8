"""CLIP processor: the CLIP image processor plus CLIP's byte-level BPE tokenizer.

The tokenizer is transformers' ``CLIPTokenizer`` (the *tokenizers*-backed class of transformers 5) built from our
own files: ``vocab.json`` + ``merges.txt``, a saved tokenizer folder, or OpenAI's ``bpe_simple_vocab_16e6.txt.gz``
(:func:`build_clip_tokenizer`). Sequences are ``<|startoftext|> ... <|endoftext|>`` of at most ``context_length``
(77) tokens; longer texts are truncated with ``<|endoftext|>`` kept last (OpenAI ``tokenize(truncate=True)``).
Text is NFC-normalised, whitespace-collapsed and lower-cased (OpenAI also runs ``ftfy``; vl_hub does not depend on
it, which only matters for mojibake input).

``register_processing()`` registers the image processor (``AutoImageProcessor``), the tokenizer
(``AutoTokenizer``) and :class:`ClipProcessor` (``AutoProcessor``) for ``ClipConfig``; ``import vl_hub`` runs it.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer, CLIPTokenizer, PreTrainedTokenizerBase
from transformers.image_processing_base import BatchFeature
from transformers.processing_utils import ProcessorMixin

from vl_hub.models.clip.configuration_clip import ClipConfig
from vl_hub.models.clip.image_processing_clip import ClipImageProcessor

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "ClipProcessor",
    "build_clip_tokenizer",
    "byte_unicode_table",
    "clip_vocab_from_merges",
    "register_processing",
]

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
#: OpenAI's BPE file holds more merges than the model uses: 49408 = 256 bytes * 2 + 48894 merges + 2 specials.
OPENAI_NUM_MERGES = 49152 - 256 - 2


def byte_unicode_table() -> dict[int, str]:
    """The byte -> printable-character table of byte-level BPE (GPT-2 / CLIP).

    Printable Latin-1 bytes (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) map to themselves; the other 68 bytes map to
    ``chr(256 + k)`` in byte order, so every byte has a visible, non-whitespace character.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def clip_vocab_from_merges(merges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """CLIP's vocabulary from its merges: the 256 byte characters (in the table's order: printable bytes first, so
    ``!`` is id 0 as in OpenAI's vocabulary), the same with ``</w>``, one token per merge, then
    ``<|startoftext|>`` and ``<|endoftext|>`` (the largest id, which CLIP pools at)."""
    chars = list(byte_unicode_table().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(pair) for pair in merges] + [BOS_TOKEN, EOS_TOKEN]
    vocab: dict[str, int] = {}
    for token in tokens:
        if token in vocab:
            raise ValueError(f"merges produce the token {token!r} twice; the merges file is not a CLIP BPE file")
        vocab[token] = len(vocab)
    return vocab


def _read_merges(path: Path) -> list[tuple[str, str]]:
    """``merges.txt`` (optionally gzipped); a ``#version`` header line is skipped. OpenAI's
    ``bpe_simple_vocab_16e6.txt.gz`` is cut to the 48,894 merges CLIP uses."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    openai_file = path.name.startswith("bpe_simple_vocab")
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    lines = [line for line in lines if line.strip()]
    if openai_file:
        lines = lines[:OPENAI_NUM_MERGES]
    merges = []
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}: merge line {number} {line!r} must hold two space-separated symbols")
        merges.append((parts[0], parts[1]))
    return merges


def build_clip_tokenizer(
    vocab: str | os.PathLike[str] | Mapping[str, int],
    merges: str | os.PathLike[str] | Sequence[tuple[str, str]] | None = None,
    context_length: int = 77,
) -> PreTrainedTokenizerBase:
    """The CLIP byte-level BPE tokenizer (transformers' ``CLIPTokenizer``) from local files.

    Args:
        vocab: one of
            * a folder with a saved tokenizer (``tokenizer.json`` / ``tokenizer_config.json``) or with
              ``vocab.json`` + ``merges.txt``;
            * a ``vocab.json`` file (then ``merges`` is the ``merges.txt``);
            * OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` (or any CLIP merges file): the vocabulary is derived from
              the merges (:func:`clip_vocab_from_merges`);
            * a ``{token: id}`` dict (then ``merges`` is a list of symbol pairs or a merges file).
        merges: see ``vocab``.
        context_length: the model's text context: ``model_max_length`` of the tokenizer (truncation length).

    Returns:
        A ``CLIPTokenizer`` padding on the right with ``<|endoftext|>``.
    """
    if isinstance(vocab, Mapping):
        if merges is None:
            raise ValueError("a vocab dict needs merges (a list of symbol pairs or a merges.txt path)")
        tokenizer = _from_vocab_and_merges(dict(vocab), merges)
    else:
        path = Path(vocab)
        if not path.exists():
            raise FileNotFoundError(
                f"tokenizer source {str(path)!r} does not exist; pass a tokenizer folder, vocab.json + merges.txt, or "
                "OpenAI's bpe_simple_vocab_16e6.txt.gz"
            )
        if path.is_dir():
            if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
                tokenizer = CLIPTokenizer.from_pretrained(str(path))
            elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
                tokenizer = _from_vocab_and_merges(
                    json.loads((path / "vocab.json").read_text(encoding="utf-8")), path / "merges.txt"
                )
            else:
                raise FileNotFoundError(
                    f"{path} holds no tokenizer.json/tokenizer_config.json nor vocab.json + merges.txt; pass a folder "
                    "saved by save_pretrained or the BPE files"
                )
        elif path.suffix == ".json":
            if merges is None:
                raise ValueError(f"vocab file {path} needs merges= (the merges.txt that goes with it)")
            tokenizer = _from_vocab_and_merges(json.loads(path.read_text(encoding="utf-8")), merges)
        else:
            pairs = _read_merges(path)
            tokenizer = _from_vocab_and_merges(clip_vocab_from_merges(pairs), pairs)
    if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 2:
        raise ValueError(f"context_length must be an int >= 2 (room for the start and end tokens); got {context_length!r}")
    tokenizer.model_max_length = context_length
    tokenizer.padding_side = "right"
    return tokenizer


def _from_vocab_and_merges(
    vocab: dict[str, int], merges: str | os.PathLike[str] | Sequence[tuple[str, str]]
) -> PreTrainedTokenizerBase:
    pairs = _read_merges(Path(merges)) if isinstance(merges, (str, os.PathLike)) else [tuple(m) for m in merges]
    missing = [t for t in (BOS_TOKEN, EOS_TOKEN) if t not in vocab]
    if missing:
        raise ValueError(f"the vocabulary lacks {missing}; a CLIP vocabulary holds {BOS_TOKEN} and {EOS_TOKEN}")
    return CLIPTokenizer(vocab=vocab, merges=pairs)


def _as_text_list(text: Any) -> list[str]:
    if isinstance(text, str):
        return [text]
    if isinstance(text, (list, tuple)):
        if not text:
            raise ValueError("text is an empty list; pass at least one string")
        for i, item in enumerate(text):
            if not isinstance(item, str):
                raise TypeError(f"text[{i}] must be a string; got {type(item).__name__}: {item!r}")
        return list(text)
    raise TypeError(f"text must be a string or a list of strings; got {type(text).__name__}")


class ClipProcessor(ProcessorMixin):
    """Image processor + CLIP tokenizer in one call.

    Args:
        image_processor: a :class:`~vl_hub.models.clip.image_processing_clip.ClipImageProcessor`.
        tokenizer: a CLIP BPE tokenizer holding ``<|startoftext|>``/``<|endoftext|>`` (:func:`build_clip_tokenizer`).
        context_length: the model's text context (77): default truncation length.
    """

    def __init__(self, image_processor: ClipImageProcessor, tokenizer: PreTrainedTokenizerBase, context_length: int = 77) -> None:
        if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 2:
            raise ValueError(f"context_length must be an int >= 2; got {context_length!r}")
        super().__init__(image_processor, tokenizer)
        for token, role in ((BOS_TOKEN, "bos_token"), (EOS_TOKEN, "eos_token")):
            if getattr(tokenizer, role, None) != token:
                raise ValueError(
                    f"the tokenizer's {role} is {getattr(tokenizer, role, None)!r}; CLIP needs {token!r} -- build it "
                    "with vl_hub.models.clip.processing_clip.build_clip_tokenizer"
                )
        # The causal text tower has no padding mask: padding must follow the text.
        tokenizer.padding_side = "right"
        self.context_length = context_length

    @property
    def model_input_names(self) -> list[str]:
        """``["pixel_values", "input_ids", "attention_mask"]``."""
        return ["pixel_values", "input_ids", "attention_mask"]

    @property
    def eos_token_id(self) -> int:
        """Id of ``<|endoftext|>`` (the token CLIP pools at)."""
        return int(self.tokenizer.eos_token_id)

    @property
    def bos_token_id(self) -> int:
        """Id of ``<|startoftext|>``."""
        return int(self.tokenizer.bos_token_id)

    def __call__(
        self,
        images: Any = None,
        text: str | Sequence[str] | None = None,
        videos: Any = None,
        padding: bool | str = True,
        truncation: bool = True,
        max_length: int | None = None,
        return_tensors: Literal["pt", "np"] | None = "pt",
        do_augment: bool | None = None,
    ) -> BatchFeature:
        """Prepares images/videos and text for a CLIP head.

        Args:
            images: one image or a list (paths, PIL images of any mode, arrays).
            text: one string or a list.
            videos: one video or a list of videos (frames lists or ``(T, H, W, 3)`` arrays).
            padding: ``True``/``"longest"`` (default), ``"max_length"`` (pad to ``max_length`` like OpenAI), ``False``.
            truncation: cut texts longer than ``max_length`` tokens, keeping ``<|endoftext|>`` last. With
                ``truncation=False`` a longer text raises.
            max_length: in tokens including the two special ones (default :attr:`context_length`).
            return_tensors: ``"pt"``, ``"np"`` or ``None``.
            do_augment: overrides the image processor's ``do_augment`` for this call.

        Returns:
            ``BatchFeature`` with ``pixel_values`` float32 ``(B, 3, S, S)`` / ``(B, T, 3, S, S)`` when images/videos are
            given, and ``input_ids``/``attention_mask`` ``(N, L)`` int64 when text is. Image and text counts are not
            tied (one image against many prompts is the zero-shot case).
        """
        if images is None and videos is None and text is None:
            raise ValueError("nothing to process: pass images=..., videos=... and/or text=...")
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None; got {return_tensors!r}")
        data: dict[str, Any] = {}
        if images is not None or videos is not None:
            data.update(self.image_processor(images, videos=videos, return_tensors=return_tensors, do_augment=do_augment))
        if text is not None:
            max_length = self.context_length if max_length is None else max_length
            if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= self.context_length:
                raise ValueError(
                    f"max_length must be an int in [2, context_length={self.context_length}]; got {max_length!r}"
                )
            texts = _as_text_list(text)
            encoded = self.tokenizer(
                texts,
                padding=padding,
                truncation=truncation,
                max_length=max_length,
                return_tensors=return_tensors,
                return_token_type_ids=False,
            )
            ids = encoded["input_ids"]
            longest = max(len(row) for row in ids) if not isinstance(ids, torch.Tensor) else ids.shape[1]
            if longest > self.context_length:
                raise ValueError(
                    f"a text has {longest} tokens, more than the context length {self.context_length}; pass "
                    "truncation=True (keeps <|endoftext|> last) or shorten the text"
                )
            data["input_ids"] = ids
            data["attention_mask"] = encoded["attention_mask"]
        return BatchFeature(data, tensor_type=return_tensors)

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = True, **kwargs: Any) -> list[str]:
        """Ids ``(N, L)`` -> N strings (special tokens and padding removed by default)."""
        return [t.strip() for t in self.tokenizer.batch_decode(sequences, skip_special_tokens=skip_special_tokens, **kwargs)]

    def decode(self, token_ids: Any, skip_special_tokens: bool = True, **kwargs: Any) -> str:
        """One id sequence ``(L,)`` -> string."""
        return self.tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens, **kwargs).strip()


def register_processing() -> None:
    """Registers the CLIP image processor, tokenizer and processor for ``ClipConfig`` (idempotent)."""
    AutoImageProcessor.register(
        ClipConfig,
        image_processor_classes={"pil": ClipImageProcessor, "torchvision": ClipImageProcessor},
        exist_ok=True,
    )
    AutoTokenizer.register(ClipConfig, tokenizer_class=CLIPTokenizer, exist_ok=True)
    AutoProcessor.register(ClipConfig, ClipProcessor, exist_ok=True)
