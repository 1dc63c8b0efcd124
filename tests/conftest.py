"""Shared test settings: the real files in ../shared, reached through the project's own settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PEPR_SHARED", ROOT.parent / "shared"))
DATA_DIR = SHARED / "data"
WEIGHTS_DIR = SHARED / "weights"
REFERENCE_DIR = SHARED / "reference" / "saintslab-pepr"
NOTEBOOKS = ROOT / "notebooks"

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PEPR_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def need(path: Path) -> Path:
    """Skip a test (with the reason) when a shared file is absent on this machine."""
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture
def data_dir() -> Path:
    return need(DATA_DIR)


@pytest.fixture
def weights_dir() -> Path:
    return need(WEIGHTS_DIR)


@pytest.fixture
def reference_dir() -> Path:
    return need(REFERENCE_DIR)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One decoded-dataset cache for the whole session, so LIDC's PNGs are decoded once."""
    path = Path(os.environ.get("PEPR_TEST_CACHE", tmp_path_factory.mktemp("pepr-cache")))
    return path
