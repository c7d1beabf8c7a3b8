"""ALPRO test fixtures: ``make_mp4`` (videos with known per-frame content) is shared with the processing tests."""

from tests.processing.conftest import make_mp4  # noqa: F401 - re-exported as a fixture for this folder
