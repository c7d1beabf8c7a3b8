"""Suite-wide settings: offline hub, deterministic CPU, the LAVIS reference folder."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The LAVIS golden-reference folder (``VLHUB_REFERENCE_DIR``, default ``../shared/reference/lavis``).

    Missing folder: skip locally, fail under ``CI=true``.
    """
    path = Path(os.environ.get("VLHUB_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference" / "lavis"))
    if not path.is_dir():
        message = f"LAVIS reference folder not found at {path}; set VLHUB_REFERENCE_DIR"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``tests/fixtures``: committed tiny files (BERT vocab, ...)."""
    return FIXTURES
