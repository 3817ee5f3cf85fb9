"""Bundled weights: rtenhance's own trained GTCRN, checked by sha256 at load.

``BUNDLED`` names the file in this folder and its digest; ``resolve_model`` turns a ``--weights``
argument (or its absence) into a loaded model.
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


def resolve_model(weights: str | None) -> tuple[GTCRN, str]:
    """Load the model a command should use.

    Args:
        weights: a checkpoint path from ``--weights``, or None for the bundled default.

    Returns:
        (model in eval mode, a short name for logs: the path or "default").

    Raises:
        NoWeightsError: ``weights`` is None and no weights are bundled.
        CheckpointError: the file cannot be used.
    """
    if weights is not None:
        return load_model(weights), weights
    bundled = bundled_weights()
    if bundled is None:
        raise NoWeightsError("no bundled weights in this build yet; pass --weights PATH (an rtenhance or published GTCRN checkpoint)")
    path, digest = bundled
    return load_model(path, expected_sha256=digest), DEFAULT_NAME
