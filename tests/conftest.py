"""Shared test helpers: where ../shared is, and a skip for tests that need it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RTENHANCE_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"


def need_shared(*parts: str) -> Path:
    """Path under ../shared, or skip the calling test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the shared reference/data folder beside the repository), which is absent")
    return path
