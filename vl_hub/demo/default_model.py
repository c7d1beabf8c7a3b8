"""The model the demo serves when none is named: the ``vl-hub quickstart`` checkpoint, else an untrained tiny BLIP.

:func:`default_model_dir` is the single place that decides. It returns the first quickstart folder that exists
(:func:`quickstart_dirs`: ``$VLHUB_HOME/quickstart`` when ``VLHUB_HOME`` is set, then ``./vlhub_quickstart`` -- where
``vl-hub quickstart`` writes); when there is none it builds (once) a tiny BLIP with randomly initialised captioning, VQA
and retrieval heads and a WordPiece tokenizer over the words of the synthetic ``vl_hub_shapes`` data, saved under
``$VLHUB_HOME/demo/untrained_blip`` (``VLHUB_HOME`` defaults to ``~/.cache/vl_hub``). That folder carries a
``vl_hub_demo.json`` marker (``{"untrained": true}``) so that the page labels its outputs as meaningless.

Folder layout (what :func:`vl_hub.demo.models.load_model_bundle` reads): one checkpoint folder (``config.json``,
weights, processor files), or a folder whose sub-folders are checkpoint folders (one head each).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLE_MARKER",
    "LOCAL_QUICKSTART_DIR",
    "QUICKSTART_DIRNAME",
    "UNTRAINED_DIRNAME",
    "build_untrained_blip",
    "default_model_dir",
    "quickstart_dirs",
    "synthetic_vocabulary",
    "vlhub_home",
]

#: sub-folder of ``$VLHUB_HOME`` where ``vl-hub quickstart`` saves its model
QUICKSTART_DIRNAME = "quickstart"
#: the quickstart output folder relative to the working directory (``vl-hub quickstart``'s default output)
LOCAL_QUICKSTART_DIR = "vlhub_quickstart"
#: where the untrained fallback is saved, under ``$VLHUB_HOME``
UNTRAINED_DIRNAME = os.path.join("demo", "untrained_blip")
#: optional JSON file in a model folder: ``{"name": ..., "untrained": bool, "description": ...}``
BUNDLE_MARKER = "vl_hub_demo.json"

_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# the untrained fallback: small enough to build in a second and run every tab instantly on a CPU
_TINY_VISION = {"image_size": 64, "patch_size": 8, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
_TINY_TEXT = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "max_position_embeddings": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def vlhub_home() -> Path:
    """``$VLHUB_HOME``, or ``~/.cache/vl_hub``."""
    return Path(os.environ.get("VLHUB_HOME") or Path.home() / ".cache" / "vl_hub").expanduser()


def quickstart_dirs() -> list[Path]:
    """Where a ``vl-hub quickstart`` model may be, in the order they are tried: ``$VLHUB_HOME/quickstart`` (only when
    ``VLHUB_HOME`` is set, as ``vl-hub quickstart`` writes there only then), then ``./vlhub_quickstart``."""
    local = Path.cwd() / LOCAL_QUICKSTART_DIR
    return [vlhub_home() / QUICKSTART_DIRNAME, local] if os.environ.get("VLHUB_HOME") else [local]


def _holds_checkpoint(folder: Path) -> bool:
    if (folder / "config.json").is_file():
        return True
    return folder.is_dir() and any((sub / "config.json").is_file() for sub in folder.iterdir() if sub.is_dir())


def default_model_dir(build: bool = True, untrained_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The model folder the demo serves by default.

    Args:
        build: when no quickstart folder exists, build the untrained tiny BLIP (if not built yet) and return its
            folder; ``False`` returns ``None`` instead.
        untrained_dir: where the untrained BLIP goes (default ``$VLHUB_HOME/demo/untrained_blip``).

    Returns:
        The first folder of :func:`quickstart_dirs` holding a checkpoint, else the untrained BLIP folder (or ``None``).
    """
    for folder in quickstart_dirs():
        if _holds_checkpoint(folder):
            return folder
    if not build:
        return None
    target = Path(untrained_dir) if untrained_dir is not None else vlhub_home() / UNTRAINED_DIRNAME
    if not (target / BUNDLE_MARKER).is_file():
        build_untrained_blip(target)
    return target


def synthetic_vocabulary() -> list[str]:
    """Every word (and punctuation mark) of the synthetic ``vl_hub_shapes`` texts, sorted: captions, questions,
    answers, statements and hypotheses of every config, plus the captioning prompt ``"a picture of"``."""
    from vl_hub.data import synthetic
    from vl_hub.data.schemas import SCHEMA_TASKS

    texts: list[str] = ["a picture of", *synthetic.ANSWER_VOCABULARY, *synthetic.NEUTRAL_ADJECTIVES]
    for task in SCHEMA_TASKS:
        _, scenes = synthetic.scenes_for(task, 0, "train", 64, 64)
        for _, row in synthetic.task_rows(task, "train", scenes, ["x"] * len(scenes), 0, label_by="shape"):
            texts.extend(_strings(row, skip=("image", "video", "image0", "image1")))
    words: set[str] = {",", ".", "'", "!"}  # punctuation a user may type
    for text in texts:
        words.update(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower()))
    return sorted(words)


def _strings(value: Any, skip: tuple[str, ...] = ()) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        kept = [v for k, v in value.items() if k not in skip and k != "id" and not k.endswith("_id")]
        return [s for v in kept for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def build_untrained_blip(folder: str | os.PathLike[str], seed: int = 0) -> Path:
    """Saves a tiny randomly initialised BLIP bundle into ``folder``: ``caption/``
    (``BlipForConditionalGeneration``), ``vqa/`` (``BlipForQuestionAnswering``), ``retrieval/``
    (``BlipForImageTextRetrieval``), each with its processor (64 px images, the :func:`synthetic_vocabulary`
    tokenizer), and the ``vl_hub_demo.json`` marker saying it is untrained.

    Returns:
        ``folder``.
    """
    import tempfile

    import torch

    from vl_hub.models.blip.configuration_blip import BlipConfig
    from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor
    from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval
    from vl_hub.models.blip.modeling_blip_generation import BlipForConditionalGeneration, caption_prompt_ids
    from vl_hub.models.blip.modeling_blip_vqa import BlipForQuestionAnswering
    from vl_hub.models.blip.processing_blip import VlHubBlipProcessor, build_blip_tokenizer

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # built beside the target and renamed into place: a half-written folder is never mistaken for a model
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    vocab_file = work / "vocab.txt"
    vocab_file.write_text("\n".join([*_SPECIAL_TOKENS, *synthetic_vocabulary()]) + "\n", encoding="utf-8")
    tokenizer = build_blip_tokenizer(vocab_file)
    vocab_file.unlink()
    prompt = "a picture of "
    text = dict(
        _TINY_TEXT,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id,
        cls_token_id=tokenizer.cls_token_id,
        enc_token_id=tokenizer.enc_token_id,
    )
    heads = {
        "caption": (BlipForConditionalGeneration, prompt),
        "vqa": (BlipForQuestionAnswering, ""),
        "retrieval": (BlipForImageTextRetrieval, ""),
    }
    for index, (sub, (head, head_prompt)) in enumerate(heads.items()):
        config = BlipConfig(
            vision_config=dict(_TINY_VISION),
            text_config=dict(text),
            embed_dim=32,
            queue_size=16,
            k_test=16,
            max_txt_len=30,
            prompt=head_prompt,
            prompt_input_ids=caption_prompt_ids(tokenizer, head_prompt) if head_prompt else None,
            num_answer_candidates=8,
        )
        torch.manual_seed(seed + index)
        model = head(config).eval()
        processor = VlHubBlipProcessor(
            VlHubBlipImageProcessor(image_size=_TINY_VISION["image_size"]),
            tokenizer,
            max_txt_len=30,
            prompt=head_prompt,
        )
        model.save_pretrained(work / sub)
        processor.save_pretrained(work / sub)
    marker = {
        "name": "untrained tiny BLIP",
        "untrained": True,
        "description": (
            "Randomly initialised tiny BLIP (captioning, VQA and retrieval heads; vocabulary of the synthetic "
            "vl_hub_shapes data). Its outputs are meaningless: run `vl-hub quickstart` to train one, or start the "
            "demo with `--model <checkpoint folder or catalogue name>`."
        ),
    }
    (work / BUNDLE_MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    os.replace(work, folder)
    return folder
