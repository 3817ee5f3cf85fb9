"""Bundled weights and weights loading, without PyTorch.

The package ships its default GTCRN as ``gtcrn_default.npz`` (the torch-free format of ``npz_format``),
checked by the sha256 in ``manifest.json`` at load, and under the manifest's ``"candidates"`` other bundled
weights selectable by name (``--weights NAME``; ``own`` is rtenhance's own-trained model). ``resolve_model`` turns a ``--weights``
argument (or its absence) into ``ModelWeights``: a ``.npz`` loads as is; a PyTorch checkpoint (``.pt``,
``.tar``: rtenhance's own or a published GTCRN one) needs PyTorch, or a one-time ``rtenhance convert``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from rtenhance.weights.errors import CheckpointError
from rtenhance.weights.model_weights import TORCH_HINT, ModelWeights, TorchMissing, require_torch
from rtenhance.weights.npz_format import NPZ_SUFFIX, load_npz

WEIGHTS_DIR = Path(__file__).resolve().parent
MANIFEST = WEIGHTS_DIR / "manifest.json"  # {"runtime_file": "gtcrn_default.npz", "runtime_sha256": "...", ...}
DEFAULT_NAME = "default"

__all__ = ["CheckpointError", "ModelWeights", "NoWeightsError", "bundled_weights", "file_sha256", "load_weights",
           "resolve_model"]


class NoWeightsError(CheckpointError):
    """No ``--weights`` given and no bundled weights exist."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundled_weights() -> tuple[Path, str] | None:
    """(path, sha256) of the bundled default weights (torch-free format), or None when none are shipped."""
    if not MANIFEST.is_file():
        return None
    entry = json.loads(MANIFEST.read_text())
    if "runtime_file" not in entry:
        return None
    return WEIGHTS_DIR / entry["runtime_file"], entry["runtime_sha256"]


def bundled_candidates() -> dict[str, tuple[Path, str]]:
    """{name: (path, sha256)} of the bundled weights selectable by name (torch-free files), the default included."""
    default = bundled_weights()
    if default is None:
        return {}
    named = {DEFAULT_NAME: default}
    for name, candidate in json.loads(MANIFEST.read_text()).get("candidates", {}).items():
        if "runtime_file" in candidate:
            named[name] = (WEIGHTS_DIR / candidate["runtime_file"], candidate["runtime_sha256"])
    return named


def load_weights(path: str | os.PathLike[str], expected_sha256: str | None = None) -> ModelWeights:
    """Load weights from a ``.npz`` (torch-free) or a PyTorch checkpoint (needs PyTorch).

    Args:
        path: the weights file.
        expected_sha256: if given, the file's sha256 must equal it (bundled weights).

    Raises:
        CheckpointError: missing, truncated, foreign or mismatching file, or a PyTorch checkpoint without
            PyTorch installed; the message says what to do.
    """
    path = Path(path)
    if expected_sha256 is not None and path.is_file():
        digest = file_sha256(path)
        if digest != expected_sha256:
            raise CheckpointError(f"{path}: sha256 {digest[:12]}... does not match the expected {expected_sha256[:12]}...")
    if path.suffix.lower() == NPZ_SUFFIX:
        return load_npz(path)
    try:
        require_torch(f"{path}: a PyTorch checkpoint, which")
    except TorchMissing as exc:
        raise CheckpointError(f"{exc}; or convert it once where PyTorch is installed: "
                              f"rtenhance convert {path} {path.with_suffix(NPZ_SUFFIX).name}") from None
    from rtenhance.model.checkpoint import load_model

    return ModelWeights.from_model(load_model(path))


def resolve_model(weights: str | None) -> tuple[ModelWeights, str]:
    """Load the model a command should use.

    Args:
        weights: a weights path from ``--weights``, the name of bundled weights, or None for the default.

    Returns:
        (the weights, a short name for logs: the path or "default").

    Raises:
        NoWeightsError: ``weights`` is None and no weights are bundled.
        CheckpointError: the file cannot be used.
    """
    named = bundled_candidates()
    if weights in named and not Path(weights).exists():
        path, digest = named[weights]
        return load_weights(path, expected_sha256=digest), weights
    if weights is not None:
        return load_weights(weights), weights
    bundled = bundled_weights()
    if bundled is None:
        raise NoWeightsError("no bundled weights in this build yet; pass --weights PATH (an rtenhance .npz, or a "
                             f"PyTorch checkpoint with {TORCH_HINT})")
    path, digest = bundled
    return load_weights(path, expected_sha256=digest), DEFAULT_NAME
