"""Tiny models, a small synthetic dataset cache and a demo context shared by the demo tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vl_hub.demo.context import DemoContext, example_images
from vl_hub.demo.dataset_browser import DatasetBrowser
from vl_hub.demo.default_model import build_untrained_blip
from vl_hub.demo.gallery_index import GalleryIndex
from vl_hub.demo.models import ModelBundle, ModelManager, load_model_bundle

#: sizes of the synthetic splits the demo tests generate
SYNTHETIC = {"num_train": 16, "num_validation": 8, "num_test": 8, "image_size": 64}
#: images in the search gallery of the tests (fewer than 24: the larger result counts are capped)
GALLERY_SIZE = 20


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for everything the demo tests write (model folders, caches)."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="session")
def blip_dir(demo_root: Path) -> Path:
    """The untrained tiny BLIP bundle folder (caption/, vqa/, retrieval/ + marker)."""
    return build_untrained_blip(demo_root / "untrained_blip")


@pytest.fixture(scope="session")
def blip_bundle(blip_dir: Path) -> ModelBundle:
    """The tiny BLIP bundle, loaded from its folder."""
    return load_model_bundle(blip_dir)


@pytest.fixture(scope="session")
def clip_bundle() -> ModelBundle:
    """A tiny CLIP (zero-shot head) with its BPE processor, built in memory."""
    from tests.models.clip.clip_test_utils import tiny_config, tiny_processor
    from vl_hub.models.clip.modeling_clip import ClipForZeroShotClassification

    torch.manual_seed(0)
    return ModelBundle.from_heads("tiny CLIP", [(ClipForZeroShotClassification(tiny_config()), tiny_processor())])


@pytest.fixture(scope="session")
def albef_bundle(fixtures_dir: Path) -> ModelBundle:
    """A tiny ALBEF retrieval head (4 layers, fusion from layer 2) with its processor, built in memory."""
    from tests.models.albef.reference_utils import tiny_albef_config
    from vl_hub.models.albef.modeling_albef import AlbefForImageTextRetrieval
    from vl_hub.models.albef.processing_albef import AlbefProcessor, build_albef_tokenizer
    from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor

    torch.manual_seed(0)
    tokenizer = build_albef_tokenizer(fixtures_dir / "bert_vocab.txt")
    processor = AlbefProcessor(VlHubBlipImageProcessor(image_size=32), tokenizer)
    return ModelBundle.from_heads("tiny ALBEF", [(AlbefForImageTextRetrieval(tiny_albef_config()), processor)])


@pytest.fixture(scope="session")
def datasets_cache(demo_root: Path) -> Path:
    """The ``datasets`` cache of the demo tests."""
    return demo_root / "datasets"


@pytest.fixture(scope="session")
def gallery(demo_root: Path, datasets_cache: Path) -> GalleryIndex:
    """The synthetic test split as a search gallery, features cached under the test folder."""
    return GalleryIndex.synthetic(
        cache_dir=demo_root / "cache", datasets_cache_dir=datasets_cache, num_test=GALLERY_SIZE, image_size=64
    )


@pytest.fixture(scope="session")
def ctx(demo_root: Path, datasets_cache: Path, blip_bundle, clip_bundle, albef_bundle, gallery) -> DemoContext:
    """A demo context serving the three tiny bundles (BLIP first), the synthetic gallery and browser."""
    return DemoContext(
        models=ModelManager([blip_bundle, clip_bundle, albef_bundle], catalogue=False),
        browser=DatasetBrowser(cache_dir=datasets_cache, synthetic_options=SYNTHETIC),
        cache_dir=demo_root / "cache",
        gallery_factory=lambda: gallery,
        examples=example_images(demo_root / "cache" / "examples"),
    )
