"""Shared fixtures. Reference data at ../shared/data is optional: tests that need it skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$AFFINITOMO_SHARED_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("AFFINITOMO_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (set AFFINITOMO_SHARED_DATA)")
    return path
