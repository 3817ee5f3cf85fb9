"""Bundled weights: the default GTCRN and other named candidates, checked by sha256 at load.

``manifest.json`` names the default file and its digest, and under ``"candidates"`` other bundled
weights by name (``--weights NAME``); ``resolve_model`` turns a ``--weights`` argument (a path, a
bundled name, or nothing for the default) into a loaded model.
"""

from __future__ import annotations

import json
from pathlib import Path

from rtenhance.model.checkpoint import CheckpointError, load_model
from rtenhance.model.gtcrn import GTCRN

WEIGHTS_DIR = Path(__file__).resolve().parent
MANIFEST = WEIGHTS_DIR / "manifest.json"  # {"file": "gtcrn_default.pt", "sha256": "..."}
DEFAULT_NAME = "default"


class NoWeightsError(CheckpointError):
    """No ``--weights`` given and no bundled weights exist."""


def bundled_weights() -> tuple[Path, str] | None:
    """(path, sha256) of the bundled default weights, or None when the package ships none."""
    if not MANIFEST.is_file():
        return None
    entry = json.loads(MANIFEST.read_text())
    return WEIGHTS_DIR / entry["file"], entry["sha256"]


def bundled_candidates() -> dict[str, tuple[Path, str]]:
    """{name: (path, sha256)} of the bundled weights selectable by name, the default included."""
    if not MANIFEST.is_file():
        return {}
    entry = json.loads(MANIFEST.read_text())
    named = {DEFAULT_NAME: (WEIGHTS_DIR / entry["file"], entry["sha256"])}
    for name, candidate in entry.get("candidates", {}).items():
        named[name] = (WEIGHTS_DIR / candidate["file"], candidate["sha256"])
    return named


def resolve_model(weights: str | None) -> tuple[GTCRN, str]:
    """Load the model a command should use.

    Args:
        weights: a checkpoint path from ``--weights``, the name of bundled weights, or None for the
            bundled default.

    Returns:
        (model in eval mode, a short name for logs: the path or "default").

    Raises:
        NoWeightsError: ``weights`` is None and no weights are bundled.
        CheckpointError: the file cannot be used.
    """
    named = bundled_candidates()
    if weights in named and not Path(weights).exists():
        path, digest = named[weights]
        return load_model(path, expected_sha256=digest), weights
    if weights is not None:
        return load_model(weights), weights
    bundled = bundled_weights()
    if bundled is None:
        raise NoWeightsError("no bundled weights in this build yet; pass --weights PATH (an rtenhance or published GTCRN checkpoint)")
    path, digest = bundled
    return load_model(path, expected_sha256=digest), DEFAULT_NAME
