"""Reading the webdataset tar shards that img2dataset writes, for the web-corpus builders in
``dataset_scripts/`` (SBU, CC3M, CC12M, LAION).

A shard ``NNNNN.tar`` holds consecutive members per sample, ``<key>.jpg``, ``<key>.txt`` (the caption)
and ``<key>.json`` (``{"url", "caption", "key", ...}``). Tars are read through ``dl_manager.iter_archive``,
so the same code prepares and streams. A builder's methods then read::

    def _split_generators(self, dl_manager):
        return [shard_split_generator("sbu_caption", self.config.data_dir, _INSTRUCTIONS, dl_manager)]

    def _generate_examples(self, shards, shard_names, archives):
        build = partial(image_text_example, verify_media=self.config.verify_media)
        yield from iter_webdataset_examples(self.config, shards, shard_names, archives, build)

A bad sample (no image, undecodable image, no caption, malformed JSON) raises
:class:`~vl_hub.data.builder_utils.InvalidExampleError` naming the shard and member, or is skipped and
counted with ``skip_invalid=True``; a truncated tar keeps the samples read before the damage.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, BinaryIO

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    guarded_examples,
    image_decode_error,
    missing_data_error,
    require_data_dir,
)

#: image member extensions, in the order a sample's image is looked up.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")

# webdataset convention: the sample key is the member path up to the first dot of its file name
_MEMBER = re.compile(r"^((?:.*/)?[^/.]+)\.([^/]*)$")

#: ``(shard path, sample key, {extension: bytes})`` -> one example of the builder's schema.
SampleBuilder = Callable[[str, str, dict[str, bytes]], dict[str, Any]]


def shard_split_generator(
    dataset: str,
    data_dir: str | os.PathLike[str] | None,
    instructions: str,
    dl_manager: datasets.DownloadManager,
) -> datasets.SplitGenerator:
    """The single ``train`` split over every ``*.tar`` below ``data_dir`` (sub-folders too, sorted by path).

    Its ``gen_kwargs`` are ``shards`` (absolute paths), ``shard_names`` (paths relative to ``data_dir``,
    the prefix of each example key) and ``archives`` (``dl_manager.iter_archive`` of each shard), the
    arguments of :func:`iter_webdataset_examples`.

    Raises:
        MissingDataError: ``data_dir`` is unset, missing, or holds no tar; the message carries ``instructions``.
    """
    root = require_data_dir(dataset, data_dir, instructions).resolve()
    shards = sorted(root.rglob("*.tar"))
    if not shards:
        raise missing_data_error(dataset, root / "*.tar", instructions)
    return datasets.SplitGenerator(
        name=datasets.Split.TRAIN,
        gen_kwargs={
            "shards": [str(p) for p in shards],
            "shard_names": [p.relative_to(root).as_posix() for p in shards],
            # iter_archive reads tars the same way whether preparing or streaming
            "archives": [dl_manager.iter_archive(str(p)) for p in shards],
        },
    )


def iter_tar_samples(
    shard: str, archive: Iterable[tuple[str, BinaryIO]]
) -> Iterator[tuple[str, dict[str, bytes] | InvalidExampleError]]:
    """Groups consecutive tar members sharing a key into ``(key, {extension: bytes})``.

    ``archive`` yields ``(member name, file object)`` like ``dl_manager.iter_archive``. Extensions are
    lower-cased; members without one are not part of any sample and are ignored. The bytes are read
    while the tar stream is positioned on the member: a streamed tar cannot seek back. A truncated or
    corrupt tar ends the shard with one ``(key, InvalidExampleError)`` item, so that ``skip_invalid``
    keeps the samples read before the damage.
    """
    key: str | None = None
    files: dict[str, bytes] = {}
    try:
        for name, fileobj in archive:
            match = _MEMBER.match(name)
            if match is None:
                continue
            member_key, ext = match.group(1), match.group(2).lower()
            if member_key != key:
                if key is not None:
                    yield key, files
                key, files = member_key, {}
            files[ext] = fileobj.read()
    except (tarfile.TarError, EOFError, OSError) as err:
        where = f"after sample {key!r}" if key is not None else "at its start"
        yield (
            f"{key}#unreadable",
            InvalidExampleError(
                f"{shard}: the tar archive is truncated or corrupt {where} ({type(err).__name__}: {err}); "
                "re-download the shard, or pass skip_invalid=True to keep the samples before the damage"
            ),
        )
        return
    if key is not None:
        yield key, files


def iter_webdataset_examples(
    config: datasets.BuilderConfig,
    shards: list[str],
    shard_names: list[str],
    archives: list[Iterable[tuple[str, BinaryIO]]],
    build: SampleBuilder,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key, example)`` for every sample of every shard, keyed ``"<shard name>/<sample key>"``.

    Each shard is one :func:`~vl_hub.data.builder_utils.guarded_examples` source (its skip report is
    under the shard path); ``build(shard, key, files)`` makes the example and raises
    ``InvalidExampleError`` for a bad sample.
    """
    for shard, shard_name, archive in zip(shards, shard_names, archives, strict=True):
        examples = (
            (
                f"{shard_name}/{key}",
                files if isinstance(files, Exception) else partial(build, shard, key, files),
            )
            for key, files in iter_tar_samples(shard, archive)
        )
        yield from guarded_examples(config, examples, where=shard)


def image_text_example(
    shard: str,
    key: str,
    files: dict[str, bytes],
    verify_media: bool = True,
    caption_lists: bool = False,
) -> dict[str, Any]:
    """The ``image_text`` row of one sample: ``{"image_id", "image": {"path", "bytes"}, "captions"}``.

    The image is the first member of :data:`IMAGE_EXTENSIONS`; the caption is the ``.txt`` member,
    else the ``"caption"`` string of the ``.json`` member; with ``caption_lists`` a ``.json`` holding a
    list of strings gives several captions (LAVIS's own LAION-115M shards). ``image_id`` is the
    ``"key"`` of the ``.json``, else the sample key's file name. ``verify_media`` decodes the image.

    Raises:
        InvalidExampleError: naming the shard and member, when the image or caption is missing or bad.
    """
    image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in files), None)
    if image_ext is None:
        raise InvalidExampleError(
            f"{shard}: sample {key!r} has no image member (.{'/.'.join(IMAGE_EXTENSIONS)}); it has {sorted(files)}"
        )
    meta = json_member(shard, key, files, caption_lists=caption_lists)
    captions = sample_captions(shard, key, files, meta, caption_lists=caption_lists)
    member = f"{key}.{image_ext}"
    if verify_media:
        check_image_bytes(shard, member, files[image_ext])
    return {
        "image_id": str((meta.get("key") if isinstance(meta, dict) else None) or key.rsplit("/", 1)[-1]),
        "image": {"path": member, "bytes": files[image_ext]},
        "captions": captions,
    }


def json_member(
    shard: str, key: str, files: dict[str, bytes], caption_lists: bool = False
) -> dict[str, Any] | list[Any]:
    """The parsed ``.json`` member of a sample (``{}`` when it has none): an object, or with
    ``caption_lists`` also a list.

    Raises:
        InvalidExampleError: the member is not valid JSON, or holds another type.
    """
    if "json" not in files:
        return {}
    try:
        meta = json.loads(files["json"])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidExampleError(f"{shard}: member {key}.json is not valid JSON ({err})") from err
    if caption_lists and not isinstance(meta, (dict, list)):
        raise InvalidExampleError(
            f"{shard}: member {key}.json holds a {type(meta).__name__}, expected an object or a list of captions"
        )
    if not caption_lists and not isinstance(meta, dict):
        raise InvalidExampleError(f"{shard}: member {key}.json holds a {type(meta).__name__}, expected an object")
    return meta


def sample_captions(
    shard: str, key: str, files: dict[str, bytes], meta: dict[str, Any] | list[Any], caption_lists: bool = False
) -> list[str]:
    """The stripped caption(s) of a sample: its ``.txt`` member, else (``caption_lists``) the strings
    of a non-empty JSON list ``meta``, else ``meta["caption"]``.

    Raises:
        InvalidExampleError: the ``.txt`` is not UTF-8, or the sample has no caption.
    """
    if "txt" in files:
        try:
            return [files["txt"].decode("utf-8").strip()]
        except UnicodeDecodeError as err:
            raise InvalidExampleError(f"{shard}: member {key}.txt is not UTF-8 text ({err})") from err
    if caption_lists and isinstance(meta, list) and meta and all(isinstance(c, str) for c in meta):
        return [c.strip() for c in meta]
    if isinstance(meta, dict) and isinstance(meta.get("caption"), str):
        return [meta["caption"].strip()]
    accepted = "'caption' or caption list" if caption_lists else "'caption'"
    raise InvalidExampleError(f"{shard}: sample {key!r} has no caption (no {key}.txt, no {accepted} in {key}.json)")


def check_image_bytes(shard: str, member: str, data: bytes) -> None:
    """Decodes ``data`` fully.

    Raises:
        InvalidExampleError: naming the shard and member, when it is not a readable image.
    """
    err = image_decode_error(io.BytesIO(data))
    if err is not None:
        raise InvalidExampleError(
            f"{shard}: member {member} cannot be decoded as an image ({type(err).__name__}: {err}); "
            "re-download the shard, or pass skip_invalid=True to skip such samples"
        ) from err
