"""What every tab of a running demo shares: the models, the search gallery, the dataset browser, example images."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vl_hub.demo.dataset_browser import DatasetBrowser
from vl_hub.demo.gallery_index import GalleryIndex
from vl_hub.demo.models import ModelBundle, ModelManager

__all__ = ["DemoContext", "example_images"]


@dataclass
class DemoContext:
    """State of one demo server (shared by every session; models and indexes are read-only while serving).

    Attributes:
        models: the bundles served.
        browser: the dataset browser.
        cache_dir: the demo's own cache (gallery features, example images).
        gallery_factory: builds the search gallery on first use (indexing can take a while: not at start-up).
        examples: example image files offered under every image input.
    """

    models: ModelManager
    browser: DatasetBrowser
    cache_dir: Path
    gallery_factory: Callable[[], GalleryIndex]
    examples: list[str] = field(default_factory=list)
    _gallery: GalleryIndex | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bundle(self, name: str | None) -> ModelBundle:
        """The bundle picked in the page (loaded on first use)."""
        return self.models.get(name)

    def gallery(self) -> GalleryIndex:
        """The search gallery (built once)."""
        with self._lock:
            if self._gallery is None:
                self._gallery = self.gallery_factory()
            return self._gallery


def example_images(folder: str | os.PathLike[str], count: int = 4, size: int = 128) -> list[str]:
    """Writes ``count`` synthetic shape images (``vl_hub_shapes`` drawings, seed 0) into ``folder`` once and returns
    their paths: examples for the image inputs that need no download."""
    from vl_hub.data import synthetic

    root = Path(folder)
    paths = [root / f"shapes_{i}.png" for i in range(count)]
    if all(p.is_file() for p in paths):
        return [str(p) for p in paths]
    root.mkdir(parents=True, exist_ok=True)
    _, scenes = synthetic.scenes_for("image_text", 0, "test", count, size)
    for path, scene in zip(paths, scenes, strict=True):
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        synthetic.draw(scene.objects, size).save(tmp, format="PNG")
        os.replace(tmp, path)
    return [str(p) for p in paths]
