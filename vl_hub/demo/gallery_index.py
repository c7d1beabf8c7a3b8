"""The search gallery: images indexed once per model, features cached on disk.

A gallery is a folder of image files or the images of a dataset split (``vl_hub.load_dataset``; by default the
synthetic ``vl_hub_shapes`` test split). :meth:`GalleryIndex.features` encodes every image once per model head and
stores the ``(N, E)`` normalised features in ``<cache_dir>/gallery/<key>.safetensors``, where ``key`` hashes the
head's weights (:meth:`~vl_hub.demo.models.LoadedHead.fingerprint`) and the gallery's contents (file names, sizes and
times, or the dataset's fingerprint): a new model or a changed gallery is re-encoded, a restart is not.

:meth:`GalleryIndex.search` ranks the gallery for a text by cosine similarity, and optionally re-ranks the top
results with the ITM head (recomputing only those images' vision tokens, so nothing but ``(N, E)`` is kept).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vl_hub.demo import heads
from vl_hub.demo.inputs import DemoInputError
from vl_hub.demo.models import LoadedHead

logger = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "GalleryIndex", "SearchHit"]

#: files a folder gallery indexes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


@dataclass
class SearchHit:
    """One search result: gallery position, item id, the score it was ranked by and both scores."""

    index: int
    item_id: str
    score: float
    cosine: float
    itm: float | None = None


class GalleryIndex:
    """Images to search, with their features cached per model.

    Args:
        item_ids: one id per image (file name or dataset ``image_id``).
        load: ``load(indices) -> list of RGB PIL images``.
        content_key: identifies the contents (changes when the images do).
        description: shown in the page.
        cache_dir: where features are stored (``None``: memory only).
    """

    def __init__(
        self,
        item_ids: Sequence[str],
        load: Callable[[Sequence[int]], list[Image.Image]],
        content_key: str,
        description: str,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not item_ids:
            raise DemoInputError(f"The search gallery ({description}) holds no image.")
        self.item_ids = list(item_ids)
        self._load = load
        self.content_key = content_key
        self.description = description
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._features: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()
        self.encode_count = 0  # how many times the whole gallery was encoded (tests check the cache)

    def __len__(self) -> int:
        return len(self.item_ids)

    # ------------------------------------------------------------------ sources
    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
    ) -> GalleryIndex:
        """Every image file under ``folder`` (recursively, sorted).

        Raises:
            DemoInputError: the folder is missing or holds no image file.
        """
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise DemoInputError(f"The gallery folder {root} does not exist; pass a folder of images.")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DemoInputError(f"The gallery folder {root} holds no image ({', '.join(IMAGE_SUFFIXES)}).")
        digest = hashlib.sha256(str(root.resolve()).encode())
        for file in files:
            stat = file.stat()
            digest.update(f"{file.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}".encode())

        def load(indices: Sequence[int]) -> list[Image.Image]:
            return [_open_rgb(files[i]) for i in indices]

        ids = [str(f.relative_to(root)) for f in files]
        return cls(ids, load, digest.hexdigest()[:24], f"{len(files)} images in {root}", cache_dir)

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        description: str,
        cache_dir: str | os.PathLike[str] | None = None,
        image_column: str = "image",
        id_column: str = "image_id",
    ) -> GalleryIndex:
        """The distinct images of a ``datasets.Dataset`` (rows sharing an ``id_column`` value are one image)."""
        if image_column not in dataset.column_names:
            raise DemoInputError(
                f"{description} has no {image_column!r} column (columns: {dataset.column_names}); pick an image split"
            )
        if id_column in dataset.column_names:
            ids = dataset[id_column]
            first: dict[str, int] = {}
            for row, item in enumerate(ids):
                first.setdefault(str(item), row)
            rows, item_ids = list(first.values()), list(first)
        else:
            rows, item_ids = list(range(len(dataset))), [str(i) for i in range(len(dataset))]
        fingerprint = getattr(dataset, "_fingerprint", None) or description

        def load(indices: Sequence[int]) -> list[Image.Image]:
            images = dataset.select([rows[i] for i in indices])[image_column]
            return [image.convert("RGB") for image in images]

        key = hashlib.sha256(f"{fingerprint}|{image_column}|{id_column}|{len(rows)}".encode()).hexdigest()[:24]
        return cls(item_ids, load, key, f"{len(rows)} images of {description}", cache_dir)

    @classmethod
    def synthetic(
        cls, cache_dir: str | os.PathLike[str] | None = None, datasets_cache_dir: str | os.PathLike[str] | None = None,
        num_test: int = 64, image_size: int = 64,
    ) -> GalleryIndex:
        """The test split of the synthetic ``vl_hub_shapes`` images (generated on first use, no download)."""
        import vl_hub

        ds = vl_hub.load_dataset(
            "vl_hub_shapes", config_name="image_text", split="test", cache_dir=datasets_cache_dir,
            num_train=1, num_validation=0, num_test=num_test, image_size=image_size,
        )
        return cls.from_dataset(ds, "the synthetic vl_hub_shapes test split", cache_dir)

    # ------------------------------------------------------------------ images and features
    def images(self, indices: Sequence[int]) -> list[Image.Image]:
        """The RGB images at ``indices``."""
        return self._load(list(indices))

    def cache_file(self, head: LoadedHead) -> Path | None:
        """Where the features of ``head`` are stored (``None`` without a cache folder)."""
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(f"{head.fingerprint()}|{self.content_key}".encode()).hexdigest()[:32]
        return self.cache_dir / "gallery" / f"{key}.safetensors"

    def features(self, head: LoadedHead, batch_size: int = 32) -> torch.Tensor:
        """``(N, E)`` normalised image features of the gallery for ``head``: from memory, the disk cache, or
        encoded now (and saved)."""
        key = f"{head.fingerprint()}|{self.content_key}"
        with self._lock:
            if key in self._features:
                return self._features[key]
            path = self.cache_file(head)
            feats = self._read_cache(path)
            if feats is None:
                feats = self._encode(head, batch_size)
                self._write_cache(path, feats)
            self._features[key] = feats
            return feats

    def _encode(self, head: LoadedHead, batch_size: int) -> torch.Tensor:
        self.encode_count += 1
        chunks = []
        for start in range(0, len(self), batch_size):
            chunk = self.images(range(start, min(start + batch_size, len(self))))
            chunks.append(heads.image_features(head, chunk, batch_size=batch_size))
        return torch.cat(chunks)

    def _read_cache(self, path: Path | None) -> torch.Tensor | None:
        if path is None or not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if json.loads(meta.get("item_ids", "[]")) != self.item_ids:
                    return None
                return f.get_tensor("image_feat")
        except Exception as err:  # a damaged cache file is rebuilt, not fatal
            logger.warning("ignoring unreadable gallery cache %s: %s", path, err)
            return None

    def _write_cache(self, path: Path | None, feats: torch.Tensor) -> None:
        if path is None:
            return
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        save_file({"image_feat": feats.contiguous()}, str(tmp), metadata={"item_ids": json.dumps(self.item_ids)})
        os.replace(tmp, path)

    # ------------------------------------------------------------------ search
    def search(
        self,
        feature_head: LoadedHead,
        text: str,
        top_k: int,
        itm_head: LoadedHead | None = None,
    ) -> list[SearchHit]:
        """The ``top_k`` gallery images for ``text``, best first.

        Args:
            feature_head: ranks by cosine similarity of its image and text features.
            text: the query.
            top_k: results wanted (capped at the gallery size).
            itm_head: re-rank the ``top_k`` by this head's ITM match probability (ties keep the cosine order).
        """
        k = max(1, min(int(top_k), len(self)))
        image_feat = self.features(feature_head)
        text_feat = heads.text_features(feature_head, [text])[0]
        cosine = image_feat @ text_feat  # (N,)
        top = cosine.topk(k)
        order = top.indices.tolist()
        cos = top.values.tolist()
        if itm_head is None:
            return [SearchHit(i, self.item_ids[i], c, c) for i, c in zip(order, cos)]
        embeds = heads.encode_image_tokens(itm_head, self.images(order))
        itm = heads.itm_probabilities(itm_head, embeds, [text]).tolist()
        ranked = sorted(range(k), key=lambda j: -itm[j])  # stable: equal ITM keeps the cosine order
        return [SearchHit(order[j], self.item_ids[order[j]], itm[j], cos[j], itm[j]) for j in ranked]


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")
